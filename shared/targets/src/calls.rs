//! What both targets share: SDK errors as [`DeployError`]s, and bounded waiting.

use std::time::Duration;

use aws_sdk_bedrockagent::config::http::HttpResponse;
use aws_sdk_bedrockagent::error::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use tdev_domain::ports::DeployError;
use tokio::time::Instant;

/// Error codes that say "not now" rather than "no": trying again later can succeed.
/// `ConflictException` is a resource still busy with an earlier change.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "TooManyRequestsException",
    "InternalServerException",
    "ServiceUnavailableException",
    "ConflictException",
    "RequestTimeout",
];

/// An SDK call's result, its error turned into a [`DeployError`].
pub(crate) trait CallResult<T> {
    /// `operation` names the call in the message (e.g. `CreateAgent`).
    fn or_deploy_error(self, operation: &str) -> Result<T, DeployError>;
}

impl<T, E> CallResult<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn or_deploy_error(self, operation: &str) -> Result<T, DeployError> {
        self.map_err(|error| {
            let transient = match &error {
                SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
                SdkError::ServiceError(context) => {
                    context.raw().status().is_server_error()
                        || error.code().is_some_and(|code| TRANSIENT_CODES.contains(&code))
                }
                _ => false,
            };
            // The error's own text: its code and AWS's message, never the request.
            let message = format!("{operation}: {}", DisplayErrorContext(&error));
            if transient { DeployError::Unavailable(message) } else { DeployError::Failed(message) }
        })
    }
}

/// Waiting for a resource to settle: sleeps of 1, 2, 4… up to 10 seconds, until `limit`
/// has passed; then the step is `Unavailable`, and the pipeline will ask again.
pub(crate) struct Backoff {
    started: Instant,
    limit: Duration,
    delay: Duration,
}

impl Backoff {
    pub(crate) fn new(limit: Duration) -> Self {
        Self { started: Instant::now(), limit, delay: Duration::from_secs(1) }
    }

    /// Sleeps before the next look, or gives up: `what` is what is still unfinished
    /// (e.g. `the alias live is UPDATING`).
    pub(crate) async fn wait(&mut self, what: &str) -> Result<(), DeployError> {
        if self.started.elapsed() + self.delay > self.limit {
            return Err(DeployError::Unavailable(format!("{what} after {} s", self.limit.as_secs())));
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(10));
        Ok(())
    }
}
