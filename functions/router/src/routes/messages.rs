//! `/v1/messages`: send one message or a batch; `/v1/dead-letters`: list, inspect,
//! redrive and purge what could not be delivered; `/v1/events`: what happened.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tdev_domain::auth::Scope;
use tdev_domain::events::{Event, EventFilter, NewSubscription, Subscription};
use tdev_domain::messaging::{
    Accepted, DeadLetter, DeadLetterFilter, Messenger, PRIORITY, RedriveRequest, Redriven, SEND_MESSAGE,
    SendMessageRequest,
};
use tdev_domain::ports::MessageQueue;
use tdev_domain::queue::Priority;
use tdev_domain::strict::shape::{Field, Object, Shape, Shaped};
use tdev_domain::validation::ValidationErrors;
use tdev_http::{ApiError, ApiJson, ApiQuery, Caller, Problem};
use utoipa::{IntoParams, ToSchema};

use super::RouterStore;

type Shared<S, Q> = State<Arc<Messenger<S, Q>>>;

/// The most messages one batch takes.
pub const MAX_BATCH: usize = 100;
/// The most records one listing returns, and the default.
pub const MAX_LIST: usize = 1000;
const DEFAULT_LIST: usize = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBatch {
    /// 1 to 100 messages; all are checked before any is sent.
    pub messages: Vec<SendMessageRequest>,
}

