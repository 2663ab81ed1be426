//! Amazon Bedrock Agents, for specs with `target: {kind: bedrock-agent, alias}`.
//!
//! Nothing is kept between calls: each one finds the agent by name (`ListAgents`, every
//! page), looks at what it holds, and does only what is missing, so any step can be
//! repeated after a crash.
//!
//! - `snapshot`: `GetAgent` (its fields, with its collaboration mode), the DRAFT's action
//!   groups (`ListAgentActionGroups`, then `GetAgentActionGroup` for each), its knowledge
//!   bases (`ListAgentKnowledgeBases`), a supervisor's collaborators
//!   (`ListAgentCollaborators`, whose summaries hold every field), and the alias
//!   (`ListAgentAliases`), whose routed version is the serving version.
//! - `apply`: `CreateAgent` (then `GetAgent` until it has left `CREATING`), or `GetAgent`,
//!   then, if it is a supervisor, `ListAgentCollaborators` and
//!   `DisassociateAgentCollaborator` for those the spec does not name (Bedrock refuses to
//!   disable collaboration while any is associated), then, if a field or the
//!   collaboration mode differs, `UpdateAgent`. Then the DRAFT's action groups are made to
//!   match: `DeleteAgentActionGroup` for the extra ones, `CreateAgentActionGroup` for the
//!   missing ones, `UpdateAgentActionGroup` for those that differ; built-in ones (with a
//!   parent action signature) are left alone. Knowledge bases likewise, with
//!   `DisassociateAgentKnowledgeBase`, `AssociateAgentKnowledgeBase` and
//!   `UpdateAgentKnowledgeBase`. Last, with the agent now a supervisor, collaborators in
//!   the spec's order: `UpdateAgentCollaborator` for one held under its name that differs,
//!   `AssociateAgentCollaborator` for one missing. An agent that is no supervisor holds no
//!   collaborators, so none are listed.
//! - `prepare`: `GetAgent`; `NOT_PREPARED` starts `PrepareAgent`.
//! - `publish`: `CreateAgentAlias`, or `UpdateAgentAlias` without a routing configuration:
//!   either makes a new version from the prepared DRAFT; then `GetAgentAlias` until the
//!   alias is `PREPARED`. When the alias's version was made at or after the DRAFT's
//!   preparation (`GetAgent`, `GetAgentVersion`), it is this DRAFT's: a repeat after a
//!   crash returns it and makes no new version.
//! - `point_to`: `UpdateAgentAlias` routed to the version, then `GetAgentAlias` until
//!   `PREPARED`.
//! - `restore`: as `apply`, with the snapshot's fields, collaboration mode, action groups,
//!   knowledge bases and collaborators (an agent deleted since is created again).
//!
//! Tags are set when the agent is created (`UpdateAgent` takes none).
//!
//! Every wait of one step (for the agent to leave `CREATING`, `UPDATING`… in `apply` and
//! `restore`, for the alias to be `PREPARED` in `publish` and `point_to`) shares one bound,
//! 15 s by default ([`BedrockAgents::with_wait_limit`]): a step runs in a worker Lambda with
//! a 60 s timeout. An agent or alias still busy then makes the step `Settling`, naming
//! it and its status, and the pipeline repeats the step later.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_bedrockagent::types::{
    ActionGroupExecutor, ActionGroupState, Agent, AgentAlias, AgentAliasRoutingConfigurationListItem,
    AgentAliasStatus, AgentCollaboration, AgentDescriptor, AgentStatus, ApiSchema as SdkApiSchema,
    CustomControlMethod, Function, FunctionSchema, GuardrailConfiguration, KnowledgeBaseState,
    ParameterDetail, RelayConversationHistory, S3Identifier, Type,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tdev_domain::agents::AgentTarget;
use tdev_domain::deploy::{
    ActionGroupSpec, AgentDeployer, AgentSpec, ApiSchema, Collaboration, CollaboratorSpec, DeployError,
    FunctionSpec, GuardrailSpec, KnowledgeBaseSpec, ParameterSpec, PlatformKind, PlatformSpec, Published,
    Readiness, Snapshot,
};

use crate::calls::{CallResult, Deadline, STEP_WAIT};

/// The version that `apply` and `restore` change.
const DRAFT: &str = "DRAFT";

/// Deploys to Amazon Bedrock Agents: the DRAFT is written, prepared, and published as a
/// new version through the spec's alias.
#[derive(Debug, Clone)]
pub struct BedrockAgents {
    client: aws_sdk_bedrockagent::Client,
    /// How long one step waits, all its waits together, for the agent or the alias to
    /// settle before it is `Settling`.
    wait_limit: Duration,
}

