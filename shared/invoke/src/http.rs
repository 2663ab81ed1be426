//! HTTP agents: a JSON POST, with the payload's idempotency key (if it has one) as the
//! `Idempotency-Key` header.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use serde_json::{Map, Value};
use tdev_domain::agents::InvokeError;

use crate::answer::{bytes_excerpt, json_object};
use crate::{error_chain, idempotency_key};

/// The header that carries a delivery's idempotency key (as in the IETF draft
/// "The Idempotency-Key HTTP Header Field", and Stripe's API).
const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// How long to wait for a TCP (and TLS) connection, whatever the call's timeout: an agent
/// that cannot be reached in this time is down, and saying so early leaves the caller
/// time to retry.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP client [`Invoker`](crate::Invoker) is meant to have: it does not follow
/// redirects (a POST redirected with 301/302 turns into a GET and loses the payload; an
/// agent's URL should be its final one), and it gives up connecting after 5 s.
pub fn default_http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("t-developer/", env!("CARGO_PKG_VERSION")))
        .build()
}

pub(crate) async fn invoke(
    client: &reqwest::Client,
    url: &str,
    payload: &Value,
    timeout: Duration,
) -> Result<Map<String, Value>, InvokeError> {
    let mut request = client.post(url).json(payload).timeout(timeout);
    if let Some(key) = idempotency_key(payload) {
        let value = HeaderValue::from_str(key).map_err(|_| {
            InvokeError::Rejected(
                "the idempotency key cannot be an HTTP header value: it holds a control character".into(),
            )
        })?;
        request = request.header(IDEMPOTENCY_KEY_HEADER, value);
    }
    let response = request.send().await.map_err(|e| failure(e, timeout))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| failure(e, timeout))?;
    if status.is_success() {
        return json_object(&body)
            .map_err(|what| InvokeError::Rejected(format!("answered {status} with {what}")));
    }
    Err(status_error(status, &body))
}

/// An answer other than 2xx: 408, 429 and 5xx say "later" (worth retrying); the others
/// refuse. The detail is the status and an excerpt of the body.
pub(crate) fn status_error(status: StatusCode, body: &[u8]) -> InvokeError {
    let detail = format!("answered {status}: {}", bytes_excerpt(body));
    if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        InvokeError::Unavailable(detail)
    } else {
        InvokeError::Rejected(detail)
    }
}

pub(crate) fn failure(error: reqwest::Error, timeout: Duration) -> InvokeError {
    // Connecting has its own, shorter timeout: running out of it means the agent cannot be
    // reached, not that it took too long to answer.
    if error.is_timeout() && !error.is_connect() {
        return InvokeError::Timeout(timeout);
    }
    // A request that cannot be built (a malformed URL) fails the same way every time.
    let builder = error.is_builder();
    // The URL may carry a token: keep it out of the message.
    let detail = error_chain(&error.without_url());
    if builder {
        InvokeError::Rejected(format!("the request cannot be built: {detail}"))
    } else {
        InvokeError::Unavailable(detail)
    }
}
