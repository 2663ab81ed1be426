//! Agents: how each is reached ([`AgentTarget`]), what it can do, whether it takes work,
//! and the request bodies that register and change one.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::strict::shape::{Enum, Field, Object, Shape, Shaped, Tagged, Variant};
use crate::validation::ValidationErrors;

/// The longest one call to an agent may take (a message's delivery, a step's attempt
/// unless the step says less) when nothing sets it: below a 60 s worker Lambda's timeout.
/// The local stack gives a step's attempt longer (see `src/stack.rs`).
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(50);

/// The shape of an [`AgentTarget`].
pub const AGENT_TARGET: Shape = Shape::Tagged(&Tagged {
    tag: "kind",
    what: "target kind",
    object: "a target",
    variants: &[
        Variant { name: "http", aliases: &[], fields: &[Field::required("url", Shape::Str)] },
        Variant { name: "lambda", aliases: &[], fields: &[Field::required("function", Shape::Str)] },
        Variant {
            name: "bedrock_agent",
            aliases: &["bedrock-agent"],
            fields: &[Field::required("agent_id", Shape::Str), Field::required("alias_id", Shape::Str)],
        },
        Variant {
            name: "agentcore_runtime",
            aliases: &["agentcore-runtime"],
            fields: &[
                Field::required("runtime_arn", Shape::Str),
                Field::optional("qualifier", Shape::Nullable(&Shape::Str)),
            ],
        },
    ],
});

const AGENT_STATUS: Shape =
    Shape::Enum(&Enum { what: "agent status", values: &["active", "draining", "inactive"], aliases: &[] });

impl Shaped for NewAgentRequest {
    fn shape() -> &'static Shape {
        static SHAPE: Shape = Shape::Object(&Object {
            what: "an agent",
            fields: &[
                Field::required("id", Shape::Str),
                Field::required("name", Shape::Str),
                Field::required("target", AGENT_TARGET),
                Field::optional("capabilities", Shape::List(&Shape::Str)),
                Field::optional("status", AGENT_STATUS),
                Field::optional("max_concurrency", Shape::Nullable(&Shape::U32)),
            ],
        });
        &SHAPE
    }

    fn rules(&self) -> ValidationErrors {
        self.clone().validate(Timestamp::UNIX_EPOCH).err().unwrap_or_default()
    }
}

impl Shaped for AgentUpdate {
    fn shape() -> &'static Shape {
        static SHAPE: Shape = Shape::Object(&Object {
            what: "an agent update",
            fields: &[
                Field::optional("name", Shape::Nullable(&Shape::Str)),
                Field::optional("target", Shape::Nullable(&AGENT_TARGET)),
                Field::optional("capabilities", Shape::Nullable(&Shape::List(&Shape::Str))),
                Field::optional("status", Shape::Nullable(&AGENT_STATUS)),
                Field::optional("max_concurrency", Shape::Nullable(&Shape::U32)),
            ],
        });
        &SHAPE
    }
}

/// How to reach an agent: the invoker port dispatches on this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentTarget {
    /// A JSON POST to `url`.
    Http { url: String },
    /// An AWS Lambda function, by name or ARN.
    Lambda { function: String },
    /// An Amazon Bedrock agent, through InvokeAgent. (`bedrock-agent` is read too.)
    #[serde(alias = "bedrock-agent")]
    BedrockAgent { agent_id: String, alias_id: String },
    /// An Amazon Bedrock AgentCore runtime, through InvokeAgentRuntime. (`agentcore-runtime`
    /// is read too.)
    #[serde(alias = "agentcore-runtime")]
    AgentcoreRuntime {
        runtime_arn: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        qualifier: Option<String>,
    },
}

impl AgentTarget {
    pub fn kind(&self) -> &'static str {
        match self {
            AgentTarget::Http { .. } => "http",
            AgentTarget::Lambda { .. } => "lambda",
            AgentTarget::BedrockAgent { .. } => "bedrock_agent",
            AgentTarget::AgentcoreRuntime { .. } => "agentcore_runtime",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Agent {
    /// Chosen by whoever registers it; workflows name agents by it.
    #[schema(example = "extractor")]
    pub id: String,
    pub name: String,
    pub target: AgentTarget,
    /// What it can do, for capability routing (e.g. `summarize`).
    pub capabilities: BTreeSet<String>,
    #[serde(default)]
    pub status: AgentStatus,
    /// The most messages it is sent at once; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    pub created_at: Timestamp,
}

/// Whether an agent takes work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Takes messages addressed to it and capability-routed ones.
    #[default]
    Active,
    /// Finishing up: takes messages addressed to it, but no capability-routed ones.
    Draining,
    /// Takes nothing: messages for it are dead-lettered (`agent_inactive`).
    Inactive,
}

/// The body of a register-agent request, as sent.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgentRequest {
    /// 1 to 64 of `a-z`, `0-9`, `-` and `_`, starting with a letter or digit.
    #[schema(example = "extractor")]
    pub id: String,
    #[schema(example = "Extracts raw data")]
    pub name: String,
    pub target: AgentTarget,
    #[serde(default)]
    #[schema(example = json!(["extract"]))]
    pub capabilities: Vec<String>,
    /// Default `active`.
    #[serde(default)]
    pub status: AgentStatus,
    /// 1 or more; unlimited when absent.
    pub max_concurrency: Option<u32>,
}

/// The body of an update (`PATCH /v1/agents/{id}`): only the fields given change.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentUpdate {
    pub name: Option<String>,
    pub target: Option<AgentTarget>,
    pub capabilities: Option<Vec<String>>,
    pub status: Option<AgentStatus>,
    /// 1 or more; `null` makes it unlimited.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    pub max_concurrency: Option<Option<u32>>,
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

