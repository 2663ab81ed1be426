//! The agent spec: what an operator deploys, as a YAML or JSON file or an API body.
//!
//! Parsing is lenient about what is missing and strict about what is wrong: every
//! required field is checked by [`AgentSpec::validate`], so one pass reports every
//! problem with its path, before anything touches AWS.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::strict::shape::{Enum, Field, Object, Shape, Shaped, Tagged, Variant};
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
}

/// Where the agent goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetSpec {
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

impl Default for TargetSpec {
    fn default() -> Self {
        TargetSpec::BedrockAgent { alias: default_alias() }
    }
}

impl TargetSpec {
    pub fn kind(&self) -> TargetKind {
        match self {
            TargetSpec::BedrockAgent { .. } => TargetKind::BedrockAgent,
            TargetSpec::AgentcoreRuntime { .. } => TargetKind::AgentcoreRuntime,
            TargetSpec::Local { .. } => TargetKind::Local,
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

/// A target's kind. One spelling for agents' targets and deploy specs' alike: snake_case,
/// as every other name in the API; the kebab-case spelling specs used before
/// (`bedrock-agent`) is read as an alias and never written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    #[serde(alias = "bedrock-agent")]
    BedrockAgent,
    #[serde(alias = "agentcore-runtime")]
    AgentcoreRuntime,
    Local,
}

impl TargetKind {
    pub const ALL: [TargetKind; 3] =
        [TargetKind::BedrockAgent, TargetKind::AgentcoreRuntime, TargetKind::Local];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::BedrockAgent => "bedrock_agent",
            TargetKind::AgentcoreRuntime => "agentcore_runtime",
            TargetKind::Local => "local",
        }
    }

    /// The kind a name spells, in either spelling (`bedrock_agent`, `bedrock-agent`).
    pub fn named(name: &str) -> Option<TargetKind> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name || kind.as_str().replace('_', "-") == name)
    }

    /// `name` in the canonical spelling if it names a kind, else as it is.
    pub fn canonical(name: &str) -> String {
        Self::named(name).map_or_else(|| name.to_owned(), |kind| kind.as_str().to_owned())
    }
}

impl std::fmt::Display for TargetKind {
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
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub target: TargetSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register: Option<RegisterSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifySpec>,
}

impl Shaped for AgentSpec {
    fn shape() -> &'static Shape {
        &AGENT_SPEC
    }

    fn rules(&self) -> ValidationErrors {
        self.validate()
    }
}

const NAME_LIST: Shape = Shape::List(&Shape::Str);
const TEXT: Shape = Shape::Nullable(&Shape::Str);

/// The shape of an [`AgentSpec`].
static AGENT_SPEC: Shape = Shape::Object(&Object {
    what: "an agent spec",
    fields: &[
        Field::optional("name", Shape::Str),
        Field::optional("description", TEXT),
        Field::optional("instruction", TEXT),
        Field::optional("foundation_model", TEXT),
        Field::optional("agent_role_arn", TEXT),
        Field::optional("idle_session_ttl_seconds", Shape::U32),
        Field::optional("action_groups", Shape::List(&ACTION_GROUP)),
        Field::optional(
            "guardrail",
            Shape::Nullable(&Shape::Object(&Object {
                what: "a guardrail",
                fields: &[Field::optional("id", Shape::Str), Field::optional("version", Shape::Str)],
            })),
        ),
        Field::optional(
            "knowledge_bases",
            Shape::List(&Shape::Object(&Object {
                what: "a knowledge base",
                fields: &[Field::optional("id", Shape::Str), Field::optional("description", Shape::Str)],
            })),
        ),
        Field::optional("tags", Shape::Map(&Shape::Str)),
        Field::optional("target", TARGET_SPEC),
        Field::optional(
            "register",
            Shape::Nullable(&Shape::Object(&Object {
                what: "register",
                fields: &[Field::optional("id", Shape::Str), Field::optional("capabilities", NAME_LIST)],
            })),
        ),
        Field::optional(
            "verify",
            Shape::Nullable(&Shape::Object(&Object {
                what: "verify",
                fields: &[
                    Field::optional("input", Shape::Any),
                    Field::optional("expect", TEXT),
                    Field::optional("timeout_seconds", Shape::U32),
                ],
            })),
        ),
    ],
});