impl Shaped for SendBatch {
    fn shape() -> &'static Shape {
        static SHAPE: Shape = Shape::Object(&Object {
            what: "a batch",
            fields: &[Field::required("messages", Shape::List(&SEND_MESSAGE))],
        });
        &SHAPE
    }

    fn rules(&self) -> ValidationErrors {
        let mut errors = ValidationErrors::new();
        if self.messages.is_empty() || self.messages.len() > MAX_BATCH {
            errors.add("$.messages", format!("must hold 1 to {MAX_BATCH} messages"));
        }
        for (i, message) in self.messages.iter().enumerate() {
            for e in message.rules_at(&format!("$.messages[{i}]")).errors() {
                errors.add(e.path.clone(), e.message.clone());
            }
        }
        errors
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedBatch {
    /// One per message, in order.
    pub messages: Vec<Accepted>,
}

#[utoipa::path(
    post, path = "/v1/messages", tag = "messages", operation_id = "send_message",
    request_body = SendMessageRequest,
    responses(
        (status = 202, description = "Accepted: queued for delivery", body = Accepted),
        (status = 403, description = "Needs the messages:send scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`to_agent` names no registered agent", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (with their paths), an inactive agent, or no active agent with the capability", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn send<S: RouterStore, Q: MessageQueue>(
    State(messenger): Shared<S, Q>,
    caller: Caller,
    body: Result<ApiJson<SendMessageRequest>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    let principal = caller.require(Scope::MessagesSend)?;
    let ApiJson(request) = body?;
    let sender = Some(principal.key_id.as_str().to_owned());
    let mut accepted = messenger.send(vec![("$".into(), request)], sender).await?;
    let accepted = accepted.pop().ok_or_else(|| ApiError::Internal("nothing was accepted".into()))?;
    tracing::info!(message_id = %accepted.id, queue = %accepted.queue, "message accepted");
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

#[utoipa::path(
    post, path = "/v1/messages:batch", tag = "messages", operation_id = "send_messages",
    request_body = SendBatch,
    responses(
        (status = 202, description = "Every message accepted", body = AcceptedBatch),
        (status = 403, description = "Needs the messages:send scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A `to_agent` names no registered agent; nothing was sent", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid messages, with paths like `$.messages[3].priority`; nothing was sent", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn send_batch<S: RouterStore, Q: MessageQueue>(
    State(messenger): Shared<S, Q>,
    caller: Caller,
    body: Result<ApiJson<SendBatch>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    let principal = caller.require(Scope::MessagesSend)?;
    let ApiJson(batch) = body?;
    if batch.messages.is_empty() || batch.messages.len() > MAX_BATCH {
        return Err(
            ValidationErrors::single("$.messages", format!("must hold 1 to {MAX_BATCH} messages")).into()
        );
    }
    let requests =
        batch.messages.into_iter().enumerate().map(|(i, m)| (format!("$.messages[{i}]"), m)).collect();
    let sender = Some(principal.key_id.as_str().to_owned());
    let accepted = messenger.send(requests, sender).await?;
    tracing::info!(count = accepted.len(), "message batch accepted");
    Ok((StatusCode::ACCEPTED, Json(AcceptedBatch { messages: accepted })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// Only those from this queue (`messages-1`, …).
    pub source_queue: Option<String>,
    /// Only those with this reason code.
    pub reason: Option<String>,
    /// Default `dead`.
    #[param(inline)]
    pub state: Option<StateFilter>,
    /// At most this many (default 100), oldest first.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// Which dead letters a listing shows, by state.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateFilter {
    Dead,
    Redriving,
    Redriven,
    All,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterList {
    pub dead_letters: Vec<DeadLetter>,
}

fn limit(limit: Option<usize>, path: &str) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIST),
        Some(n) if (1..=MAX_LIST).contains(&n) => Ok(n),
        Some(_) => Err(ValidationErrors::single(path, format!("must be 1 to {MAX_LIST}")).into()),
    }
}

#[utoipa::path(
    get, path = "/v1/dead-letters", tag = "dead letters", operation_id = "list_dead_letters",
    params(DeadLetterQuery),
    responses(
        (status = 200, description = "Dead letters, oldest first: reason, attempts, first and last failure, source queue", body = DeadLetterList,
            links(("GetFirstDeadLetter" = (operation_id = "get_dead_letter", parameters(("id" = "$response.body#/dead_letters/0/id")))))),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad filter", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn list_dead_letters<S: RouterStore, Q: MessageQueue>(
    State(messenger): Shared<S, Q>,
    caller: Caller,
    ApiQuery(query): ApiQuery<DeadLetterQuery>,
) -> Result<Json<DeadLetterList>, ApiError> {
    caller.require(Scope::Read)?;
    let state = match query.state.unwrap_or(StateFilter::Dead) {
        StateFilter::Dead => Some("dead"),
        StateFilter::Redriving => Some("redriving"),
        StateFilter::Redriven => Some("redriven"),
        StateFilter::All => None,
    };
    let filter = DeadLetterFilter {
        source_queue: query.source_queue,
        reason: query.reason,
        state: state.map(str::to_owned),
        limit: limit(query.limit, "$.query.limit")?,
    };
    Ok(Json(DeadLetterList { dead_letters: messenger.dead_letters(&filter).await? }))
}

#[utoipa::path(
    get, path = "/v1/dead-letters/{id}", tag = "dead letters", operation_id = "get_dead_letter",
    params(("id" = String, Path, description = "The dead letter's id")),
    responses(
        (status = 200, description = "The dead letter, with its message", body = DeadLetter),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dead letter", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn get_dead_letter<S: RouterStore, Q: MessageQueue>(
    State(messenger): Shared<S, Q>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeadLetter>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(messenger.dead_letter(&id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveBody {
    /// These dead letters. Leave out to redrive every one matching the filters, and
    /// then say `"all": true`.
    pub ids: Option<Vec<String>>,
    #[serde(default)]
    pub all: bool,
    pub source_queue: Option<String>,
    pub reason: Option<String>,
    /// With `all`: at most this many (default 100, at most 1000), oldest first.
    pub limit: Option<usize>,
    /// Send at this priority instead of the message's own.
    #[schema(value_type = Option<u8>, minimum = 1, maximum = 10)]
    pub priority: Option<u8>,
}

impl Shaped for RedriveBody {
    fn shape() -> &'static Shape {
        static SHAPE: Shape = Shape::Object(&Object {
            what: "a redrive",
            fields: &[
                Field::optional("ids", Shape::Nullable(&Shape::List(&Shape::Str))),
                Field::optional("all", Shape::Bool),
                Field::optional("source_queue", Shape::Nullable(&Shape::Str)),
                Field::optional("reason", Shape::Nullable(&Shape::Str)),
                Field::optional("limit", Shape::Nullable(&Shape::COUNT)),
                Field::optional("priority", Shape::Nullable(&PRIORITY)),
            ],
        });
        &SHAPE
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RedriveResult {
    /// What was sent back; a dead letter already redriven is not sent again.
    pub redriven: Vec<Redriven>,
}

#[utoipa::path(
    post, path = "/v1/dead-letters:redrive", tag = "dead letters", operation_id = "redrive_dead_letters",
    description = "Sends dead letters back to their band queue, each exactly once. A message whose envelope still verifies is re-sealed with a fresh time.",
    request_body = RedriveBody,
    responses(
        (status = 200, description = "Sent back", body = RedriveResult),
        (status = 403, description = "Needs the messages:send scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "A named dead letter does not exist; nothing after it was sent", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Neither ids nor all, both, or a bad priority", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn redrive<S: RouterStore, Q: MessageQueue>(
    State(messenger): Shared<S, Q>,
    caller: Caller,
    body: Result<ApiJson<RedriveBody>, ApiError>,
) -> Result<Json<RedriveResult>, ApiError> {
    caller.require(Scope::MessagesSend)?;
    let ApiJson(body) = body?;
    let mut errors = ValidationErrors::new();
    match (&body.ids, body.all) {
        (None, false) => errors.add("$.ids", "name the dead letters, or say \"all\": true"),
        (Some(_), true) => errors.add("$.all", "give either ids or all, not both"),
        (Some(ids), false) if ids.is_empty() || ids.len() > MAX_LIST => {
            errors.add("$.ids", format!("must hold 1 to {MAX_LIST} ids"))
        }
        _ => {}
    }
    let priority = match body.priority.map(Priority::new).transpose() {
        Ok(priority) => priority,
        Err(e) => {
            errors.add("$.priority", e.to_string());
            None
        }
    };
    let limit = limit(body.limit, "$.limit");
    errors.into_result(())?;
    let request = RedriveRequest {
        ids: body.ids,
        filter: DeadLetterFilter {
            source_queue: body.source_queue,
            reason: body.reason,
            state: None,
            limit: limit?,
        },
        priority,
    };
    let redriven = messenger.redrive(request).await?;
    tracing::info!(count = redriven.len(), "dead letters redriven");
    Ok(Json(RedriveResult { redriven }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    /// The dead letters to delete for good.
    pub ids: Vec<String>,
}

impl Shaped for PurgeBody {
    fn shape() -> &'static Shape {
        static SHAPE: Shape = Shape::Object(&Object {
            what: "a purge",
            fields: &[Field::required("ids", Shape::List(&Shape::Str))],
        });
        &SHAPE
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PurgeResult {
    /// The ids that existed and are gone.
    pub purged: Vec<String>,
}

#[utoipa::path(
    post, path = "/v1/dead-letters:purge", tag = "dead letters", operation_id = "purge_dead_letters",
    request_body = PurgeBody,
    responses(
        (status = 200, description = "Deleted", body = PurgeResult),
        (status = 403, description = "Needs the admin scope", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No ids", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn purge<S: RouterStore, Q: MessageQueue>(
    State(messenger): Shared<S, Q>,
    caller: Caller,
    body: Result<ApiJson<PurgeBody>, ApiError>,
) -> Result<Json<PurgeResult>, ApiError> {
    caller.require(Scope::Admin)?;
    let ApiJson(body) = body?;
    if body.ids.is_empty() || body.ids.len() > MAX_LIST {
        return Err(ValidationErrors::single("$.ids", format!("must hold 1 to {MAX_LIST} ids")).into());
    }
    let purged = messenger.purge(&body.ids).await?;
    tracing::warn!(count = purged.len(), "dead letters purged");
    Ok(Json(PurgeResult { purged }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// A glob over the type: `message.*`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// From this time (RFC 3339), inclusive.
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<Timestamp>,
    /// Up to this time, exclusive.
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<Timestamp>,
    /// At most this many (default 100), oldest first.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<Event>,
}

#[utoipa::path(
    get, path = "/v1/events", tag = "events", operation_id = "list_events",
    params(EventQuery),
    responses(
        (status = 200, description = "Events, oldest first", body = EventList),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad filter", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn events<S: RouterStore, Q: MessageQueue>(
    State(messenger): Shared<S, Q>,
    caller: Caller,
    ApiQuery(query): ApiQuery<EventQuery>,
) -> Result<Json<EventList>, ApiError> {
    caller.require(Scope::Read)?;
    let filter = EventFilter {
        pattern: query.kind,
        since: query.since,
        until: query.until,
        limit: limit(query.limit, "$.query.limit")?,
    };
    Ok(Json(EventList { events: messenger.events().list(&filter).await? }))
}

/// How many events one read of the log takes for a stream: all a stream holds at once.
const STREAM_PAGE: usize = 100;
/// How long a stream with nothing new waits before it reads the log again.
const STREAM_POLL: std::time::Duration = std::time::Duration::from_millis(200);
/// An idle stream gets a comment line this often, so that proxies keep it open.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);
/// The most event streams this process serves at once (each reads the log five times a
/// second while idle); one more is refused with 429 until one closes.
const MAX_STREAMS: usize = 1_000;
static OPEN_STREAMS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One of `open`'s `max` places, given back when dropped; `None` when all are taken.
struct StreamSlot(&'static std::sync::atomic::AtomicUsize);

impl StreamSlot {
    fn take(open: &'static std::sync::atomic::AtomicUsize, max: usize) -> Option<Self> {
        use std::sync::atomic::Ordering::AcqRel;
        open.fetch_update(AcqRel, std::sync::atomic::Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| StreamSlot(open))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// A glob over the type: `run.*`, `squad.task.*`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Only events about this: a message, run, squad task or agent id.
    pub subject: Option<String>,
    /// Resume after this event: the `id` of the last one received. `Last-Event-ID` (which
    /// a browser's `EventSource` sends when it reconnects) says the same and wins.
    /// Without either, the stream starts from now.
    pub after: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/events:stream", tag = "events", operation_id = "stream_events",
    description = "Follows events as they happen, as Server-Sent Events: each `data` is one event (CloudEvents JSON), each `id` the position to resume after (send it back as `Last-Event-ID` or `after`: no event is missed or repeated). A comment line every 15 seconds keeps an idle stream open. At most 1,000 streams are open at once: one more is a 429 until one closes. Served by the local stack (`tdev serve`); behind API Gateway, which cannot stream, the route does not exist.",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event (as `after`)."),
    ),
    responses(
        (status = 200, description = "The stream", content_type = "text/event-stream", body = String),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A resume position this server never gave", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn stream<S: RouterStore, Q: MessageQueue>(
    State(messenger): Shared<S, Q>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> Result<impl IntoResponse, ApiError> {
    use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};

    caller.require(Scope::Read)?;
    let slot =
        StreamSlot::take(&OPEN_STREAMS, MAX_STREAMS).ok_or(ApiError::RateLimited { retry_after_secs: 5 })?;
    let (cursor, path) = match headers.get("last-event-id") {
        Some(value) => {
            let value = value.to_str().map_err(|_| {
                ApiError::Validation(ValidationErrors::single("$.header.last-event-id", "not text"))
            })?;
            (Some(value.to_owned()), "$.header.last-event-id")
        }
        None => (query.after, "$.query.after"),
    };
    // Checked before the stream starts: a bad position is a 422, not a stream that ends.
    let start = messenger.events().after(cursor.as_deref(), 0, path).await?;
    let filter = EventFilter { pattern: query.kind, ..EventFilter::default() };
    let subject = query.subject;
    let wanted =
        move |event: &Event| filter.matches(event) && subject.as_ref().is_none_or(|s| *s == event.subject);
    // The slot goes with the stream: dropped when the client goes.
    let state = (messenger, start.cursor, std::collections::VecDeque::new(), slot);
    // Pulled as the client reads: a client that stops reading holds one page, never more.
    let events = futures::stream::unfold(state, move |(messenger, mut cursor, mut held, slot)| {
        let wanted = wanted.clone();
        async move {
            loop {
                if let Some((id, event)) = held.pop_front() {
                    let data = serde_json::to_string(&event).unwrap_or_default();
                    let sse = SseEvent::default().id(id).data(data);
                    return Some((Ok::<_, std::convert::Infallible>(sse), (messenger, cursor, held, slot)));
                }
                match messenger.events().after(Some(&cursor), STREAM_PAGE, "$.cursor").await {
                    Ok(page) => {
                        cursor = page.cursor;
                        let read = page.events.len();
                        held.extend(page.events.into_iter().filter(|(_, event)| wanted(event)));
                        if read == 0 {
                            tokio::time::sleep(STREAM_POLL).await;
                        }
                    }
                    Err(e) => {
                        // The stream ends; the client resumes after the last event it got.
                        tracing::warn!(error = %e, "an event stream could not read the log");
                        return None;
                    }
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(HEARTBEAT)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionList {
    pub subscriptions: Vec<Subscription>,
}

#[utoipa::path(
    post, path = "/v1/subscriptions", tag = "events", operation_id = "subscribe",
    description = "Events whose type matches the pattern are delivered to the target at least once, retried with backoff while it is unavailable; what cannot be delivered becomes a dead letter (source queue `events`).",
    request_body = NewSubscription,
    responses(
        (status = 201, description = "Subscribed", body = Subscription,
            links(("Unsubscribe" = (operation_id = "unsubscribe", parameters(("id" = "$response.body#/id")))))),
        (status = 403, description = "Needs the admin scope", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn subscribe<S: RouterStore, Q: MessageQueue>(
    State(messenger): Shared<S, Q>,
    caller: Caller,
    body: Result<ApiJson<NewSubscription>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Scope::Admin)?;
    let ApiJson(request) = body?;
    let subscription = messenger.events().subscribe(request).await?;
    tracing::info!(subscription = %subscription.id, pattern = %subscription.pattern, "subscribed");
    Ok((StatusCode::CREATED, Json(subscription)))
}

#[utoipa::path(
    get, path = "/v1/subscriptions", tag = "events", operation_id = "list_subscriptions",
    responses(
        (status = 200, description = "Every subscription, by id", body = SubscriptionList),
        (status = 403, description = "Needs the read scope", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn subscriptions<S: RouterStore, Q: MessageQueue>(
    State(messenger): Shared<S, Q>,
    caller: Caller,
) -> Result<Json<SubscriptionList>, ApiError> {
    caller.require(Scope::Read)?;
    Ok(Json(SubscriptionList { subscriptions: messenger.events().subscriptions().await? }))
}

#[utoipa::path(
    delete, path = "/v1/subscriptions/{id}", tag = "events", operation_id = "unsubscribe",
    params(("id" = String, Path, description = "The subscription's id")),
    responses(
        (status = 204, description = "Unsubscribed"),
        (status = 403, description = "Needs the admin scope", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such subscription", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn unsubscribe<S: RouterStore, Q: MessageQueue>(
    State(messenger): Shared<S, Q>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Scope::Admin)?;
    messenger.events().unsubscribe(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::StreamSlot;

    #[test]
    fn streams_beyond_the_limit_are_refused_until_one_closes() {
        static OPEN: AtomicUsize = AtomicUsize::new(0);
        let first = StreamSlot::take(&OPEN, 2).expect("a place");
        let _second = StreamSlot::take(&OPEN, 2).expect("a second place");
        assert!(StreamSlot::take(&OPEN, 2).is_none(), "the third is refused");
        drop(first);
        assert!(StreamSlot::take(&OPEN, 2).is_some(), "a place freed is taken again");
        assert_eq!(OPEN.load(std::sync::atomic::Ordering::Acquire), 1, "and given back when dropped");
    }
}
