//! The rules of an [`AgentSpec`]: every one the target would enforce, and ours, each
//! problem reported with its path.

use super::*;

impl AgentSpec {
    /// Every rule the target would enforce, and ours. Bedrock's rules apply to the
    /// `bedrock_agent` target, AgentCore's to `agentcore_runtime`.
    pub fn validate(&self) -> ValidationErrors {
        let mut errors = ValidationErrors::new();
        let kind = self.platform.kind();
        match kind {
            PlatformKind::AgentcoreRuntime => {
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
        let aws = kind != PlatformKind::Local;
        if aws {
            match &self.agent_role_arn {
                None => errors.add("$.agent_role_arn", "required: the IAM role the agent runs as"),
                Some(arn) if !role_arn(arn) => errors
                    .add("$.agent_role_arn", "an IAM role ARN: arn:aws:iam::<12-digit account>:role/<name>"),
                _ => {}
            }
        }
        if kind == PlatformKind::BedrockAgent {
            self.validate_bedrock(&mut errors);
        } else {
            for (field, given) in [
                ("action_groups", !self.action_groups.is_empty()),
                ("knowledge_bases", !self.knowledge_bases.is_empty()),
                ("guardrail", self.guardrail.is_some()),
                ("collaboration", self.collaboration.is_some()),
                ("collaborators", !self.collaborators.is_empty()),
            ] {
                if given {
                    errors.add(format!("$.{field}"), format!("only the bedrock_agent target has {field}"));
                }
            }
        }
        match &self.platform {
            PlatformSpec::BedrockAgent { alias } => {
                if !bedrock_name(alias) || alias.len() > 100 {
                    errors.add(
                        "$.target.alias",
                        "1 to 100 letters and digits, each optionally followed by `-` or `_`",
                    );
                }
            }
            PlatformSpec::AgentcoreRuntime {
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
            PlatformSpec::Local { url } => match url::Url::parse(url) {
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
        at_most(self.action_groups.len(), ACTION_GROUPS_MAX, "action_groups", "action groups", errors);
        let mut names = std::collections::HashSet::new();
        for (i, group) in self.action_groups.iter().enumerate() {
            let at = format!("$.action_groups[{i}]");
            check_unique_name(&group.name, &at, &mut names, errors);
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
            if !bedrock_id(&kb.id) {
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
        self.validate_collaborators(errors);
    }

    /// A supervisor and its collaborators: each needs the other.
    fn validate_collaborators(&self, errors: &mut ValidationErrors) {
        use bedrock_limits::*;
        match (self.collaboration, self.collaborators.is_empty()) {
            (Some(_), true) => errors.add("$.collaborators", "required with collaboration: at least one"),
            (None, false) => {
                errors.add("$.collaboration", "required with collaborators: supervisor or supervisor_router")
            }
            _ => {}
        }
        at_most(self.collaborators.len(), COLLABORATORS_MAX, "collaborators", "collaborators", errors);
        let mut names = std::collections::HashSet::new();
        for (i, collaborator) in self.collaborators.iter().enumerate() {
            let at = format!("$.collaborators[{i}]");
            check_unique_name(&collaborator.name, &at, &mut names, errors);
            if !agent_alias_arn(&collaborator.agent_alias_arn) {
                errors.add(
                    format!("{at}.agent_alias_arn"),
                    "required: arn:aws:bedrock:<region>:<12-digit account>:agent-alias/<agent id>/<alias id>",
                );
            }
            let n = collaborator.instruction.chars().count();
            if !(1..=COLLABORATION_INSTRUCTION_MAX).contains(&n) {
                errors.add(
                    format!("{at}.instruction"),
                    format!("required: 1 to {COLLABORATION_INSTRUCTION_MAX} characters (it has {n})"),
                );
            }
        }
    }

    /// The spec's hash: SHA-256 (hex) of its compact JSON.
    pub fn hash(document: &Value) -> String {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(document.to_string().as_bytes()))
    }
}

/// `$.<field>` holds at most `max` `what`s.
fn at_most(len: usize, max: usize, field: &str, what: &str, errors: &mut ValidationErrors) {
    if len > max {
        errors.add(format!("$.{field}"), format!("at most {max} {what} (it has {len})"));
    }
}

/// The name of the item at `at`: Bedrock's pattern, and none of the names `seen` before.
fn check_unique_name<'a>(
    name: &'a str,
    at: &str,
    seen: &mut std::collections::HashSet<&'a str>,
    errors: &mut ValidationErrors,
) {
    if !bedrock_name(name) {
        errors.add(
            format!("{at}.name"),
            "required: 1 to 100 letters and digits, each optionally followed by `-` or `_`",
        );
    } else if !seen.insert(name) {
        errors.add(format!("{at}.name"), format!("{name:?} is named twice"));
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
pub(super) fn bedrock_name(name: &str) -> bool {
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
pub(super) fn runtime_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 48
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An ARN's partition, service, region, account and resource, when it has an AWS
/// partition, a 12-digit account and at most 2,048 characters.
fn arn_parts(arn: &str) -> Option<[&str; 5]> {
    let parts: Vec<&str> = arn.strip_prefix("arn:")?.splitn(5, ':').collect();
    let [partition, service, region, account, resource] = parts[..] else { return None };
    (partition.starts_with("aws")
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && arn.len() <= 2048)
        .then_some([partition, service, region, account, resource])
}

pub(super) fn role_arn(arn: &str) -> bool {
    arn_parts(arn).is_some_and(|[_, service, _, _, resource]| {
        service == "iam" && resource.strip_prefix("role/").is_some_and(|n| !n.is_empty())
    })
}

/// Bedrock's agent alias ARN: `arn:aws:bedrock:<region>:<account>:agent-alias/<agent id>/<alias id>`.
pub(super) fn agent_alias_arn(arn: &str) -> bool {
    arn_parts(arn).is_some_and(|[_, service, region, _, resource]| {
        service == "bedrock"
            && (1..=20).contains(&region.len())
            && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && resource
                .strip_prefix("agent-alias/")
                .and_then(|ids| ids.split_once('/'))
                .is_some_and(|(agent, alias)| bedrock_id(agent) && bedrock_id(alias))
    })
}

/// A Bedrock resource id (an agent's, an alias's, a knowledge base's): 10 letters and digits.
fn bedrock_id(id: &str) -> bool {
    id.len() == 10 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}