const ACTION_GROUP: Shape = Shape::Object(&Object {
    what: "an action group",
    fields: &[
        Field::optional("name", Shape::Str),
        Field::optional("description", TEXT),
        Field::optional("lambda_arn", TEXT),
        Field::optional(
            "api_schema",
            Shape::Nullable(&Shape::OneKey(&Object {
                what: "an api_schema",
                fields: &[
                    Field::optional("inline", Shape::Any),
                    Field::optional(
                        "s3",
                        Shape::Object(&Object {
                            what: "an S3 location",
                            fields: &[
                                Field::required("bucket", Shape::Str),
                                Field::required("key", Shape::Str),
                            ],
                        }),
                    ),
                ],
            })),
        ),
        Field::optional(
            "functions",
            Shape::List(&Shape::Object(&Object {
                what: "a function",
                fields: &[
                    Field::optional("name", Shape::Str),
                    Field::optional("description", TEXT),
                    Field::optional(
                        "parameters",
                        Shape::Map(&Shape::Object(&Object {
                            what: "a parameter",
                            fields: &[
                                Field::optional(
                                    "type",
                                    Shape::Enum(&Enum {
                                        what: "parameter type",
                                        values: &["string", "number", "integer", "boolean", "array"],
                                        aliases: &[],
                                    }),
                                ),
                                Field::optional("description", TEXT),
                                Field::optional("required", Shape::Bool),
                            ],
                        })),
                    ),
                ],
            })),
        ),
    ],
});

/// The shape of a [`TargetSpec`].
const TARGET_SPEC: Shape = Shape::Tagged(&Tagged {
    tag: "kind",
    what: "target kind",
    object: "a target",
    variants: &[
        Variant {
            name: "bedrock_agent",
            aliases: &["bedrock-agent"],
            fields: &[Field::optional("alias", Shape::Str)],
        },
        Variant {
            name: "agentcore_runtime",
            aliases: &["agentcore-runtime"],
            fields: &[
                Field::optional("artifact", Shape::Str),
                Field::optional(
                    "protocol",
                    Shape::Enum(&Enum { what: "protocol", values: &["HTTP", "MCP", "A2A"], aliases: &[] }),
                ),
                Field::optional("environment", Shape::Map(&Shape::Str)),
                Field::optional(
                    "network_mode",
                    Shape::Enum(&Enum { what: "network mode", values: &["PUBLIC", "VPC"], aliases: &[] }),
                ),
                Field::optional("subnets", NAME_LIST),
                Field::optional("security_groups", NAME_LIST),
                Field::optional("endpoint", Shape::Str),
            ],
        },
        Variant { name: "local", aliases: &[], fields: &[Field::optional("url", Shape::Str)] },
    ],
});

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
                    "the agent definition is {size} bytes (as compact JSON); the limit is {} bytes",
                    limits.max_bytes
                ),
            ));
        }
        crate::strict::shape::read(&self.document)
    }
}

