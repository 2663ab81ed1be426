//! The agent spec: what an operator deploys, as a YAML or JSON file or an API body.
//!
//! Parsing is lenient about what is missing and strict about what is wrong: every
//! required field is checked by [`AgentSpec::validate`], so one pass reports every
//! problem with its path, before anything touches AWS.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::validation::ValidationErrors;

/// The size limit existing users work to: 6.5 KB.
pub const DEFAULT_MAX_SPEC_BYTES: usize = 6_656;

/// Bounds checked by [`AgentSpec::validate`]. Bedrock's own limits are fixed by the
/// service; the size limit is the operator's (`TDEV_DEPLOY_MAX_SPEC_BYTES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecLimits {
    /// The agent definition's size: its compact JSON form, in bytes.
    pub max_bytes: usize,
}

impl Default for SpecLimits {
    fn default() -> Self {
        Self { max_bytes: DEFAULT_MAX_SPEC_BYTES }
    }
}

/// Bedrock Agents' limits (the CreateAgent and CreateAgentActionGroup API reference, and
/// the default quotas).
pub mod bedrock_limits {
    pub const INSTRUCTION_MIN: usize = 40;
    pub const INSTRUCTION_MAX: usize = 20_000;
    pub const DESCRIPTION_MAX: usize = 200;
    pub const IDLE_SESSION_TTL_MIN: u32 = 60;
    pub const IDLE_SESSION_TTL_MAX: u32 = 5_400;
    pub const FOUNDATION_MODEL_MAX: usize = 2_048;
    pub const ACTION_GROUPS_MAX: usize = 20;
    pub const FUNCTIONS_PER_GROUP_MAX: usize = 11;
    pub const PARAMETERS_PER_FUNCTION_MAX: usize = 5;
    pub const KNOWLEDGE_BASES_MAX: usize = 2;
    pub const TAGS_MAX: usize = 50;
    /// The default quota "Agent Collaborators per Agent" (L-EAFCD549).
    pub const COLLABORATORS_MAX: usize = 10;
    pub const COLLABORATION_INSTRUCTION_MAX: usize = 4_000;
}

/// Where the agent goes: the platform it is deployed on, with that platform's settings
/// (the spec's `target`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = TargetSpec)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PlatformSpec {
    /// Amazon Bedrock Agents: the agent's draft is updated, prepared, and published as a
    /// new version through `alias`. (`bedrock-agent` is read too.)
    #[serde(alias = "bedrock-agent")]
    BedrockAgent {
        /// The alias that serves the published version. Default `live`.
        #[serde(default = "default_alias")]
        alias: String,
    },
    /// Amazon Bedrock AgentCore Runtime: each deployment is a new runtime version, and
    /// `endpoint` is pointed at it. (`agentcore-runtime` is read too.)
    #[serde(alias = "agentcore-runtime")]
    AgentcoreRuntime {
        /// The container image URI (ECR).
        #[serde(default)]
        artifact: String,
        /// `HTTP` (default), `MCP` or `A2A`.
        #[serde(default = "default_protocol")]
        protocol: String,
        #[serde(default)]
        environment: BTreeMap<String, String>,
        /// `PUBLIC` (default) or `VPC` (then `subnets` and `security_groups`).
        #[serde(default = "default_network_mode")]
        network_mode: String,
        #[serde(default)]
        subnets: Vec<String>,
        #[serde(default)]
        security_groups: Vec<String>,
        /// The endpoint that serves the deployed version. Default `live`.
        #[serde(default = "default_alias")]
        endpoint: String,
    },
    /// The local stack's own target: versions kept in the embedded store, each version
    /// served by the HTTP agent at `url`.
    Local {
        #[serde(default)]
        url: String,
    },
}

impl Default for PlatformSpec {
    fn default() -> Self {
        PlatformSpec::BedrockAgent { alias: default_alias() }
    }
}

impl PlatformSpec {
    pub fn kind(&self) -> PlatformKind {
        match self {
            PlatformSpec::BedrockAgent { .. } => PlatformKind::BedrockAgent,
            PlatformSpec::AgentcoreRuntime { .. } => PlatformKind::AgentcoreRuntime,
            PlatformSpec::Local { .. } => PlatformKind::Local,
        }
    }
}

