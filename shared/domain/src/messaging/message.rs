//! A message: what a sender asks for, and what travels (inside an envelope) to the agent.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::agents::valid_agent_id;
use crate::queue::Priority;
use crate::strict::shape::{Field, Object, Shape, Shaped};
use crate::validation::ValidationErrors;

/// Who a message is for: one agent by id, or whichever capable agent routing picks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    /// `{"to_agent": "<id>"}`
    #[serde(rename = "to_agent")]
    Agent(String),
    /// `{"capability": "<name>"}`
    Capability(String),
}

impl Recipient {
    /// `agent:<id>` or `capability:<name>`: for logs, events and default groups.
    pub fn label(&self) -> String {
        match self {
            Recipient::Agent(id) => format!("agent:{id}"),
            Recipient::Capability(name) => format!("capability:{name}"),
        }
    }
}

/// A message as it travels: every field the envelope carries, before signing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Unique per accepted message.
    pub id: String,
    /// What kind of message it is (`task.assign`), for the agent and for filters.
    #[serde(rename = "type")]
    pub kind: String,
    pub to: Recipient,
    /// Any JSON value.
    pub payload: serde_json::Value,
    pub priority: Priority,
    /// Messages of one group are processed in order, one at a time.
    pub group: String,
    /// The consumer remembers a delivered message's key for a day, and passes it to the
    /// agent on every delivery, so that the agent can deduplicate.
    pub idempotency_key: String,
    /// Small JSON object of the sender's.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The principal (API key or token subject) or service that sent it, when known.
    pub sender: Option<String>,
    pub created_at: Timestamp,
}

/// The body of `POST /v1/messages`, as sent (also one element of a batch).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    /// The agent's id. Exactly one of `to_agent` and `capability`.
    #[schema(example = "summarizer")]
    pub to_agent: Option<String>,
    /// A capability: routing picks the capable active agent with the least work in flight.
    pub capability: Option<String>,
    /// 1 to 128 characters of `A-Za-z0-9._:-`.
    #[serde(rename = "type")]
    #[schema(example = "task.assign")]
    pub kind: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// 1 (most urgent) to 10; default 5.
    #[schema(value_type = u8, minimum = 1, maximum = 10, example = 5)]
    pub priority: Option<u8>,
    /// The ordering key; default: the recipient (`agent:<id>` or `capability:<name>`).
    pub group: Option<String>,
    /// The idempotency key: a second message with the same key within five minutes is not
    /// queued again, and one within a day of the first one's delivery does not reach the
    /// agent. The agent receives it with the message (to deduplicate by it beyond that:
    /// see `docs/messaging.md`). Default: the message id.
    pub dedup_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// The shape of a [`SendMessageRequest`].
pub const SEND_MESSAGE: Shape = Shape::Object(&Object {
    what: "a message",
    fields: &[
        Field::optional("to_agent", Shape::Nullable(&Shape::Str)),
        Field::optional("capability", Shape::Nullable(&Shape::Str)),
        Field::required("type", Shape::Str),
        Field::optional("payload", Shape::Any),
        Field::optional("priority", Shape::Nullable(&PRIORITY)),
        Field::optional("group", Shape::Nullable(&Shape::Str)),
        Field::optional("dedup_id", Shape::Nullable(&Shape::Str)),
        Field::optional("metadata", Shape::Map(&Shape::Any)),
    ],
});

/// A priority as a request gives it: 1 (most urgent) to 10.
pub const PRIORITY: Shape = Shape::Int { min: 1.0, max: 10.0 };

impl Shaped for SendMessageRequest {
    fn shape() -> &'static Shape {
        &SEND_MESSAGE
    }

    fn rules(&self) -> ValidationErrors {
        self.rules_at("$")
    }
}

impl SendMessageRequest {
    /// [`Shaped::rules`] with paths under `at` (`$.messages[3]` in a batch).
    pub fn rules_at(&self, at: &str) -> ValidationErrors {
        self.clone().validate(at, String::new(), None, Timestamp::UNIX_EPOCH).err().unwrap_or_default()
    }
}

/// The most a message's body may take once sealed: SQS's limit, 256 KiB.
pub const MAX_ENVELOPE_BYTES: usize = 256 * 1024;