impl BedrockAgents {
    /// A client for the account and region of `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Self::from_client(aws_sdk_bedrockagent::Client::new(config))
    }

    /// Uses `client` as it is (tests give a mocked one).
    pub fn from_client(client: aws_sdk_bedrockagent::Client) -> Self {
        Self { client, wait_limit: STEP_WAIT }
    }

    /// Bounds each step's waiting by `limit` (default 15 s) in place of the default: the
    /// agent or alias still busy then makes the step `Settling`.
    pub fn with_wait_limit(mut self, limit: Duration) -> Self {
        self.wait_limit = limit;
        self
    }
}

/// The agent's own fields, as the spec gives them and `GetAgent` returns them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AgentFields {
    name: String,
    role_arn: String,
    foundation_model: String,
    instruction: Option<String>,
    description: Option<String>,
    idle_session_ttl_seconds: i32,
    guardrail: Option<GuardrailSpec>,
    /// `DISABLED`, `SUPERVISOR` or `SUPERVISOR_ROUTER` (a snapshot from before collaborators
    /// holds none: `DISABLED`).
    #[serde(default = "collaboration_disabled")]
    collaboration: String,
}

fn collaboration_disabled() -> String {
    AgentCollaboration::Disabled.as_str().to_owned()
}

impl AgentFields {
    fn from_spec(spec: &AgentSpec) -> Result<Self, DeployError> {
        let required = |value: &Option<String>, field: &str| {
            value.clone().ok_or_else(|| DeployError::Failed(format!("a Bedrock agent needs a {field}")))
        };
        Ok(Self {
            name: spec.name.clone(),
            role_arn: required(&spec.agent_role_arn, "agent_role_arn")?,
            foundation_model: required(&spec.foundation_model, "foundation_model")?,
            instruction: spec.instruction.clone(),
            description: spec.description.clone(),
            idle_session_ttl_seconds: i32::try_from(spec.idle_session_ttl_seconds).unwrap_or(i32::MAX),
            guardrail: spec.guardrail.clone(),
            collaboration: match spec.collaboration {
                None => AgentCollaboration::Disabled,
                Some(Collaboration::Supervisor) => AgentCollaboration::Supervisor,
                Some(Collaboration::SupervisorRouter) => AgentCollaboration::SupervisorRouter,
            }
            .as_str()
            .to_owned(),
        })
    }

    fn held_by(agent: &Agent) -> Self {
        Self {
            name: agent.agent_name().to_owned(),
            role_arn: agent.agent_resource_role_arn().to_owned(),
            foundation_model: agent.foundation_model().unwrap_or_default().to_owned(),
            instruction: agent.instruction().map(str::to_owned),
            description: agent.description().map(str::to_owned),
            idle_session_ttl_seconds: agent.idle_session_ttl_in_seconds(),
            guardrail: agent.guardrail_configuration().and_then(|guardrail| {
                Some(GuardrailSpec {
                    id: guardrail.guardrail_identifier()?.to_owned(),
                    version: guardrail.guardrail_version().unwrap_or_default().to_owned(),
                })
            }),
            collaboration: agent
                .agent_collaboration()
                .map_or_else(collaboration_disabled, |mode| mode.as_str().to_owned()),
        }
    }

    /// Whether the agent is a supervisor: only a supervisor holds collaborators (Bedrock
    /// refuses to disable collaboration while any is associated).
    fn supervises(&self) -> bool {
        self.collaboration != AgentCollaboration::Disabled.as_str()
    }

    /// The collaboration mode as the SDK takes it; one Bedrock does not know (a snapshot
    /// could hold one) is refused before anything is written.
    fn sdk_collaboration(&self) -> Result<AgentCollaboration, DeployError> {
        if !AgentCollaboration::values().contains(&self.collaboration.as_str()) {
            return Err(DeployError::Failed(format!(
                "the agent {}: its collaboration {} is not one Bedrock knows",
                self.name, self.collaboration
            )));
        }
        Ok(AgentCollaboration::from(self.collaboration.as_str()))
    }

    fn guardrail_configuration(&self) -> Option<GuardrailConfiguration> {
        self.guardrail.as_ref().map(|guardrail| {
            GuardrailConfiguration::builder()
                .guardrail_identifier(&guardrail.id)
                .guardrail_version(&guardrail.version)
                .build()
        })
    }
}

/// One action group, as the spec gives it and `GetAgentActionGroup` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ActionGroup {
    name: String,
    description: Option<String>,
    /// `None`: control returns to the caller (`RETURN_CONTROL`).
    lambda_arn: Option<String>,
    /// An inline schema is kept as the text Bedrock holds.
    api_schema: Option<ApiSchema>,
    functions: Vec<FunctionSpec>,
    /// `ENABLED` or `DISABLED`.
    state: String,
}

impl ActionGroup {
    fn from_spec(spec: &ActionGroupSpec) -> Self {
        Self {
            name: spec.name.clone(),
            description: spec.description.clone(),
            lambda_arn: spec.lambda_arn.clone(),
            api_schema: spec.api_schema.as_ref().map(|schema| match schema.payload() {
                Some(text) => ApiSchema::Inline(Value::String(text)),
                None => schema.clone(),
            }),
            functions: spec.functions.clone(),
            state: ActionGroupState::Enabled.as_str().to_owned(),
        }
    }