impl AgentSpec {
    /// Every rule the target would enforce, and ours. Bedrock's rules apply to the
    /// `bedrock_agent` target, AgentCore's to `agentcore_runtime`.
    pub fn validate(&self) -> ValidationErrors {
        let mut errors = ValidationErrors::new();
        let kind = self.target.kind();
        match kind {
            TargetKind::AgentcoreRuntime => {
                if !runtime_name(&self.name) {
                    errors.add(
                        "$.name",
                        "an AgentCore runtime name is 1 to 48 of letters, digits and `_`, starting with a letter",
                    );
                }
            }
            _ => {
                if !bedrock_name(&self.name) {
                    errors.add(
                        "$.name",
                        "required: 1 to 100 letters and digits, each optionally followed by one `-` or `_`",
                    );
                }
            }
        }
        if let Some(description) = &self.description
            && (description.is_empty() || description.chars().count() > bedrock_limits::DESCRIPTION_MAX)
        {
            errors.add("$.description", "1 to 200 characters");
        }
        let aws = kind != TargetKind::Local;
        if aws {
            match &self.agent_role_arn {
                None => errors.add("$.agent_role_arn", "required: the IAM role the agent runs as"),
                Some(arn) if !role_arn(arn) => errors
                    .add("$.agent_role_arn", "an IAM role ARN: arn:aws:iam::<12-digit account>:role/<name>"),
                _ => {}
            }
        }
        if kind == TargetKind::BedrockAgent {
            self.validate_bedrock(&mut errors);
        } else {
            for (field, given) in [
                ("action_groups", !self.action_groups.is_empty()),
                ("knowledge_bases", !self.knowledge_bases.is_empty()),
                ("guardrail", self.guardrail.is_some()),
            ] {
                if given {
                    errors.add(format!("$.{field}"), format!("only the bedrock_agent target has {field}"));
                }
            }
        }
        match &self.target {
            TargetSpec::BedrockAgent { alias } => {
                if !bedrock_name(alias) || alias.len() > 100 {
                    errors.add(
                        "$.target.alias",
                        "1 to 100 letters and digits, each optionally followed by `-` or `_`",
                    );
                }
            }
            TargetSpec::AgentcoreRuntime {
                artifact,
                protocol,
                network_mode,
                subnets,
                security_groups,
                endpoint,
                ..
            } => {
                if artifact.is_empty() {
                    errors.add("$.target.artifact", "required: the container image URI");
                } else if !artifact.contains('/') || artifact.len() > 1024 {
                    errors.add("$.target.artifact", "a container image URI (<registry>/<repository>:<tag>)");
                }
                if !["HTTP", "MCP", "A2A"].contains(&protocol.as_str()) {
                    errors.add("$.target.protocol", "HTTP, MCP or A2A");
                }
                match network_mode.as_str() {
                    "PUBLIC" => {}
                    "VPC" => {
                        if subnets.is_empty() {
                            errors.add("$.target.subnets", "required with network_mode VPC");
                        }
                        if security_groups.is_empty() {
                            errors.add("$.target.security_groups", "required with network_mode VPC");
                        }
                    }
                    _ => errors.add("$.target.network_mode", "PUBLIC or VPC"),
                }
                if !runtime_name(endpoint) {
                    errors.add(
                        "$.target.endpoint",
                        "1 to 48 of letters, digits and `_`, starting with a letter",
                    );
                }
            }
            TargetSpec::Local { url } => match url::Url::parse(url) {
                Ok(u) if ["http", "https"].contains(&u.scheme()) => {}
                _ => errors
                    .add("$.target.url", "required: the http(s) URL of the agent that serves this version"),
            },
        }
        if let Some(register) = &self.register {
            if !crate::agents::valid_agent_id(&register.id) {
                errors.add(
                    "$.register.id",
                    "1 to 64 of a-z, 0-9, `-` and `_`, starting with a letter or digit",
                );
            }
            for (i, capability) in register.capabilities.iter().enumerate() {
                if capability.trim().is_empty() {
                    errors.add(format!("$.register.capabilities[{i}]"), "must not be empty");
                }
            }
        }
        if let Some(verify) = &self.verify {
            if !verify.input.is_object() {
                errors.add("$.verify.input", "a JSON object");
            }
            if let Some(pattern) = &verify.expect
                && let Err(e) = regex_lite::Regex::new(pattern)
            {
                errors.add("$.verify.expect", format!("not a regular expression: {e}"));
            }
            if !(1..=300).contains(&verify.timeout_seconds) {
                errors.add("$.verify.timeout_seconds", "1 to 300");
            }
        }
        if self.tags.len() > bedrock_limits::TAGS_MAX {
            errors.add("$.tags", format!("at most {} tags", bedrock_limits::TAGS_MAX));
        }
        for (key, value) in &self.tags {
            if key.is_empty() || key.len() > 128 || value.len() > 256 {
                errors.add(format!("$.tags.{key}"), "keys 1 to 128 characters, values at most 256");
            }
        }
        errors
    }