fn default_alias() -> String {
    "live".to_owned()
}
fn default_protocol() -> String {
    "HTTP".to_owned()
}
fn default_network_mode() -> String {
    "PUBLIC".to_owned()
}

/// A platform's kind. One spelling for agents' targets and deploy specs' alike:
/// snake_case, as every other name in the API; the kebab-case spelling specs used before
/// (`bedrock-agent`) is read as an alias and never written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlatformKind {
    #[serde(alias = "bedrock-agent")]
    BedrockAgent,
    #[serde(alias = "agentcore-runtime")]
    AgentcoreRuntime,
    Local,
}

impl PlatformKind {
    pub const ALL: [PlatformKind; 3] =
        [PlatformKind::BedrockAgent, PlatformKind::AgentcoreRuntime, PlatformKind::Local];

    pub fn as_str(self) -> &'static str {
        match self {
            PlatformKind::BedrockAgent => "bedrock_agent",
            PlatformKind::AgentcoreRuntime => "agentcore_runtime",
            PlatformKind::Local => "local",
        }
    }

    /// The kind a name spells, in either spelling (`bedrock_agent`, `bedrock-agent`).
    pub fn named(name: &str) -> Option<PlatformKind> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name || kind.as_str().replace('_', "-") == name)
    }

    /// `name` in the canonical spelling if it names a kind, else as it is.
    pub fn canonical(name: &str) -> String {
        Self::named(name).map_or_else(|| name.to_owned(), |kind| kind.as_str().to_owned())
    }
}

impl std::fmt::Display for PlatformKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action group's OpenAPI schema: inline (text, or a YAML/JSON mapping) or in S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ApiSchema {
    /// The schema itself; a mapping is sent to Bedrock as JSON.
    #[schema(value_type = Object)]
    Inline(Value),
    S3 {
        bucket: String,
        key: String,
    },
}

impl ApiSchema {
    /// The inline schema as the text Bedrock takes (`payload`).
    pub fn payload(&self) -> Option<String> {
        match self {
            ApiSchema::Inline(Value::String(text)) => Some(text.clone()),
            ApiSchema::Inline(other) => Some(other.to_string()),
            ApiSchema::S3 { .. } => None,
        }
    }
}

/// One function of a function-schema action group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, ParameterSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParameterSpec {
    /// `string`, `number`, `integer`, `boolean` or `array`.
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionGroupSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The Lambda function that carries the actions out; without one, Bedrock returns
    /// control to the caller (`RETURN_CONTROL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_arn: Option<String>,
    /// An OpenAPI schema, or else `functions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_schema: Option<ApiSchema>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub functions: Vec<FunctionSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardrailSpec {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KnowledgeBaseSpec {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub description: String,
}

/// How a supervisor works with its collaborators (Bedrock's `agentCollaboration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Collaboration {
    /// The supervisor plans each request, hands parts of it to its collaborators and
    /// combines their answers.
    Supervisor,
    /// A simple request goes straight to the one collaborator it is for; the others are
    /// handled as by `supervisor`.
    SupervisorRouter,
}

/// An agent a supervisor hands work to: Bedrock's agent collaborator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollaboratorSpec {
    /// The name the supervisor knows it by (letters and digits, each optionally followed
    /// by `-` or `_`; unique in the spec).
    #[serde(default)]
    pub name: String,
    /// The alias of the agent that collaborates:
    /// `arn:aws:bedrock:<region>:<account>:agent-alias/<agent id>/<alias id>`.
    #[serde(default)]
    pub agent_alias_arn: String,
    /// When and how the supervisor should use it (1 to 4,000 characters).
    #[serde(default)]
    pub instruction: String,
    /// Whether the collaborator is sent the conversation so far. Default false.
    #[serde(default)]
    pub relay_history: bool,
}