    fn held_by(group: &aws_sdk_bedrockagent::types::AgentActionGroup) -> Self {
        Self {
            name: group.action_group_name().to_owned(),
            description: group.description().map(str::to_owned),
            lambda_arn: group.action_group_executor().and_then(|executor| executor.as_lambda().ok()).cloned(),
            api_schema: group.api_schema().and_then(|schema| match schema {
                SdkApiSchema::Payload(text) => Some(ApiSchema::Inline(Value::String(text.clone()))),
                SdkApiSchema::S3(s3) => Some(ApiSchema::S3 {
                    bucket: s3.s3_bucket_name().unwrap_or_default().to_owned(),
                    key: s3.s3_object_key().unwrap_or_default().to_owned(),
                }),
                _ => None,
            }),
            functions: match group.function_schema() {
                Some(FunctionSchema::Functions(functions)) => functions.iter().map(function_spec).collect(),
                _ => Vec::new(),
            },
            state: group.action_group_state().as_str().to_owned(),
        }
    }

    /// The group as the SDK takes it, every value built and checked: what the writes of
    /// [`BedrockAgents::sync_action_groups`] send.
    fn to_sdk(&self) -> Result<SdkActionGroup<'_>, DeployError> {
        let invalid = |why: String| DeployError::Failed(format!("the action group {}: {why}", self.name));
        let executor = match &self.lambda_arn {
            Some(arn) => ActionGroupExecutor::Lambda(arn.clone()),
            None => ActionGroupExecutor::CustomControl(CustomControlMethod::ReturnControl),
        };
        let api_schema = self.api_schema.as_ref().map(|schema| match schema {
            ApiSchema::S3 { bucket, key } => {
                SdkApiSchema::S3(S3Identifier::builder().s3_bucket_name(bucket).s3_object_key(key).build())
            }
            inline => SdkApiSchema::Payload(inline.payload().unwrap_or_default()),
        });
        let function_schema = if self.functions.is_empty() {
            None
        } else {
            let functions = self.functions.iter().map(sdk_function).collect::<Result<Vec<_>, _>>();
            Some(FunctionSchema::Functions(functions.map_err(invalid)?))
        };
        if !ActionGroupState::values().contains(&self.state.as_str()) {
            return Err(invalid(format!("its state {} is not one Bedrock knows", self.state)));
        }
        Ok(SdkActionGroup {
            group: self,
            executor,
            api_schema,
            function_schema,
            state: ActionGroupState::from(self.state.as_str()),
        })
    }
}

/// An action group and the values the SDK takes for it, built before anything is written.
struct SdkActionGroup<'a> {
    group: &'a ActionGroup,
    executor: ActionGroupExecutor,
    api_schema: Option<SdkApiSchema>,
    function_schema: Option<FunctionSchema>,
    state: ActionGroupState,
}

fn function_spec(function: &Function) -> FunctionSpec {
    let parameters = function.parameters().into_iter().flatten().map(|(name, parameter)| {
        let spec = ParameterSpec {
            kind: parameter.r#type().as_str().to_owned(),
            description: parameter.description().map(str::to_owned),
            required: parameter.required().unwrap_or(false),
        };
        (name.clone(), spec)
    });
    FunctionSpec {
        name: function.name().to_owned(),
        description: function.description().map(str::to_owned),
        parameters: parameters.collect(),
    }
}

/// A function as the SDK takes it; a parameter type Bedrock does not know (the spec's
/// validation allows none, but a snapshot or a spec made in code could hold one) is
/// refused here rather than by Bedrock half-way through a write.
fn sdk_function(spec: &FunctionSpec) -> Result<Function, String> {
    let function = &spec.name;
    let mut parameters = HashMap::new();
    for (name, parameter) in &spec.parameters {
        if !Type::values().contains(&parameter.kind.as_str()) {
            return Err(format!(
                "the function {function}'s parameter {name} has the type {:?}, not one of {}",
                parameter.kind,
                Type::values().join(", ")
            ));
        }
        let detail = ParameterDetail::builder()
            .r#type(Type::from(parameter.kind.as_str()))
            .set_description(parameter.description.clone())
            .required(parameter.required)
            .build()
            .map_err(|e| format!("the function {function}'s parameter {name}: {e}"))?;
        parameters.insert(name.clone(), detail);
    }
    Function::builder()
        .name(function)
        .set_description(spec.description.clone())
        .set_parameters((!parameters.is_empty()).then_some(parameters))
        .build()
        .map_err(|e| format!("the function {function}: {e}"))
}