    fn validate_bedrock(&self, errors: &mut ValidationErrors) {
        use bedrock_limits::*;
        match &self.instruction {
            None => errors.add("$.instruction", "required"),
            Some(text) => {
                let n = text.chars().count();
                if !(INSTRUCTION_MIN..=INSTRUCTION_MAX).contains(&n) {
                    errors.add(
                        "$.instruction",
                        format!("{INSTRUCTION_MIN} to {INSTRUCTION_MAX} characters (it has {n})"),
                    );
                }
            }
        }
        match &self.foundation_model {
            None => errors.add("$.foundation_model", "required: a model id or ARN"),
            Some(model) if model.is_empty() || model.len() > FOUNDATION_MODEL_MAX => {
                errors.add("$.foundation_model", "1 to 2,048 characters")
            }
            _ => {}
        }
        if !(IDLE_SESSION_TTL_MIN..=IDLE_SESSION_TTL_MAX).contains(&self.idle_session_ttl_seconds) {
            errors.add(
                "$.idle_session_ttl_seconds",
                format!("{IDLE_SESSION_TTL_MIN} to {IDLE_SESSION_TTL_MAX}"),
            );
        }
        if self.action_groups.len() > ACTION_GROUPS_MAX {
            errors.add(
                "$.action_groups",
                format!("at most {ACTION_GROUPS_MAX} action groups (it has {})", self.action_groups.len()),
            );
        }
        let mut names = std::collections::HashSet::new();
        for (i, group) in self.action_groups.iter().enumerate() {
            let at = format!("$.action_groups[{i}]");
            if !bedrock_name(&group.name) {
                errors.add(
                    format!("{at}.name"),
                    "required: 1 to 100 letters and digits, each optionally followed by `-` or `_`",
                );
            } else if !names.insert(group.name.as_str()) {
                errors.add(format!("{at}.name"), format!("{:?} is named twice", group.name));
            }
            if let Some(description) = &group.description
                && (description.is_empty() || description.chars().count() > DESCRIPTION_MAX)
            {
                errors.add(format!("{at}.description"), "1 to 200 characters");
            }
            if let Some(arn) = &group.lambda_arn
                && !arn.starts_with("arn:aws")
            {
                errors.add(format!("{at}.lambda_arn"), "a Lambda function ARN");
            }
            match (&group.api_schema, group.functions.is_empty()) {
                (None, true) => errors.add(at.clone(), "needs an api_schema or functions"),
                (Some(_), false) => errors.add(at.clone(), "has both an api_schema and functions: give one"),
                (Some(schema), true) => check_api_schema(schema, &format!("{at}.api_schema"), errors),
                (None, false) => check_functions(&group.functions, &at, errors),
            }
        }
        if self.knowledge_bases.len() > KNOWLEDGE_BASES_MAX {
            errors.add("$.knowledge_bases", format!("at most {KNOWLEDGE_BASES_MAX} knowledge bases"));
        }
        for (i, kb) in self.knowledge_bases.iter().enumerate() {
            if !kb_id(&kb.id) {
                errors.add(format!("$.knowledge_bases[{i}].id"), "required: 10 letters and digits");
            }
            if kb.description.is_empty() || kb.description.chars().count() > DESCRIPTION_MAX {
                errors.add(format!("$.knowledge_bases[{i}].description"), "required: 1 to 200 characters");
            }
        }
        if let Some(guardrail) = &self.guardrail {
            if guardrail.id.is_empty() || guardrail.id.len() > 2048 {
                errors.add("$.guardrail.id", "required: the guardrail's id or ARN");
            }
            if !(guardrail.version == "DRAFT" || guardrail.version.parse::<u32>().is_ok_and(|v| v > 0)) {
                errors.add("$.guardrail.version", "DRAFT or a version number");
            }
        }
    }

