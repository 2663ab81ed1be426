//! Turning AWS SDK errors into [`InvokeError`]s.
//!
//! Each service module says which of its modeled errors mean "come back later"; the
//! rest of the modeled errors (validation, access, not found, a function's bad
//! configuration) are refusals. An error the SDK does not model is judged by its code,
//! and without a code by its HTTP status.
//!
//! The modeled variants are matched, rather than the HTTP status, because Lambda answers
//! 502 for errors that no retry fixes (a disabled KMS key, an invalid zip file).

use std::fmt::Debug;

use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use tdev_domain::agents::InvokeError;

use crate::error_chain;

/// Error codes that mean "try again later" in every AWS service that uses them.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServerException",
    "RequestTimeout",
    "RequestTimeoutException",
];

pub(crate) fn transient_status(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// The status of an operation's HTTP response.
pub(crate) fn http_status(response: &HttpResponse) -> Option<u16> {
    Some(response.status().as_u16())
}

/// `call` names the operation in the message ("Lambda Invoke"). `transient` says whether a
/// modeled error means "come back later"; `status` reads the raw response's HTTP status,
/// if it has one (an event-stream message has none).
pub(crate) fn failure<E, R>(
    call: &str,
    error: SdkError<E, R>,
    transient: impl FnOnce(&E) -> bool,
    status: impl FnOnce(&R) -> Option<u16>,
) -> InvokeError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: Debug,
{
    match &error {
        SdkError::ServiceError(context) => {
            let service_error = context.err();
            let status = status(context.raw());
            let transient = transient(service_error)
                || match service_error.code() {
                    Some(code) => TRANSIENT_CODES.contains(&code),
                    None => status.is_some_and(transient_status),
                };
            let detail = match (service_error.code(), service_error.message(), status) {
                (Some(code), Some(message), _) => format!("{call}: {code}: {message}"),
                (Some(code), None, _) => format!("{call}: {code}"),
                // No code: the SDK could not read the error (a proxy's HTML page), or a
                // modeled error came without its metadata; its text and the status tell.
                (None, _, Some(status)) => format!("{call}: HTTP {status}: {}", error_chain(service_error)),
                (None, _, None) => format!("{call}: {}", error_chain(service_error)),
            };
            if transient { InvokeError::Unavailable(detail) } else { InvokeError::Rejected(detail) }
        }
        // The request could not be built, sent or its answer read (no credentials, no
        // region, a dropped connection, the SDK's own timeouts): the agent never answered.
        // Even a request that cannot be built is a fault of the deployment, not of the
        // payload, so it is not the agent's refusal.
        _ => InvokeError::Unavailable(format!("{call}: {}", error_chain(&error))),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_lambda::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_lambda::operation::invoke::InvokeError as LambdaError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(StatusCode::try_from(status).expect("status"), SdkBody::empty())
    }

    /// An error the SDK does not model, with `code` (if any), answered with `status`.
    fn unmodeled(code: Option<&str>, status: u16) -> InvokeError {
        let mut meta = ErrorMetadata::builder().message("m");
        if let Some(code) = code {
            meta = meta.code(code);
        }
        let error = SdkError::service_error(LambdaError::generic(meta.build()), response(status));
        failure("X", error, |_| false, http_status)
    }

    #[test]
    fn a_transient_code_is_unavailable_whatever_the_status() {
        assert_eq!(
            unmodeled(Some("ThrottlingException"), 400),
            InvokeError::Unavailable("X: ThrottlingException: m".into())
        );
        assert_eq!(
            unmodeled(Some("InternalFailure"), 500),
            InvokeError::Unavailable("X: InternalFailure: m".into())
        );
    }

    #[test]
    fn another_code_is_rejected_whatever_the_status() {
        // Lambda answers 502 for a disabled KMS key, say: retrying does not help.
        assert_eq!(
            unmodeled(Some("KMSDisabledException"), 502),
            InvokeError::Rejected("X: KMSDisabledException: m".into())
        );
        assert_eq!(unmodeled(Some("NewException"), 400), InvokeError::Rejected("X: NewException: m".into()));
    }

    #[test]
    fn without_a_code_the_status_decides() {
        for status in [408, 429, 500, 502, 503] {
            assert!(matches!(unmodeled(None, status), InvokeError::Unavailable(_)), "{status}");
        }
        for status in [400, 403, 404, 409, 418] {
            assert!(matches!(unmodeled(None, status), InvokeError::Rejected(_)), "{status}");
        }
        let InvokeError::Unavailable(message) = unmodeled(None, 503) else { panic!("unavailable") };
        assert!(message.starts_with("X: HTTP 503: "), "{message}");
    }

    #[test]
    fn a_modeled_transient_error_is_unavailable() {
        let error =
            SdkError::service_error(LambdaError::generic(ErrorMetadata::builder().build()), response(400));
        assert!(matches!(failure("X", error, |_| true, http_status), InvokeError::Unavailable(_)));
    }

    #[test]
    fn a_call_that_never_reached_the_service_is_unavailable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let error: SdkError<LambdaError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(io.into()));
        let InvokeError::Unavailable(message) = failure("X", error, |_| false, http_status) else {
            panic!("unavailable")
        };
        assert!(message.starts_with("X: dispatch failure"), "{message}");
        assert!(message.ends_with("connection refused"), "{message}");

        let error: SdkError<LambdaError, HttpResponse> = SdkError::construction_failure("no region");
        assert!(matches!(failure("X", error, |_| false, http_status), InvokeError::Unavailable(_)));
    }
}