/// What the DRAFT holds: what `apply` and `restore` write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Draft {
    agent: AgentFields,
    action_groups: Vec<ActionGroup>,
    knowledge_bases: Vec<KnowledgeBaseSpec>,
    #[serde(default)]
    collaborators: Vec<CollaboratorSpec>,
}

impl Draft {
    fn from_spec(spec: &AgentSpec) -> Result<Self, DeployError> {
        Ok(Self {
            agent: AgentFields::from_spec(spec)?,
            action_groups: spec.action_groups.iter().map(ActionGroup::from_spec).collect(),
            knowledge_bases: spec.knowledge_bases.clone(),
            collaborators: spec.collaborators.clone(),
        })
    }
}

/// [`Snapshot::config`] for this target.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    agent_id: String,
    alias_id: Option<String>,
    #[serde(flatten)]
    draft: Draft,
}

/// An alias, as listed or got.
struct Alias {
    id: String,
    name: String,
    status: AgentAliasStatus,
    /// The version it routes to.
    version: Option<String>,
    failure_reasons: Vec<String>,
}

impl Alias {
    fn new(
        id: &str,
        name: &str,
        status: &AgentAliasStatus,
        routing: &[AgentAliasRoutingConfigurationListItem],
    ) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            status: status.clone(),
            version: routing.first().and_then(|route| route.agent_version()).map(str::to_owned),
            failure_reasons: Vec::new(),
        }
    }

    fn got(alias: &AgentAlias) -> Self {
        Self {
            failure_reasons: alias.failure_reasons().to_vec(),
            ..Self::new(
                alias.agent_alias_id(),
                alias.agent_alias_name(),
                alias.agent_alias_status(),
                alias.routing_configuration(),
            )
        }
    }

    fn published(self, agent_id: &str) -> Result<Published, DeployError> {
        let version = self
            .version
            .ok_or_else(|| DeployError::Failed(format!("the alias {} routes to no version", self.name)))?;
        Ok(Published {
            version,
            target: AgentTarget::BedrockAgent { agent_id: agent_id.to_owned(), alias_id: self.id },
        })
    }
}

fn alias_name(spec: &AgentSpec) -> Result<&str, DeployError> {
    match &spec.platform {
        PlatformSpec::BedrockAgent { alias } => Ok(alias),
        other => Err(DeployError::Failed(format!("a {} spec is not for Bedrock Agents", other.kind()))),
    }
}

fn reasons(reasons: &[String]) -> String {
    if reasons.is_empty() { "no reason given".to_owned() } else { reasons.join("; ") }
}

fn no_output(operation: &str) -> DeployError {
    DeployError::Unavailable(format!("{operation} answered without its result"))
}

impl BedrockAgents {
    async fn find_agent(&self, name: &str) -> Result<Option<String>, DeployError> {
        let mut agents = self.client.list_agents().into_paginator().items().send();
        while let Some(agent) = agents.try_next().await.or_deploy_error("ListAgents")? {
            if agent.agent_name() == name {
                return Ok(Some(agent.agent_id().to_owned()));
            }
        }
        Ok(None)
    }

    async fn agent_id(&self, name: &str) -> Result<String, DeployError> {
        self.find_agent(name)
            .await?
            .ok_or_else(|| DeployError::Failed(format!("Bedrock Agents has no agent named {name}")))
    }

    async fn get_agent(&self, agent_id: &str) -> Result<Agent, DeployError> {
        let output = self.client.get_agent().agent_id(agent_id).send().await.or_deploy_error("GetAgent")?;
        output.agent.ok_or_else(|| no_output("GetAgent"))
    }

    /// Waits while the agent is busy with a change: writing to it then would conflict.
    /// Still busy at `deadline`: `Settling`.
    async fn settle(&self, mut agent: Agent, deadline: Deadline) -> Result<Agent, DeployError> {
        use AgentStatus::*;
        let mut backoff = deadline.backoff();
        while matches!(agent.agent_status(), Creating | Updating | Preparing | Versioning) {
            let status = agent.agent_status().as_str();
            backoff.wait(&format!("the agent {} is still {status}", agent.agent_name())).await?;
            agent = self.get_agent(agent.agent_id()).await?;
        }
        Ok(agent)
    }

    /// The DRAFT's own action groups (not the built-in ones), with their ids.
    async fn action_groups(&self, agent_id: &str) -> Result<Vec<(String, ActionGroup)>, DeployError> {
        let request = self.client.list_agent_action_groups().agent_id(agent_id).agent_version(DRAFT);
        let listed = request.into_paginator().items().send().try_collect().await;
        let mut groups = Vec::new();
        for summary in listed.or_deploy_error("ListAgentActionGroups")? {
            let output = self
                .client
                .get_agent_action_group()
                .agent_id(agent_id)
                .agent_version(DRAFT)
                .action_group_id(summary.action_group_id())
                .send()
                .await
                .or_deploy_error("GetAgentActionGroup")?;
            let group = output.agent_action_group.ok_or_else(|| no_output("GetAgentActionGroup"))?;
            if group.parent_action_signature().is_none() {
                groups.push((group.action_group_id().to_owned(), ActionGroup::held_by(&group)));
            }
        }
        Ok(groups)
    }

