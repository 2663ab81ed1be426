//! The router function's HTTP routes.

mod agents;
mod messages;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use serde_json::json;
use tdev_domain::agents::Registry;
use tdev_domain::auth::{AuthService, AuthStore};
use tdev_domain::messaging::{MessagingStore, Messenger};
use tdev_domain::ports::MessageQueue;
use tdev_http::docs::{AGENT_ID, constrain, http_url, not_blank};
use tdev_http::guard::{self, Mode};
use utoipa::OpenApi;

pub use messages::MAX_BATCH;

/// Every port the router function uses.
pub trait RouterStore: AuthStore + MessagingStore {}
impl<T: AuthStore + MessagingStore> RouterStore for T {}

/// The guarded routes, not yet finished (see `tdev_http::app::finish`).
pub fn router<S: RouterStore, Q: MessageQueue>(
    registry: Arc<Registry<S>>,
    messenger: Arc<Messenger<S, Q>>,
    auth: Arc<AuthService<S>>,
    mode: Mode,
) -> Router {
    let agents = Router::new()
        .route("/v1/agents", get(agents::list::<S>).post(agents::register::<S>))
        .route(
            "/v1/agents/{id}",
            get(agents::get::<S>).patch(agents::update::<S>).delete(agents::remove::<S>),
        )
        .with_state(registry);
    let messages = Router::new()
        .route("/v1/messages", post(messages::send::<S, Q>))
        .route("/v1/messages:batch", post(messages::send_batch::<S, Q>))
        .route("/v1/dead-letters", get(messages::list_dead_letters::<S, Q>))
        .route("/v1/dead-letters/{id}", get(messages::get_dead_letter::<S, Q>))
        .route("/v1/dead-letters:redrive", post(messages::redrive::<S, Q>))
        .route("/v1/dead-letters:purge", post(messages::purge::<S, Q>))
        .route("/v1/events", get(messages::events::<S, Q>))
        .route("/v1/subscriptions", get(messages::subscriptions::<S, Q>).post(messages::subscribe::<S, Q>))
        .route("/v1/subscriptions/{id}", axum::routing::delete(messages::unsubscribe::<S, Q>))
        .with_state(messenger.clone());
    // A stream is served where responses stream: the local stack, not API Gateway.
    let messages = match mode {
        Mode::Authenticate => messages.merge(
            Router::new().route("/v1/events:stream", get(messages::stream::<S, Q>)).with_state(messenger),
        ),
        Mode::AuthorizerContext => messages,
    };
    guard::layer(agents.merge(messages), auth, mode)
}

#[derive(OpenApi)]
#[openapi(
    paths(
        agents::register, agents::list, agents::get, agents::update, agents::remove,
        messages::send, messages::send_batch, messages::list_dead_letters, messages::get_dead_letter,
        messages::redrive, messages::purge, messages::events, messages::stream, messages::subscribe,
        messages::subscriptions,
        messages::unsubscribe,
    ),
    tags(
        (name = "agents", description = "The agent registry: how to reach each agent, what it can do, and whether it takes work"),
        (name = "messages", description = "Messages to agents, by id or by capability, with priorities 1 (most urgent) to 10"),
        (name = "dead letters", description = "Messages that could not be delivered, with why; redrive or purge them"),
        (name = "events", description = "What happened, append-only; and subscriptions that deliver it"),
    )
)]
pub struct ApiDoc;

/// Types, groups and dedup ids: 1 to 128 of `A-Za-z0-9._:-`.
const TOKEN: &str = "^[A-Za-z0-9._:-]{1,128}$";

/// The limits the registry and the messenger enforce, written into their schemas in the
/// whole API's `document`.
pub fn constrain_schemas(api: &mut serde_json::Value) {
    {
        let agent_fields = json!({
            "name": {"maxLength": 200, "pattern": tdev_http::docs::label()},
            "capabilities": {"items": {"pattern": AGENT_ID}},
            "max_concurrency": {"minimum": 1},
        });
        constrain(api, "NewAgentRequest", json!({"properties": {"id": {"pattern": AGENT_ID}}}));
        constrain(api, "NewAgentRequest", json!({"properties": agent_fields}));
        constrain(api, "AgentUpdate", json!({"properties": agent_fields}));
        // Its variants, in order: http, lambda, bedrock_agent, agentcore_runtime.
        constrain(
            api,
            "AgentTarget",
            json!({"oneOf": [
                {"additionalProperties": false, "properties": {"url": {"pattern": http_url()}}},
                {"additionalProperties": false, "properties": {"function": {"pattern": not_blank()}}},
                {"additionalProperties": false, "properties": {"agent_id": {"pattern": not_blank()}, "alias_id": {"pattern": not_blank()}}},
                {"additionalProperties": false, "properties": {"runtime_arn": {"pattern": "^arn:"}}},
            ]}),
        );
        constrain(
            api,
            "SendMessageRequest",
            json!({
                "properties": {
                    "to_agent": {"pattern": AGENT_ID},
                    "capability": {"pattern": AGENT_ID},
                    "type": {"pattern": TOKEN},
                    "payload": {"type": null, "description": "Any JSON value."},
                    "priority": {"type": ["integer", "null"]},
                    "group": {"pattern": TOKEN},
                    "dedup_id": {"pattern": TOKEN},
                },
                "oneOf": [
                    {"required": ["to_agent"], "properties": {"to_agent": {"type": "string"}, "capability": {"type": "null"}}},
                    {"required": ["capability"], "properties": {"capability": {"type": "string"}, "to_agent": {"type": "null"}}},
                ],
            }),
        );
        constrain(
            api,
            "SendBatch",
            json!({"properties": {"messages": {"minItems": 1, "maxItems": MAX_BATCH}}}),
        );
        let ids = json!({"minItems": 1, "maxItems": messages::MAX_LIST});
        constrain(
            api,
            "RedriveBody",
            json!({
                "properties": {"ids": ids, "limit": {"minimum": 1, "maximum": messages::MAX_LIST}},
                "oneOf": [
                    {"required": ["ids"], "properties": {"ids": {"type": "array"}, "all": {"const": false}}},
                    {"required": ["all"], "properties": {"all": {"const": true}, "ids": {"type": "null"}}},
                ],
            }),
        );
        constrain(api, "PurgeBody", json!({"properties": {"ids": ids}}));
        constrain(
            api,
            "NewSubscription",
            json!({"properties": {
                "pattern": {"pattern": "^[A-Za-z0-9._*-]{1,128}$"},
            }}),
        );
        // Its variants, in order: webhook, sqs.
        constrain(
            api,
            "SubscriptionTarget",
            json!({"oneOf": [
                {"additionalProperties": false, "properties": {"url": {"pattern": http_url()}}},
                {"additionalProperties": false, "properties": {"queue_url": {"pattern": http_url()}}},
            ]}),
        );
    }
}