impl AgentUpdate {
    /// The agent with the update applied, every field checked as on registration.
    pub fn apply(self, agent: Agent) -> Result<Agent, ValidationErrors> {
        let request = NewAgentRequest {
            id: agent.id,
            name: self.name.unwrap_or(agent.name),
            target: self.target.unwrap_or(agent.target),
            capabilities: self.capabilities.unwrap_or_else(|| agent.capabilities.into_iter().collect()),
            status: self.status.unwrap_or(agent.status),
            max_concurrency: self.max_concurrency.unwrap_or(agent.max_concurrency),
        };
        request.validate(agent.created_at)
    }
}

/// Whether `id` is a valid agent id.
pub fn valid_agent_id(id: &str) -> bool {
    let mut chars = id.chars();
    id.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl NewAgentRequest {
    /// Checks every field, reporting every problem with its JSON path.
    pub fn validate(self, now: Timestamp) -> Result<Agent, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if !valid_agent_id(&self.id) {
            errors.add("$.id", "must be 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter or digit");
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            errors.add("$.name", "must be 1 to 200 characters");
        } else if crate::validation::unsafe_char(&self.name).is_some() {
            errors.add("$.name", crate::validation::UNSAFE_TEXT);
        }
        match &self.target {
            AgentTarget::Http { url } => {
                let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
                if !scheme_ok || url.len() <= "https://".len() || url.chars().any(char::is_whitespace) {
                    errors.add("$.target.url", "must be an http:// or https:// URL");
                }
            }
            AgentTarget::Lambda { function } if function.trim().is_empty() => {
                errors.add("$.target.function", "must name a function");
            }
            AgentTarget::BedrockAgent { agent_id, alias_id } => {
                if agent_id.trim().is_empty() {
                    errors.add("$.target.agent_id", "must not be empty");
                }
                if alias_id.trim().is_empty() {
                    errors.add("$.target.alias_id", "must not be empty");
                }
            }
            AgentTarget::AgentcoreRuntime { runtime_arn, .. } if !runtime_arn.starts_with("arn:") => {
                errors.add("$.target.runtime_arn", "must be an ARN");
            }
            _ => {}
        }
        for (i, capability) in self.capabilities.iter().enumerate() {
            if !valid_agent_id(capability) {
                errors.add(format!("$.capabilities[{i}]"), "must be 1 to 64 of a-z, 0-9, '-' and '_'");
            }
        }
        if self.max_concurrency == Some(0) {
            errors.add("$.max_concurrency", "must be at least 1 (leave it out for no limit)");
        }
        errors.into_result(())?;
        Ok(Agent {
            id: self.id,
            name: self.name.trim().to_owned(),
            target: self.target,
            capabilities: self.capabilities.into_iter().collect(),
            status: self.status,
            max_concurrency: self.max_concurrency,
            created_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(body: serde_json::Value) -> NewAgentRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn a_valid_request_becomes_an_agent() {
        let agent = request(json!({"id": "extractor", "name": " Extractor ", "target": {"kind": "http", "url": "http://127.0.0.1:9/x"}, "capabilities": ["extract", "extract"]}))
            .validate(Timestamp::UNIX_EPOCH)
            .unwrap();
        assert_eq!(agent.name, "Extractor");
        assert_eq!(agent.capabilities.len(), 1);
        assert_eq!(agent.target.kind(), "http");
    }

    #[test]
    fn every_bad_field_is_reported_with_its_path() {
        let errors = request(json!({"id": "Bad Id", "name": "", "target": {"kind": "http", "url": "ftp://x"}, "capabilities": ["ok", "NOT OK"]}))
            .validate(Timestamp::UNIX_EPOCH)
            .unwrap_err();
        let paths: Vec<&str> = errors.errors().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["$.id", "$.name", "$.target.url", "$.capabilities[1]"]);
    }

    #[test]
    fn targets_are_tagged_by_kind_and_unknown_kinds_refused() {
        let target: AgentTarget =
            serde_json::from_value(json!({"kind": "bedrock_agent", "agent_id": "A1", "alias_id": "L1"}))
                .unwrap();
        assert_eq!(target.kind(), "bedrock_agent");
        assert!(serde_json::from_value::<AgentTarget>(json!({"kind": "smtp", "host": "x"})).is_err());
    }

    #[test]
    fn request_shapes_name_the_fields_serde_reads() {
        crate::strict::shape::assert_names_serde_fields::<NewAgentRequest>();
        crate::strict::shape::assert_names_serde_fields::<AgentUpdate>();
    }

    #[test]
    fn the_target_shape_reads_every_kind_and_alias_serde_reads() {
        let Shape::Tagged(targets) = AGENT_TARGET else { panic!() };
        for variant in targets.variants {
            let mut body = serde_json::Map::new();
            body.insert("kind".into(), json!(variant.name));
            for field in variant.fields.iter().filter(|f| f.required) {
                body.insert(field.name.into(), json!("arn:x"));
            }
            let target = read_target(&serde_json::Value::Object(body.clone()));
            assert_eq!(target.kind(), variant.name);
            for alias in variant.aliases {
                body.insert("kind".into(), json!(alias));
                assert_eq!(read_target(&serde_json::Value::Object(body.clone())).kind(), variant.name);
            }
        }
    }

    fn read_target(value: &serde_json::Value) -> AgentTarget {
        assert!(crate::strict::shape::check(value, &AGENT_TARGET).is_empty(), "{value}");
        Deserialize::deserialize(crate::strict::Strict(value)).unwrap()
    }
}