    /// The spec's hash: SHA-256 (hex) of its compact JSON.
    pub fn hash(document: &Value) -> String {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(document.to_string().as_bytes()))
    }
}

fn check_api_schema(schema: &ApiSchema, at: &str, errors: &mut ValidationErrors) {
    match schema {
        ApiSchema::S3 { bucket, key } => {
            if bucket.len() < 3 || bucket.len() > 63 {
                errors.add(format!("{at}.s3.bucket"), "an S3 bucket name (3 to 63 characters)");
            }
            if key.is_empty() {
                errors.add(format!("{at}.s3.key"), "required");
            }
        }
        ApiSchema::Inline(value) => {
            let parsed = match value {
                Value::String(text) => match serde_json::from_str::<Value>(text) {
                    Ok(v) => Ok(v),
                    Err(_) => crate::yaml::from_str::<Value>(text).map_err(|e| e.to_string()),
                },
                other => Ok(other.clone()),
            };
            match parsed {
                Err(e) => {
                    errors.add(format!("{at}.inline"), format!("the OpenAPI schema does not parse: {e}"))
                }
                Ok(doc) => {
                    if !doc.get("openapi").and_then(Value::as_str).is_some_and(|v| v.starts_with("3.")) {
                        errors
                            .add(format!("{at}.inline.openapi"), "an OpenAPI 3 document (`openapi: 3.0.0`)");
                    }
                    match doc.get("paths").and_then(Value::as_object) {
                        Some(paths) if !paths.is_empty() => {}
                        _ => errors.add(format!("{at}.inline.paths"), "at least one path"),
                    }
                    if schema.payload().is_some_and(|p| p.len() > 100_000) {
                        errors.add(format!("{at}.inline"), "at most 100,000 characters");
                    }
                }
            }
        }
    }
}

fn check_functions(functions: &[FunctionSpec], at: &str, errors: &mut ValidationErrors) {
    use bedrock_limits::*;
    if functions.len() > FUNCTIONS_PER_GROUP_MAX {
        errors.add(format!("{at}.functions"), format!("at most {FUNCTIONS_PER_GROUP_MAX} functions"));
    }
    for (j, function) in functions.iter().enumerate() {
        let at = format!("{at}.functions[{j}]");
        if !bedrock_name(&function.name) {
            errors.add(
                format!("{at}.name"),
                "required: letters and digits, each optionally followed by `-` or `_`",
            );
        }
        if function.parameters.len() > PARAMETERS_PER_FUNCTION_MAX {
            errors
                .add(format!("{at}.parameters"), format!("at most {PARAMETERS_PER_FUNCTION_MAX} parameters"));
        }
        for (name, parameter) in &function.parameters {
            if !["string", "number", "integer", "boolean", "array"].contains(&parameter.kind.as_str()) {
                errors
                    .add(format!("{at}.parameters.{name}.type"), "string, number, integer, boolean or array");
            }
        }
    }
}

/// Bedrock's name pattern `([0-9a-zA-Z][_-]?){1,100}`.
fn bedrock_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let mut i = 0;
    let mut units = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_alphanumeric() {
            return false;
        }
        i += 1;
        if i < bytes.len() && matches!(bytes[i], b'-' | b'_') {
            i += 1;
        }
        units += 1;
    }
    (1..=100).contains(&units)
}

/// AgentCore's runtime and endpoint name pattern `[a-zA-Z][a-zA-Z0-9_]{0,47}`.
fn runtime_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 48
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn role_arn(arn: &str) -> bool {
    let Some(rest) = arn.strip_prefix("arn:") else { return false };
    let parts: Vec<&str> = rest.splitn(5, ':').collect();
    parts.len() == 5
        && parts[0].starts_with("aws")
        && parts[1] == "iam"
        && parts[3].len() == 12
        && parts[3].bytes().all(|b| b.is_ascii_digit())
        && parts[4].strip_prefix("role/").is_some_and(|n| !n.is_empty())
        && arn.len() <= 2048
}

fn kb_id(id: &str) -> bool {
    id.len() == 10 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests;