/// Whether `s` is 1 to 128 of `A-Za-z0-9` and `._:-`: types, groups and dedup ids.
fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

impl SendMessageRequest {
    /// Checks every field (paths relative to `at`, `$` for a single message) and builds
    /// the message with `id`.
    pub fn validate(
        self,
        at: &str,
        id: String,
        sender: Option<String>,
        now: Timestamp,
    ) -> Result<Message, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let to = match (self.to_agent, self.capability) {
            (Some(agent), None) => {
                if !valid_agent_id(&agent) {
                    errors.add(format!("{at}.to_agent"), "must be an agent id");
                }
                Some(Recipient::Agent(agent))
            }
            (None, Some(capability)) => {
                if !valid_agent_id(&capability) {
                    errors.add(format!("{at}.capability"), "must be 1 to 64 of a-z, 0-9, '-' and '_'");
                }
                Some(Recipient::Capability(capability))
            }
            (Some(_), Some(_)) => {
                errors.add(format!("{at}.capability"), "give either to_agent or capability, not both");
                None
            }
            (None, None) => {
                errors.add(format!("{at}.to_agent"), "give to_agent or capability");
                None
            }
        };
        if !valid_token(&self.kind) {
            errors.add(format!("{at}.type"), "must be 1 to 128 of A-Za-z0-9 and ._:-");
        }
        let priority = match self.priority.map(Priority::new).transpose() {
            Ok(priority) => priority.unwrap_or_default(),
            Err(e) => {
                errors.add(format!("{at}.priority"), e.to_string());
                Priority::default()
            }
        };
        if let Some(group) = &self.group
            && !valid_token(group)
        {
            errors.add(format!("{at}.group"), "must be 1 to 128 of A-Za-z0-9 and ._:-");
        }
        if let Some(dedup_id) = &self.dedup_id
            && !valid_token(dedup_id)
        {
            errors.add(format!("{at}.dedup_id"), "must be 1 to 128 of A-Za-z0-9 and ._:-");
        }
        errors.into_result(())?;
        let Some(to) = to else { unreachable!("a missing recipient is an error above") };
        Ok(Message {
            group: self.group.unwrap_or_else(|| to.label()),
            idempotency_key: self.dedup_id.unwrap_or_else(|| id.clone()),
            id,
            kind: self.kind,
            to,
            payload: self.payload,
            priority,
            metadata: self.metadata,
            sender,
            created_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn validate(body: serde_json::Value) -> Result<Message, ValidationErrors> {
        serde_json::from_value::<SendMessageRequest>(body).unwrap().validate(
            "$",
            "m1".into(),
            None,
            Timestamp::UNIX_EPOCH,
        )
    }

    #[test]
    fn defaults_fill_priority_group_and_key() {
        let message = validate(json!({"to_agent": "summarizer", "type": "task.assign"})).unwrap();
        assert_eq!(message.priority, Priority::DEFAULT);
        assert_eq!(message.group, "agent:summarizer");
        assert_eq!(message.idempotency_key, "m1");
        assert_eq!(message.payload, serde_json::Value::Null);
    }

    #[test]
    fn every_bad_field_is_reported_with_its_path() {
        let errors = validate(json!({"to_agent": "x", "capability": "y", "type": "", "priority": 11, "group": "a b", "dedup_id": ""}))
            .unwrap_err();
        let paths: Vec<&str> = errors.errors().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["$.capability", "$.type", "$.priority", "$.group", "$.dedup_id"]);
        let none = validate(json!({"type": "t"})).unwrap_err();
        assert_eq!(none.errors()[0].path, "$.to_agent");
    }

    #[test]
    fn recipients_serialize_as_one_field() {
        assert_eq!(serde_json::to_value(Recipient::Agent("a".into())).unwrap(), json!({"to_agent": "a"}));
        assert_eq!(
            serde_json::to_value(Recipient::Capability("c".into())).unwrap(),
            json!({"capability": "c"})
        );
    }

    #[test]
    fn the_request_shape_names_the_fields_serde_reads() {
        crate::strict::shape::assert_names_serde_fields::<SendMessageRequest>();
    }
}
