//! Event delivery to subscribers: [`Invoker`](crate::Invoker) implements the domain's
//! [`EventSink`](tdev_domain::events::EventSink).
//!
//! - `webhook`: a POST of the event in CloudEvents' structured mode (its JSON, as
//!   `application/cloudevents+json`); any 2xx is a delivery (the body is ignored).
//!   408, 429, 5xx and connection failures are [`InvokeError::Unavailable`] (retried);
//!   other answers [`InvokeError::Rejected`].
//! - `sqs`: SendMessage of the event's JSON (CloudEvents 1.0). A FIFO queue (`.fifo`) gets the group
//!   `tdev-events` (so the subscriber sees events in delivery order) and the event id as
//!   the deduplication id (so a retried delivery within five minutes is sent once).

use std::time::Duration;

use aws_sdk_sqs::error::ProvideErrorMetadata as _;
use tdev_domain::agents::InvokeError;
use tdev_domain::events::{CLOUDEVENTS_JSON, Event};

use crate::error_chain;

/// The FIFO group events are sent in.
pub const EVENT_GROUP: &str = "tdev-events";

pub(crate) async fn webhook(
    client: &reqwest::Client,
    url: &str,
    event: &Event,
    timeout: Duration,
) -> Result<(), InvokeError> {
    let body = serde_json::to_vec(event).map_err(|e| InvokeError::Rejected(e.to_string()))?;
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, CLOUDEVENTS_JSON)
        .body(body)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| crate::http::failure(e, timeout))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.bytes().await.unwrap_or_default();
    Err(crate::http::status_error(status, &body))
}

pub(crate) async fn sqs(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    event: &Event,
) -> Result<(), InvokeError> {
    let body = serde_json::to_string(event).map_err(|e| InvokeError::Rejected(e.to_string()))?;
    let mut request = client.send_message().queue_url(queue_url).message_body(body);
    if queue_url.ends_with(".fifo") {
        request = request.message_group_id(EVENT_GROUP).message_deduplication_id(&event.id);
    }
    match request.send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let code = e.code().unwrap_or_default().to_owned();
            let detail = format!("{code}: {}", error_chain(&e));
            let refused = e
                .as_service_error()
                .is_some_and(|s| s.is_queue_does_not_exist() || s.is_invalid_message_contents())
                || code.contains("AccessDenied")
                || code.contains("NonExistentQueue");
            if refused { Err(InvokeError::Rejected(detail)) } else { Err(InvokeError::Unavailable(detail)) }
        }
    }
}