/// After a deployment, put the agent in the registry (or update it there), so that
/// workflows and messages reach the deployed version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterSpec {
    /// The registry id (1 to 64 of `a-z`, `0-9`, `-`, `_`).
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// The smoke test run against the new version before it counts as deployed. A failure
/// rolls the deployment back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifySpec {
    /// The JSON object the agent is invoked with.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub input: Value,
    /// A regular expression the answer (as compact JSON) must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// Default 30.
    #[serde(default = "default_verify_timeout")]
    pub timeout_seconds: u32,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}
fn default_verify_timeout() -> u32 {
    30
}

/// An agent to deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// The agent's name on the target, and what its deployments are filed under.
    #[serde(default)]
    #[schema(example = "support-bot")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the agent is told to do (Bedrock Agents: required, 40 to 20,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    /// The model id or ARN (Bedrock Agents: required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foundation_model: Option<String>,
    /// The IAM role the agent (or runtime) runs as (required on AWS targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_role_arn: Option<String>,
    /// Default 600.
    #[serde(default = "default_idle_ttl")]
    pub idle_session_ttl_seconds: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub action_groups: Vec<ActionGroupSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrail: Option<GuardrailSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub knowledge_bases: Vec<KnowledgeBaseSpec>,
    /// Makes the agent a supervisor of `collaborators` (Bedrock Agents); absent, it works
    /// alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collaboration: Option<Collaboration>,
    /// The agents a supervisor hands work to (with `collaboration`; at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collaborators: Vec<CollaboratorSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, rename = "target")]
    pub platform: PlatformSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register: Option<RegisterSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifySpec>,
}

fn default_idle_ttl() -> u32 {
    600
}

/// A spec that could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecParseError(pub ValidationErrors);

/// What a submitted document is, before it is a spec: its JSON form (kept on the
/// deployment record even when it is rejected) and its agent name, if one can be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    pub document: Value,
    pub name: Option<String>,
}

impl Submitted {
    /// Reads a YAML or JSON document (JSON is YAML); `Err` only when it is neither.
    pub fn parse(text: &str) -> Result<Self, SpecParseError> {
        let document: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(_) => crate::yaml::from_str(text).map_err(|e| {
                SpecParseError(ValidationErrors::single("$", format!("not YAML or JSON: {e}")))
            })?,
        };
        Ok(Self::from_value(document))
    }

    /// Reads a document sent as `format` (a request's content type): JSON must be JSON,
    /// so a broken JSON body is told what is wrong with it as JSON.
    pub fn parse_as(text: &str, format: crate::workflow::Format) -> Result<Self, SpecParseError> {
        let document: Value = match format {
            crate::workflow::Format::Json => crate::strict::value_from_slice(text.as_bytes())
                .map_err(|e| SpecParseError(ValidationErrors::single("$", format!("not JSON: {e}"))))?,
            crate::workflow::Format::Yaml => crate::yaml::value_from_str(text)
                .map_err(|e| SpecParseError(ValidationErrors::single("$", format!("not YAML: {e}"))))?,
        };
        Ok(Self::from_value(document))
    }

    pub fn from_value(document: Value) -> Self {
        let name = document.get("name").and_then(Value::as_str).map(str::to_owned);
        Self { document, name }
    }

    /// The document's size as the limit counts it: compact JSON, in bytes.
    pub fn size(&self) -> usize {
        self.document.to_string().len()
    }

    /// The spec, every problem reported at once with its path.
    pub fn spec(&self, limits: &SpecLimits) -> Result<AgentSpec, ValidationErrors> {
        let size = self.size();
        if size > limits.max_bytes {
            // Said first and alone: a spec this large is not read further.
            return Err(ValidationErrors::single(
                "$",
                format!(
                    "the agent definition is {size} bytes (as compact JSON); the limit is {} bytes \
                     (set by TDEV_DEPLOY_MAX_SPEC_BYTES, the template parameter DeployMaxSpecBytes)",
                    limits.max_bytes
                ),
            ));
        }
        crate::strict::shape::read(&self.document)
    }
}

mod shape;
#[cfg(test)]
mod tests;
mod validate;