    async fn knowledge_bases(&self, agent_id: &str) -> Result<Vec<KnowledgeBaseSpec>, DeployError> {
        let request = self.client.list_agent_knowledge_bases().agent_id(agent_id).agent_version(DRAFT);
        let listed = request.into_paginator().items().send().try_collect().await;
        Ok(listed
            .or_deploy_error("ListAgentKnowledgeBases")?
            .iter()
            .map(|kb| KnowledgeBaseSpec {
                id: kb.knowledge_base_id().to_owned(),
                description: kb.description().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// The DRAFT's collaborators, with their ids (a supervisor's: no other agent has any).
    async fn collaborators(&self, agent_id: &str) -> Result<Vec<(String, CollaboratorSpec)>, DeployError> {
        let request = self.client.list_agent_collaborators().agent_id(agent_id).agent_version(DRAFT);
        let listed = request.into_paginator().items().send().try_collect().await;
        Ok(listed
            .or_deploy_error("ListAgentCollaborators")?
            .iter()
            .map(|held| {
                let collaborator = CollaboratorSpec {
                    name: held.collaborator_name().to_owned(),
                    agent_alias_arn: held
                        .agent_descriptor()
                        .and_then(AgentDescriptor::alias_arn)
                        .unwrap_or_default()
                        .to_owned(),
                    instruction: held.collaboration_instruction().to_owned(),
                    relay_history: *held.relay_conversation_history()
                        == RelayConversationHistory::ToCollaborator,
                };
                (held.collaborator_id().to_owned(), collaborator)
            })
            .collect())
    }

    async fn find_alias(&self, agent_id: &str, name: &str) -> Result<Option<Alias>, DeployError> {
        let mut aliases = self.client.list_agent_aliases().agent_id(agent_id).into_paginator().items().send();
        while let Some(alias) = aliases.try_next().await.or_deploy_error("ListAgentAliases")? {
            if alias.agent_alias_name() == name {
                let (id, status) = (alias.agent_alias_id(), alias.agent_alias_status());
                return Ok(Some(Alias::new(id, name, status, alias.routing_configuration())));
            }
        }
        Ok(None)
    }

    /// Waits for the alias to be `PREPARED`; one that ends `FAILED` is `Err(Failed)`, one
    /// still busy at `deadline` is `Settling`.
    async fn await_alias(
        &self,
        agent_id: &str,
        alias_id: &str,
        deadline: Deadline,
    ) -> Result<Alias, DeployError> {
        let mut backoff = deadline.backoff();
        loop {
            let request = self.client.get_agent_alias().agent_id(agent_id).agent_alias_id(alias_id);
            let output = request.send().await.or_deploy_error("GetAgentAlias")?;
            let alias = Alias::got(&output.agent_alias.ok_or_else(|| no_output("GetAgentAlias"))?);
            match &alias.status {
                AgentAliasStatus::Prepared => return Ok(alias),
                AgentAliasStatus::Failed => {
                    let why = reasons(&alias.failure_reasons);
                    return Err(DeployError::Failed(format!("the alias {} FAILED: {why}", alias.name)));
                }
                status => {
                    backoff.wait(&format!("the alias {} is still {}", alias.name, status.as_str())).await?
                }
            }
        }
    }

    /// Whether the alias serves the DRAFT as prepared now: its version was made at or
    /// after the DRAFT's preparation.
    async fn serves_draft(&self, agent_id: &str, alias: &Alias) -> Result<bool, DeployError> {
        let (AgentAliasStatus::Prepared, Some(version)) = (&alias.status, &alias.version) else {
            return Ok(false);
        };
        let Some(prepared_at) = self.get_agent(agent_id).await?.prepared_at().copied() else {
            return Ok(false);
        };
        let request = self.client.get_agent_version().agent_id(agent_id).agent_version(version);
        let output = request.send().await.or_deploy_error("GetAgentVersion")?;
        let made = output.agent_version.map(|v| *v.created_at().max(v.updated_at()));
        Ok(made.is_some_and(|made| made >= prepared_at))
    }

    /// Makes the agent hold `draft`, creating it (with `tags`) if there is none. Every
    /// value the SDK takes is built first: one that cannot be built fails the step before
    /// anything is written, rather than half-way through the DRAFT.
    async fn write(&self, draft: &Draft, tags: &BTreeMap<String, String>) -> Result<(), DeployError> {
        let deadline = Deadline::after(self.wait_limit);
        let groups = draft.action_groups.iter().map(ActionGroup::to_sdk).collect::<Result<Vec<_>, _>>()?;
        let fields = &draft.agent;
        let collaboration = fields.sdk_collaboration()?;
        let (agent_id, collaborators) = match self.find_agent(&fields.name).await? {
            None => (self.create_agent(fields, collaboration, tags, deadline).await?, Vec::new()),
            Some(agent_id) => {
                let agent = self.settle(self.get_agent(&agent_id).await?, deadline).await?;
                let held = AgentFields::held_by(&agent);
                // Collaborators go before the agent changes: collaboration cannot be
                // disabled while any is associated.
                let collaborators =
                    if held.supervises() { self.collaborators(&agent_id).await? } else { Vec::new() };
                self.disassociate_collaborators(&agent_id, &collaborators, &draft.collaborators).await?;
                if held != *fields {
                    self.update_agent(&agent_id, fields, collaboration, deadline).await?;
                }
                (agent_id, collaborators)
            }
        };
        self.sync_action_groups(&agent_id, &groups).await?;
        self.sync_knowledge_bases(&agent_id, &draft.knowledge_bases).await?;
        // And after it: only a supervisor takes collaborators.
        self.associate_collaborators(&agent_id, &collaborators, &draft.collaborators).await
    }

    async fn create_agent(
        &self,
        fields: &AgentFields,
        collaboration: AgentCollaboration,
        tags: &BTreeMap<String, String>,
        deadline: Deadline,
    ) -> Result<String, DeployError> {
        let output = self
            .client
            .create_agent()
            .agent_name(&fields.name)
            .agent_resource_role_arn(&fields.role_arn)
            .foundation_model(&fields.foundation_model)
            .set_instruction(fields.instruction.clone())
            .set_description(fields.description.clone())
            .idle_session_ttl_in_seconds(fields.idle_session_ttl_seconds)
            .set_guardrail_configuration(fields.guardrail_configuration())
            .agent_collaboration(collaboration)
            .set_tags((!tags.is_empty()).then(|| tags.clone().into_iter().collect()))
            .send()
            .await
            .or_deploy_error("CreateAgent")?;
        let agent = self.settle(output.agent.ok_or_else(|| no_output("CreateAgent"))?, deadline).await?;
        if *agent.agent_status() == AgentStatus::Failed {
            let why = reasons(agent.failure_reasons());
            return Err(DeployError::Failed(format!(
                "the agent {} could not be created: {why}",
                fields.name
            )));
        }
        Ok(agent.agent_id().to_owned())
    }

    async fn update_agent(
        &self,
        agent_id: &str,
        fields: &AgentFields,
        collaboration: AgentCollaboration,
        deadline: Deadline,
    ) -> Result<(), DeployError> {
        let output = self
            .client
            .update_agent()
            .agent_id(agent_id)
            .agent_name(&fields.name)
            .agent_resource_role_arn(&fields.role_arn)
            .foundation_model(&fields.foundation_model)
            .set_instruction(fields.instruction.clone())
            .set_description(fields.description.clone())
            .idle_session_ttl_in_seconds(fields.idle_session_ttl_seconds)
            .set_guardrail_configuration(fields.guardrail_configuration())
            .agent_collaboration(collaboration)
            .send()
            .await
            .or_deploy_error("UpdateAgent")?;
        self.settle(output.agent.ok_or_else(|| no_output("UpdateAgent"))?, deadline).await?;
        Ok(())
    }

    /// Deletes the DRAFT's extra action groups, then creates the missing ones and updates
    /// those that differ. `wanted` is built beforehand: nothing here can fail but a call.
    async fn sync_action_groups(
        &self,
        agent_id: &str,
        wanted: &[SdkActionGroup<'_>],
    ) -> Result<(), DeployError> {
        let held = self.action_groups(agent_id).await?;
        for (id, group) in &held {
            if !wanted.iter().any(|w| w.group.name == group.name) {
                self.client
                    .delete_agent_action_group()
                    .agent_id(agent_id)
                    .agent_version(DRAFT)
                    .action_group_id(id)
                    .skip_resource_in_use_check(true)
                    .send()
                    .await
                    .or_deploy_error(&format!("DeleteAgentActionGroup {}", group.name))?;
            }
        }
        for sdk in wanted {
            let group = sdk.group;
            match held.iter().find(|(_, h)| h.name == group.name) {
                None => {
                    self.client
                        .create_agent_action_group()
                        .agent_id(agent_id)
                        .agent_version(DRAFT)
                        .action_group_name(&group.name)
                        .set_description(group.description.clone())
                        .action_group_executor(sdk.executor.clone())
                        .set_api_schema(sdk.api_schema.clone())
                        .set_function_schema(sdk.function_schema.clone())
                        .action_group_state(sdk.state.clone())
                        .send()
                        .await
                        .or_deploy_error(&format!("CreateAgentActionGroup {}", group.name))?;
                }
                Some((id, current)) if current != group => {
                    self.client
                        .update_agent_action_group()
                        .agent_id(agent_id)
                        .agent_version(DRAFT)
                        .action_group_id(id)
                        .action_group_name(&group.name)
                        .set_description(group.description.clone())
                        .action_group_executor(sdk.executor.clone())
                        .set_api_schema(sdk.api_schema.clone())
                        .set_function_schema(sdk.function_schema.clone())
                        .action_group_state(sdk.state.clone())
                        .send()
                        .await
                        .or_deploy_error(&format!("UpdateAgentActionGroup {}", group.name))?;
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Disassociates the extra knowledge bases, then associates the missing ones and
    /// updates those whose description differs.
    async fn sync_knowledge_bases(
        &self,
        agent_id: &str,
        wanted: &[KnowledgeBaseSpec],
    ) -> Result<(), DeployError> {
        let held = self.knowledge_bases(agent_id).await?;
        for kb in &held {
            if !wanted.iter().any(|w| w.id == kb.id) {
                self.client
                    .disassociate_agent_knowledge_base()
                    .agent_id(agent_id)
                    .agent_version(DRAFT)
                    .knowledge_base_id(&kb.id)
                    .send()
                    .await
                    .or_deploy_error(&format!("DisassociateAgentKnowledgeBase {}", kb.id))?;
            }
        }
        for kb in wanted {
            match held.iter().find(|h| h.id == kb.id) {
                None => {
                    self.client
                        .associate_agent_knowledge_base()
                        .agent_id(agent_id)
                        .agent_version(DRAFT)
                        .knowledge_base_id(&kb.id)
                        .description(&kb.description)
                        .knowledge_base_state(KnowledgeBaseState::Enabled)
                        .send()
                        .await
                        .or_deploy_error(&format!("AssociateAgentKnowledgeBase {}", kb.id))?;
                }
                Some(current) if current.description != kb.description => {
                    self.client
                        .update_agent_knowledge_base()
                        .agent_id(agent_id)
                        .agent_version(DRAFT)
                        .knowledge_base_id(&kb.id)
                        .description(&kb.description)
                        .send()
                        .await
                        .or_deploy_error(&format!("UpdateAgentKnowledgeBase {}", kb.id))?;
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Disassociates the `held` collaborators (with their ids) that `wanted` does not name.
    async fn disassociate_collaborators(
        &self,
        agent_id: &str,
        held: &[(String, CollaboratorSpec)],
        wanted: &[CollaboratorSpec],
    ) -> Result<(), DeployError> {
        for (id, collaborator) in held {
            if !wanted.iter().any(|w| w.name == collaborator.name) {
                self.client
                    .disassociate_agent_collaborator()
                    .agent_id(agent_id)
                    .agent_version(DRAFT)
                    .collaborator_id(id)
                    .send()
                    .await
                    .or_deploy_error(&format!("DisassociateAgentCollaborator {}", collaborator.name))?;
            }
        }
        Ok(())
    }

    /// In `wanted`'s order, updates each collaborator `held` under its name that differs,
    /// and associates each that is missing.
    async fn associate_collaborators(
        &self,
        agent_id: &str,
        held: &[(String, CollaboratorSpec)],
        wanted: &[CollaboratorSpec],
    ) -> Result<(), DeployError> {
        for collaborator in wanted {
            let name = &collaborator.name;
            let descriptor = AgentDescriptor::builder().alias_arn(&collaborator.agent_alias_arn).build();
            let relay = if collaborator.relay_history {
                RelayConversationHistory::ToCollaborator
            } else {
                RelayConversationHistory::Disabled
            };
            match held.iter().find(|(_, h)| h.name == *name) {
                None => {
                    self.client
                        .associate_agent_collaborator()
                        .agent_id(agent_id)
                        .agent_version(DRAFT)
                        .collaborator_name(name)
                        .agent_descriptor(descriptor)
                        .collaboration_instruction(&collaborator.instruction)
                        .relay_conversation_history(relay)
                        .send()
                        .await
                        .or_deploy_error(&format!("AssociateAgentCollaborator {name}"))?;
                }
                Some((id, current)) if current != collaborator => {
                    self.client
                        .update_agent_collaborator()
                        .agent_id(agent_id)
                        .agent_version(DRAFT)
                        .collaborator_id(id)
                        .collaborator_name(name)
                        .agent_descriptor(descriptor)
                        .collaboration_instruction(&collaborator.instruction)
                        .relay_conversation_history(relay)
                        .send()
                        .await
                        .or_deploy_error(&format!("UpdateAgentCollaborator {name}"))?;
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

impl AgentDeployer for BedrockAgents {
    fn supports(&self, kind: PlatformKind) -> bool {
        kind == PlatformKind::BedrockAgent
    }

    async fn snapshot(&self, spec: &AgentSpec) -> Result<Option<Snapshot>, DeployError> {
        let alias_name = alias_name(spec)?;
        let Some(agent_id) = self.find_agent(&spec.name).await? else { return Ok(None) };
        let agent = AgentFields::held_by(&self.get_agent(&agent_id).await?);
        let draft = Draft {
            action_groups: self.action_groups(&agent_id).await?.into_iter().map(|(_, group)| group).collect(),
            knowledge_bases: self.knowledge_bases(&agent_id).await?,
            collaborators: if agent.supervises() {
                self.collaborators(&agent_id).await?.into_iter().map(|(_, c)| c).collect()
            } else {
                Vec::new()
            },
            agent,
        };
        let alias = self.find_alias(&agent_id, alias_name).await?;
        let serving_version = alias.as_ref().and_then(|alias| alias.version.clone());
        let saved = Saved { agent_id, alias_id: alias.map(|alias| alias.id), draft };
        let config = serde_json::to_value(&saved)
            .map_err(|e| DeployError::Failed(format!("the snapshot does not serialize: {e}")))?;
        Ok(Some(Snapshot { serving_version, config }))
    }

    async fn apply(&self, spec: &AgentSpec) -> Result<(), DeployError> {
        alias_name(spec)?;
        self.write(&Draft::from_spec(spec)?, &spec.tags).await
    }

    async fn prepare(&self, spec: &AgentSpec) -> Result<Readiness, DeployError> {
        let agent_id = self.agent_id(&spec.name).await?;
        let agent = self.get_agent(&agent_id).await?;
        match agent.agent_status() {
            AgentStatus::NotPrepared => {
                self.client
                    .prepare_agent()
                    .agent_id(&agent_id)
                    .send()
                    .await
                    .or_deploy_error("PrepareAgent")?;
                Ok(Readiness::Pending(AgentStatus::Preparing.as_str().to_owned()))
            }
            AgentStatus::Prepared => Ok(Readiness::Ready),
            AgentStatus::Failed => Err(DeployError::Failed(format!(
                "the agent {} FAILED to prepare: {}",
                spec.name,
                reasons(agent.failure_reasons())
            ))),
            other => Ok(Readiness::Pending(other.as_str().to_owned())),
        }
    }

    async fn publish(&self, spec: &AgentSpec) -> Result<Published, DeployError> {
        let deadline = Deadline::after(self.wait_limit);
        let alias_name = alias_name(spec)?;
        let agent_id = self.agent_id(&spec.name).await?;
        let alias = match self.find_alias(&agent_id, alias_name).await? {
            None => {
                let request =
                    self.client.create_agent_alias().agent_id(&agent_id).agent_alias_name(alias_name);
                let output = request.send().await.or_deploy_error("CreateAgentAlias")?;
                let created = output.agent_alias.ok_or_else(|| no_output("CreateAgentAlias"))?;
                self.await_alias(&agent_id, created.agent_alias_id(), deadline).await?
            }
            Some(alias) => {
                let alias = match alias.status {
                    AgentAliasStatus::Creating | AgentAliasStatus::Updating => {
                        self.await_alias(&agent_id, &alias.id, deadline).await?
                    }
                    _ => alias,
                };
                if self.serves_draft(&agent_id, &alias).await? {
                    alias
                } else {
                    let request = self.client.update_agent_alias().agent_id(&agent_id);
                    let request = request.agent_alias_id(&alias.id).agent_alias_name(alias_name);
                    request.send().await.or_deploy_error("UpdateAgentAlias")?;
                    self.await_alias(&agent_id, &alias.id, deadline).await?
                }
            }
        };
        alias.published(&agent_id)
    }

    async fn point_to(&self, spec: &AgentSpec, version: &str) -> Result<Published, DeployError> {
        let deadline = Deadline::after(self.wait_limit);
        let alias_name = alias_name(spec)?;
        let agent_id = self.agent_id(&spec.name).await?;
        let alias = self.find_alias(&agent_id, alias_name).await?.ok_or_else(|| {
            DeployError::Failed(format!("the agent {} has no alias named {alias_name}", spec.name))
        })?;
        if alias.status == AgentAliasStatus::Prepared && alias.version.as_deref() == Some(version) {
            return alias.published(&agent_id);
        }
        let route = AgentAliasRoutingConfigurationListItem::builder().agent_version(version).build();
        let request = self.client.update_agent_alias().agent_id(&agent_id).agent_alias_id(&alias.id);
        let request = request.agent_alias_name(alias_name).routing_configuration(route);
        request.send().await.or_deploy_error("UpdateAgentAlias")?;
        self.await_alias(&agent_id, &alias.id, deadline).await?.published(&agent_id)
    }

    async fn restore(&self, spec: &AgentSpec, snapshot: &Snapshot) -> Result<(), DeployError> {
        let saved: Saved = serde_json::from_value(snapshot.config.clone())
            .map_err(|e| DeployError::Failed(format!("the snapshot is not a Bedrock agent's: {e}")))?;
        self.write(&saved.draft, &spec.tags).await
    }
}
