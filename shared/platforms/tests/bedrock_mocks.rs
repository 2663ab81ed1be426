//! The Bedrock Agents target against `aws-smithy-mocks`: the SDK client is real, and an
//! interceptor answers in place of AWS with the JSON (or the error) Bedrock would send,
//! which the SDK deserializes as it would AWS's. moto's bedrock-agent does not work with
//! the Rust SDK, so there is no emulator to call instead.
//!
//! Every test scripts the exact calls it expects, in order (`RuleMode::Sequential`): a
//! call out of order or one too many panics, and [`Script::assert_all_made`] fails when
//! one is missing. Time is paused, so the waits' sleeps pass at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_bedrockagent::Client;
use aws_sdk_bedrockagent::config::http::HttpResponse;
use aws_sdk_bedrockagent::config::interceptors::BeforeDeserializationInterceptorContextMut;
use aws_sdk_bedrockagent::config::retry::RetryConfig;
use aws_sdk_bedrockagent::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_bedrockagent::error::BoxError;
use aws_sdk_bedrockagent::types::{
    ActionGroupExecutor, ActionGroupState, AgentCollaboration, AgentDescriptor, ApiSchema as SdkApiSchema,
    CustomControlMethod, FunctionSchema, RelayConversationHistory,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use serde_json::{Value, json};
use tdev_domain::agents::AgentTarget;
use tdev_domain::deploy::{
    ActionGroupSpec, AgentDeployer, AgentSpec, ApiSchema, Collaboration, CollaboratorSpec, DeployError,
    FunctionSpec, KnowledgeBaseSpec, ParameterSpec, PlatformSpec, Published, Readiness,
};
use tdev_platforms::BedrockAgents;

mod common;
use common::{failed, http, settling};

const NAME: &str = "support-bot";
const AGENT_ID: &str = "AGENT12345";
const ALIAS_ID: &str = "ALIAS12345";
const ROLE: &str = "arn:aws:iam::123456789012:role/bedrock-agent";
const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const INSTRUCTION: &str = "You answer customers' questions about their orders, politely and briefly.";
const LAMBDA: &str = "arn:aws:lambda:us-east-1:123456789012:function:lookup";
const KB_ID: &str = "KB12345678";
/// Times in order: T1 < T2 < T3.
const T1: &str = "2025-06-01T10:00:00Z";
const T2: &str = "2025-06-02T10:00:00Z";
const T3: &str = "2025-06-03T10:00:00Z";

// ---------------------------------------------------------------------------------------
// The script of expected calls

/// The calls a test expects, in order.
#[derive(Default)]
struct Script {
    rules: Vec<Rule>,
}

impl Script {
    fn then(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    fn then_all(mut self, rules: impl IntoIterator<Item = Rule>) -> Self {
        self.rules.extend(rules);
        self
    }

    /// A target whose client answers with the script. Retries are off: each call gets
    /// exactly one answer.
    fn target(&self) -> BedrockAgents {
        let client = mock_client!(aws_sdk_bedrockagent, RuleMode::Sequential, &self.rules, |config| config
            .retry_config(RetryConfig::disabled()));
        BedrockAgents::from_client(client)
    }

    /// [`Self::target`], except that call `k` (from 0) is refused with a
    /// `ValidationException` in place of the script's answer.
    fn target_refusing(&self, k: usize) -> BedrockAgents {
        let client = mock_client!(aws_sdk_bedrockagent, RuleMode::Sequential, &self.rules, |config| config
            .retry_config(RetryConfig::disabled())
            .interceptor(RefuseCall { k, seen: AtomicUsize::new(0) }));
        BedrockAgents::from_client(client)
    }

    fn assert_all_made(&self) {
        for (i, rule) in self.rules.iter().enumerate() {
            assert_eq!(rule.num_calls(), 1, "expected call #{i} of {} was not made", self.rules.len());
        }
    }
}

/// Replaces the answer to request `k` (from 0) with a refusal. It runs after the mock's
/// interceptor, so it sees (and replaces) the answer the script gave.
#[derive(Debug)]
struct RefuseCall {
    k: usize,
    seen: AtomicUsize,
}

impl Intercept for RefuseCall {
    fn name(&self) -> &'static str {
        "RefuseCall"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.seen.fetch_add(1, Ordering::SeqCst) == self.k {
            *context.response_mut() =
                http(400, Some("ValidationException"), &json!({"message": "refused by the test"}));
        }
        Ok(())
    }
}

/// A 200 answer with `body`.
fn answer(body: Value) -> impl Fn() -> HttpResponse + Send + Sync + 'static {
    move || http(200, None, &body)
}

/// An error answer as AWS's restJson1 services send them.
fn aws_error(
    status: u16,
    code: &'static str,
    message: &'static str,
) -> impl Fn() -> HttpResponse + Send + Sync {
    move || http(status, Some(code), &json!({ "message": message }))
}

// ---------------------------------------------------------------------------------------
// The spec and what Bedrock holds

fn lookup_group() -> ActionGroupSpec {
    ActionGroupSpec {
        name: "lookup".into(),
        description: Some("Looks customers up".into()),
        lambda_arn: Some(LAMBDA.into()),
        api_schema: Some(ApiSchema::Inline(json!({
            "openapi": "3.0.0",
            "info": {"title": "lookup", "version": "1"},
            "paths": {"/customers/{id}": {"get": {"operationId": "getCustomer"}}}
        }))),
        functions: Vec::new(),
    }
}

fn orders_group(description: &str) -> ActionGroupSpec {
    let parameter =
        ParameterSpec { kind: "string".into(), description: Some("The order".into()), required: true };
    ActionGroupSpec {
        name: "orders".into(),
        description: Some(description.into()),
        lambda_arn: None,
        api_schema: None,
        functions: vec![FunctionSpec {
            name: "get_order".into(),
            description: Some("Finds an order".into()),
            parameters: BTreeMap::from([("order_id".to_owned(), parameter)]),
        }],
    }
}

fn legacy_group() -> ActionGroupSpec {
    ActionGroupSpec {
        name: "legacy".into(),
        description: None,
        lambda_arn: Some(LAMBDA.into()),
        api_schema: Some(ApiSchema::S3 { bucket: "schemas-bucket".into(), key: "legacy.json".into() }),
        functions: Vec::new(),
    }
}

fn refunds_group() -> ActionGroupSpec {
    ActionGroupSpec { name: "refunds".into(), description: Some("Refunds orders".into()), ..orders_group("") }
}

fn knowledge_base() -> KnowledgeBaseSpec {
    KnowledgeBaseSpec { id: KB_ID.into(), description: "The order FAQ".into() }
}

fn spec(action_groups: Vec<ActionGroupSpec>) -> AgentSpec {
    AgentSpec {
        name: NAME.into(),
        description: Some("Answers order questions".into()),
        instruction: Some(INSTRUCTION.into()),
        foundation_model: Some(MODEL.into()),
        agent_role_arn: Some(ROLE.into()),
        idle_session_ttl_seconds: 900,
        action_groups,
        guardrail: None,
        knowledge_bases: vec![knowledge_base()],
        collaboration: None,
        collaborators: Vec::new(),
        tags: BTreeMap::from([("team".to_owned(), "support".to_owned())]),
        platform: PlatformSpec::BedrockAgent { alias: "live".into() },
        register: None,
        verify: None,
    }
}

/// The agent as `GetAgent` returns it when it holds `spec()`'s fields.
fn agent(status: &str) -> Value {
    json!({
        "agentId": AGENT_ID,
        "agentName": NAME,
        "agentArn": format!("arn:aws:bedrock:us-east-1:123456789012:agent/{AGENT_ID}"),
        "agentVersion": "DRAFT",
        "agentStatus": status,
        "foundationModel": MODEL,
        "instruction": INSTRUCTION,
        "description": "Answers order questions",
        "idleSessionTTLInSeconds": 900,
        "agentResourceRoleArn": ROLE,
        "createdAt": T1,
        "updatedAt": T1,
    })
}

/// `value` with `fields` set.
fn with(mut value: Value, fields: Value) -> Value {
    for (key, field) in fields.as_object().expect("an object") {
        value[key] = field.clone();
    }
    value
}

/// An action group as `GetAgentActionGroup` returns it when it holds `spec`.
fn held_group(id: &str, spec: &ActionGroupSpec) -> Value {
    let mut group = json!({
        "agentId": AGENT_ID,
        "agentVersion": "DRAFT",
        "actionGroupId": id,
        "actionGroupName": spec.name,
        "description": spec.description,
        "actionGroupState": "ENABLED",
        "actionGroupExecutor": match &spec.lambda_arn {
            Some(arn) => json!({"lambda": arn}),
            None => json!({"customControl": "RETURN_CONTROL"}),
        },
        "createdAt": T1,
        "updatedAt": T1,
    });
    match &spec.api_schema {
        Some(ApiSchema::S3 { bucket, key }) => {
            group["apiSchema"] = json!({"s3": {"s3BucketName": bucket, "s3ObjectKey": key}})
        }
        Some(inline) => group["apiSchema"] = json!({"payload": inline.payload()}),
        None => {}
    }
    if !spec.functions.is_empty() {
        let functions: Vec<Value> = spec
            .functions
            .iter()
            .map(|function| {
                let parameters: serde_json::Map<String, Value> = function
                    .parameters
                    .iter()
                    .map(|(name, p)| {
                        (
                            name.clone(),
                            json!({"type": p.kind, "description": p.description, "required": p.required}),
                        )
                    })
                    .collect();
                json!({"name": function.name, "description": function.description, "parameters": parameters})
            })
            .collect();
        group["functionSchema"] = json!({ "functions": functions });
    }
    group
}

/// A built-in action group (Bedrock's user input), which the target leaves alone.
fn builtin_group(id: &str) -> Value {
    json!({
        "agentId": AGENT_ID,
        "agentVersion": "DRAFT",
        "actionGroupId": id,
        "actionGroupName": "UserInputAction",
        "parentActionSignature": "AMAZON.UserInput",
        "actionGroupState": "ENABLED",
        "createdAt": T1,
        "updatedAt": T1,
    })
}

fn alias(status: &str, version: &str) -> Value {
    json!({
        "agentId": AGENT_ID,
        "agentAliasId": ALIAS_ID,
        "agentAliasName": "live",
        "agentAliasArn": format!("arn:aws:bedrock:us-east-1:123456789012:agent-alias/{AGENT_ID}/{ALIAS_ID}"),
        "agentAliasStatus": status,
        "routingConfiguration": [{"agentVersion": version}],
        "createdAt": T1,
        "updatedAt": T1,
    })
}

fn published(version: &str) -> Published {
    Published {
        version: version.into(),
        target: AgentTarget::BedrockAgent { agent_id: AGENT_ID.into(), alias_id: ALIAS_ID.into() },
    }
}

// ---------------------------------------------------------------------------------------
// The expected calls

/// `ListAgents`, one page: the agent, or none.
fn list_agents(found: bool) -> Rule {
    let summaries = if found {
        json!([{"agentId": AGENT_ID, "agentName": NAME, "agentStatus": "PREPARED", "updatedAt": T1}])
    } else {
        json!([])
    };
    mock!(Client::list_agents).then_http_response(answer(json!({ "agentSummaries": summaries })))
}

fn get_agent(agent: Value) -> Rule {
    mock!(Client::get_agent)
        .match_requests(|r| r.agent_id() == Some(AGENT_ID))
        .then_http_response(answer(json!({ "agent": agent })))
}

/// `ListAgentActionGroups` on the DRAFT, then `GetAgentActionGroup` for each.
fn held_groups(groups: Vec<Value>) -> Vec<Rule> {
    let summaries: Vec<Value> = groups
        .iter()
        .map(|g| {
            let (id, name) = (&g["actionGroupId"], &g["actionGroupName"]);
            json!({
                "actionGroupId": id, "actionGroupName": name, "actionGroupState": "ENABLED",
                "updatedAt": T1})
        })
        .collect();
    let list = mock!(Client::list_agent_action_groups)
        .match_requests(|r| r.agent_id() == Some(AGENT_ID) && r.agent_version() == Some("DRAFT"))
        .then_http_response(answer(json!({ "actionGroupSummaries": summaries })));
    let gets = groups.into_iter().map(|group| {
        let id = group["actionGroupId"].as_str().expect("an id").to_owned();
        mock!(Client::get_agent_action_group)
            .match_requests(move |r| {
                r.action_group_id() == Some(id.as_str()) && r.agent_version() == Some("DRAFT")
            })
            .then_http_response(answer(json!({ "agentActionGroup": group })))
    });
    std::iter::once(list).chain(gets).collect()
}

fn held_knowledge_bases(kbs: &[KnowledgeBaseSpec]) -> Rule {
    let summaries: Vec<Value> = kbs
        .iter()
        .map(|kb| {
            let (id, description) = (&kb.id, &kb.description);
            json!({
                "knowledgeBaseId": id,
                "description": description,
                "knowledgeBaseState": "ENABLED",
                "updatedAt": T1,
            })
        })
        .collect();
    mock!(Client::list_agent_knowledge_bases)
        .match_requests(|r| r.agent_version() == Some("DRAFT"))
        .then_http_response(answer(json!({ "agentKnowledgeBaseSummaries": summaries })))
}

fn list_aliases(aliases: Vec<Value>) -> Rule {
    let summaries: Vec<Value> = aliases
        .into_iter()
        .map(|alias| {
            let keep =
                ["agentAliasId", "agentAliasName", "agentAliasStatus", "routingConfiguration", "createdAt"];
            keep.iter()
                .map(|key| (key.to_string(), alias[key].clone()))
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .collect();
    mock!(Client::list_agent_aliases).then_http_response(answer(json!({ "agentAliasSummaries": summaries })))
}

fn get_alias(status: &str, version: &str) -> Rule {
    mock!(Client::get_agent_alias)
        .match_requests(|r| r.agent_id() == Some(AGENT_ID) && r.agent_alias_id() == Some(ALIAS_ID))
        .then_http_response(answer(json!({ "agentAlias": alias(status, version) })))
}

/// `GetAgentVersion` of `version`, made at `made_at`.
fn get_version(version: &'static str, made_at: &str) -> Rule {
    let made = json!({"version": version, "createdAt": made_at, "updatedAt": made_at});
    let body = json!({ "agentVersion": with(agent("PREPARED"), made) });
    mock!(Client::get_agent_version)
        .match_requests(move |r| r.agent_version() == Some(version))
        .then_http_response(answer(body))
}

/// The answer to an action group's create or update: the group as held.
fn group_answer(id: &str, spec: &ActionGroupSpec) -> impl Fn() -> HttpResponse + Send + Sync + 'static {
    answer(json!({ "agentActionGroup": held_group(id, spec) }))
}

/// `DeleteAgentActionGroup` of `id` on the DRAFT, in use or not.
fn delete_group(id: &'static str) -> Rule {
    let deleted = json!({
        "agentId": AGENT_ID,
        "agentVersion": "DRAFT",
        "actionGroupId": id,
        "actionGroupStatus": "DELETING",
    });
    mock!(Client::delete_agent_action_group)
        .match_requests(move |r| {
            r.action_group_id() == Some(id)
                && r.agent_version() == Some("DRAFT")
                && r.skip_resource_in_use_check() == Some(true)
        })
        .then_http_response(answer(deleted))
}

/// `AssociateAgentKnowledgeBase` of `knowledge_base()` on the DRAFT.
fn associate_knowledge_base() -> Rule {
    let associated = json!({"agentKnowledgeBase": {
        "agentId": AGENT_ID,
        "agentVersion": "DRAFT",
        "knowledgeBaseId": KB_ID,
        "description": "The order FAQ",
        "knowledgeBaseState": "ENABLED",
        "createdAt": T1,
        "updatedAt": T1,
    }});
    mock!(Client::associate_agent_knowledge_base)
        .match_requests(|r| {
            r.agent_version() == Some("DRAFT")
                && r.knowledge_base_id() == Some(KB_ID)
                && r.description() == Some("The order FAQ")
        })
        .then_http_response(answer(associated))
}

/// The executor and schema a create or update sends for `lookup_group()`.
fn sends_lookup(executor: Option<&ActionGroupExecutor>, schema: Option<&SdkApiSchema>) -> bool {
    let payload = lookup_group().api_schema.and_then(|s| s.payload()).expect("inline");
    executor == Some(&ActionGroupExecutor::Lambda(LAMBDA.into()))
        && matches!(schema, Some(SdkApiSchema::Payload(sent)) if *sent == payload)
}

/// The function schema a create or update sends for `orders_group()` or `refunds_group()`.
fn sends_get_order(executor: Option<&ActionGroupExecutor>, schema: Option<&FunctionSchema>) -> bool {
    let Some(FunctionSchema::Functions(functions)) = schema else { return false };
    let [function] = functions.as_slice() else { return false };
    let parameter = function.parameters().and_then(|p| p.get("order_id"));
    executor == Some(&ActionGroupExecutor::CustomControl(CustomControlMethod::ReturnControl))
        && function.name() == "get_order"
        && parameter.is_some_and(|p| p.r#type().as_str() == "string" && p.required() == Some(true))
}

// ---------------------------------------------------------------------------------------
// 1. A first deploy

#[tokio::test(start_paused = true)]
async fn a_first_deploy_creates_the_agent_its_action_groups_and_the_alias_in_order() {
    let spec = spec(vec![lookup_group(), orders_group("Finds orders")]);
    let other =
        json!({"agentId": "OTHER00001", "agentName": "other", "agentStatus": "PREPARED", "updatedAt": T1});
    let script = Script::default()
        // snapshot: ListAgents reads every page; no agent on either.
        .then(
            mock!(Client::list_agents)
                .match_requests(|r| r.next_token().is_none())
                .then_http_response(answer(json!({"agentSummaries": [other], "nextToken": "page-2"}))),
        )
        .then(
            mock!(Client::list_agents)
                .match_requests(|r| r.next_token() == Some("page-2"))
                .then_http_response(answer(json!({"agentSummaries": []}))),
        )
        // apply
        .then(list_agents(false))
        .then(
            mock!(Client::create_agent)
                .match_requests(|r| {
                    r.agent_name() == Some(NAME)
                        && r.agent_resource_role_arn() == Some(ROLE)
                        && r.foundation_model() == Some(MODEL)
                        && r.instruction() == Some(INSTRUCTION)
                        && r.description() == Some("Answers order questions")
                        && r.idle_session_ttl_in_seconds() == Some(900)
                        && r.tags().and_then(|t| t.get("team")).map(String::as_str) == Some("support")
                })
                .then_http_response(answer(json!({ "agent": agent("CREATING") }))),
        )
        .then(get_agent(agent("CREATING")))
        .then(get_agent(agent("NOT_PREPARED")))
        .then_all(held_groups(vec![]))
        .then(
            mock!(Client::create_agent_action_group)
                .match_requests(|r| {
                    r.agent_id() == Some(AGENT_ID)
                        && r.agent_version() == Some("DRAFT")
                        && r.action_group_name() == Some("lookup")
                        && r.description() == Some("Looks customers up")
                        && r.action_group_state() == Some(&ActionGroupState::Enabled)
                        && sends_lookup(r.action_group_executor(), r.api_schema())
                        && r.function_schema().is_none()
                })
                .then_http_response(group_answer("AG00000001", &lookup_group())),
        )
        .then(
            mock!(Client::create_agent_action_group)
                .match_requests(|r| {
                    r.action_group_name() == Some("orders")
                        && r.api_schema().is_none()
                        && sends_get_order(r.action_group_executor(), r.function_schema())
                })
                .then_http_response(group_answer("AG00000002", &orders_group("Finds orders"))),
        )
        .then(held_knowledge_bases(&[]))
        .then(associate_knowledge_base())
        // prepare, three times
        .then(list_agents(true))
        .then(get_agent(agent("NOT_PREPARED")))
        .then(
            mock!(Client::prepare_agent)
                .match_requests(|r| r.agent_id() == Some(AGENT_ID))
                .then_http_response(answer(json!({
                    "agentId": AGENT_ID,
                    "agentStatus": "PREPARING",
                    "agentVersion": "DRAFT",
                    "preparedAt": T2,
                }))),
        )
        .then(list_agents(true))
        .then(get_agent(agent("PREPARING")))
        .then(list_agents(true))
        .then(get_agent(with(agent("PREPARED"), json!({"preparedAt": T2}))))
        // publish
        .then(list_agents(true))
        .then(list_aliases(vec![]))
        .then(
            mock!(Client::create_agent_alias)
                .match_requests(|r| {
                    r.agent_id() == Some(AGENT_ID)
                        && r.agent_alias_name() == Some("live")
                        && r.routing_configuration().is_empty()
                })
                .then_http_response(answer(json!({
                    "agentAlias": with(alias("CREATING", "1"), json!({"routingConfiguration": []}))
                }))),
        )
        .then(get_alias("CREATING", "1"))
        .then(get_alias("PREPARED", "1"));
    let target = script.target();

    assert_eq!(target.snapshot(&spec).await.expect("snapshot"), None);
    target.apply(&spec).await.expect("apply");
    assert_eq!(target.prepare(&spec).await.expect("prepare"), Readiness::Pending("PREPARING".into()));
    assert_eq!(target.prepare(&spec).await.expect("prepare"), Readiness::Pending("PREPARING".into()));
    assert_eq!(target.prepare(&spec).await.expect("prepare"), Readiness::Ready);
    assert_eq!(target.publish(&spec).await.expect("publish"), published("1"));
    script.assert_all_made();
}

// ---------------------------------------------------------------------------------------
// 2. An update

/// The update the tests of this section make: held are lookup (unchanged), orders (its
/// description changes), legacy (removed) and a built-in group; wanted are lookup,
/// orders, and refunds (new), with a new instruction.
fn updated_spec() -> AgentSpec {
    let mut spec = spec(vec![lookup_group(), orders_group("Finds and explains orders"), refunds_group()]);
    spec.instruction = Some(format!("{INSTRUCTION} Never promise a refund."));
    spec
}

/// The calls `apply` makes for [`updated_spec`].
fn update_calls() -> Vec<Rule> {
    let instruction = format!("{INSTRUCTION} Never promise a refund.");
    Script::default()
        .then(list_agents(true))
        .then(get_agent(with(agent("PREPARED"), json!({"preparedAt": T2}))))
        .then(
            mock!(Client::update_agent)
                .match_requests(move |r| {
                    r.agent_id() == Some(AGENT_ID)
                        && r.agent_name() == Some(NAME)
                        && r.agent_resource_role_arn() == Some(ROLE)
                        && r.foundation_model() == Some(MODEL)
                        && r.instruction() == Some(instruction.as_str())
                        && r.idle_session_ttl_in_seconds() == Some(900)
                })
                .then_http_response(answer(json!({"agent": agent("UPDATING")}))),
        )
        .then(get_agent(agent("NOT_PREPARED")))
        .then_all(held_groups(vec![
            held_group("AG00000001", &lookup_group()),
            held_group("AG00000002", &orders_group("Finds orders")),
            held_group("AG00000003", &legacy_group()),
            builtin_group("AG00000004"),
        ]))
        .then(delete_group("AG00000003"))
        .then(
            mock!(Client::update_agent_action_group)
                .match_requests(|r| {
                    r.action_group_id() == Some("AG00000002")
                        && r.action_group_name() == Some("orders")
                        && r.description() == Some("Finds and explains orders")
                        && sends_get_order(r.action_group_executor(), r.function_schema())
                })
                .then_http_response(group_answer("AG00000002", &orders_group("Finds and explains orders"))),
        )
        .then(
            mock!(Client::create_agent_action_group)
                .match_requests(|r| {
                    r.action_group_name() == Some("refunds")
                        && sends_get_order(r.action_group_executor(), r.function_schema())
                })
                .then_http_response(group_answer("AG00000005", &refunds_group())),
        )
        .then(held_knowledge_bases(&[knowledge_base()]))
        .rules
}

#[tokio::test(start_paused = true)]
async fn an_update_deletes_creates_and_updates_action_groups_and_leaves_the_rest_alone() {
    let script = Script::default().then_all(update_calls());
    script.target().apply(&updated_spec()).await.expect("apply");
    script.assert_all_made();
}

/// Every call of a whole update as the pipeline makes it, version 1 serving before: the
/// backup (snapshot), [`update_calls`], prepare (PREPARING, then PREPARED) and publish,
/// whose `UpdateAgentAlias` is the one call that moves the alias to version 2.
fn whole_update_calls() -> Vec<Rule> {
    let update_alias_without_routing = mock!(Client::update_agent_alias)
        .match_requests(|r| r.agent_alias_id() == Some(ALIAS_ID) && r.routing_configuration().is_empty())
        .then_http_response(answer(json!({"agentAlias": alias("UPDATING", "1")})));
    Script::default()
        // snapshot
        .then(list_agents(true))
        .then(get_agent(with(agent("PREPARED"), json!({"preparedAt": T1}))))
        .then_all(held_groups(vec![
            held_group("AG00000001", &lookup_group()),
            held_group("AG00000002", &orders_group("Finds orders")),
            held_group("AG00000003", &legacy_group()),
            builtin_group("AG00000004"),
        ]))
        .then(held_knowledge_bases(&[knowledge_base()]))
        .then(list_aliases(vec![alias("PREPARED", "1")]))
        // apply
        .then_all(update_calls())
        // prepare, twice
        .then(list_agents(true))
        .then(get_agent(agent("NOT_PREPARED")))
        .then(mock!(Client::prepare_agent).then_http_response(answer(json!({
            "agentId": AGENT_ID,
            "agentStatus": "PREPARING",
            "agentVersion": "DRAFT",
            "preparedAt": T2,
        }))))
        .then(list_agents(true))
        .then(get_agent(with(agent("PREPARED"), json!({"preparedAt": T2}))))
        // publish
        .then(list_agents(true))
        .then(list_aliases(vec![alias("PREPARED", "1")]))
        .then(get_agent(with(agent("PREPARED"), json!({"preparedAt": T2}))))
        .then(get_version("1", T1))
        .then(update_alias_without_routing)
        .then(get_alias("UPDATING", "1"))
        .then(get_alias("PREPARED", "2"))
        .rules
}

/// What the pipeline asks of the target for an update, stopping at the first error.
async fn update(target: &BedrockAgents, spec: &AgentSpec) -> Result<Published, DeployError> {
    target.snapshot(spec).await?.expect("the agent exists");
    target.apply(spec).await?;
    while target.prepare(spec).await? != Readiness::Ready {}
    target.publish(spec).await
}

#[tokio::test(start_paused = true)]
async fn a_refusal_at_any_call_of_an_update_stops_it_there_and_the_alias_is_not_moved() {
    let spec = updated_spec();
    let calls = whole_update_calls().len();
    let moves_the_alias = calls - 3;

    // Unrefused, the whole script is the update: version 2 serves at the end.
    let script = Script::default().then_all(whole_update_calls());
    assert_eq!(update(&script.target(), &spec).await, Ok(published("2")));
    script.assert_all_made();

    for k in 0..calls {
        let script = Script::default().then_all(whole_update_calls());
        let Err(error) = update(&script.target_refusing(k), &spec).await else {
            panic!("call {k} was refused, yet the update went through")
        };
        // A refusal is final (not retried as unavailability), and says why.
        assert!(
            matches!(&error, DeployError::Failed(m) if m.contains("refused by the test")),
            "call {k}: {error:?}"
        );
        // No call after the refused one: the update stopped there. Before the alias call,
        // version 1 still serves; from it on, the alias may have moved, and the pipeline's
        // rollback routes it back (`restore_brings_back_the_snapshot_and_point_to_routes_the_alias_back`).
        let made: Vec<usize> = script.rules.iter().map(Rule::num_calls).collect();
        let expected: Vec<usize> = (0..calls).map(|i| usize::from(i <= k)).collect();
        assert_eq!(made, expected, "refusing call {k}");
        if k < moves_the_alias {
            assert_eq!(script.rules[moves_the_alias].num_calls(), 0, "call {k}: the alias was not touched");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 3. prepare

#[tokio::test(start_paused = true)]
async fn prepare_is_pending_while_preparing_then_ready_or_failed_with_the_reason() {
    let spec = spec(vec![]);
    let script = Script::default()
        .then(list_agents(true))
        .then(get_agent(agent("PREPARING")))
        .then(list_agents(true))
        .then(get_agent(agent("PREPARED")))
        .then(list_agents(true))
        .then(get_agent(agent("PREPARING")))
        .then(list_agents(true))
        .then(get_agent(with(
            agent("FAILED"),
            json!({"failureReasons": ["The action group lookup has an invalid OpenAPI schema"]}),
        )));
    let target = script.target();

    assert_eq!(target.prepare(&spec).await, Ok(Readiness::Pending("PREPARING".into())));
    assert_eq!(target.prepare(&spec).await, Ok(Readiness::Ready));
    assert_eq!(target.prepare(&spec).await, Ok(Readiness::Pending("PREPARING".into())));
    let message = failed(target.prepare(&spec).await);
    assert!(message.contains("The action group lookup has an invalid OpenAPI schema"), "{message}");
    script.assert_all_made();
}

// ---------------------------------------------------------------------------------------
// 4. Alias versioning

#[tokio::test(start_paused = true)]
async fn publish_creates_the_alias_then_makes_new_versions_but_not_on_a_repeat() {
    let spec = spec(vec![]);
    let update_alias_without_routing = || {
        mock!(Client::update_agent_alias)
            .match_requests(|r| {
                r.agent_alias_id() == Some(ALIAS_ID)
                    && r.agent_alias_name() == Some("live")
                    && r.routing_configuration().is_empty()
            })
            .then_http_response(answer(json!({"agentAlias": alias("UPDATING", "1")})))
    };
    let script = Script::default()
        // The first publish creates the alias: version 1.
        .then(list_agents(true))
        .then(list_aliases(vec![]))
        .then(
            mock!(Client::create_agent_alias)
                .then_http_response(answer(json!({"agentAlias": alias("CREATING", "1")}))),
        )
        .then(get_alias("PREPARED", "1"))
        // A later publish: the DRAFT was prepared (T2) after version 1 was made (T1), so
        // the alias is updated without routing, which makes version 2.
        .then(list_agents(true))
        .then(list_aliases(vec![alias("PREPARED", "1")]))
        .then(get_agent(with(agent("PREPARED"), json!({"preparedAt": T2}))))
        .then(get_version("1", T1))
        .then(update_alias_without_routing())
        .then(get_alias("UPDATING", "1"))
        .then(get_alias("PREPARED", "2"))
        // The same publish again after a crash: version 2 was made (T3) after the DRAFT
        // was prepared (T2): it is this DRAFT's, and no version is made.
        .then(list_agents(true))
        .then(list_aliases(vec![alias("PREPARED", "2")]))
        .then(get_agent(with(agent("PREPARED"), json!({"preparedAt": T2}))))
        .then(get_version("2", T3))
        // A crash while the alias was still UPDATING: it is waited for, then found to
        // serve this DRAFT.
        .then(list_agents(true))
        .then(list_aliases(vec![alias("UPDATING", "1")]))
        .then(get_alias("PREPARED", "2"))
        .then(get_agent(with(agent("PREPARED"), json!({"preparedAt": T2}))))
        .then(get_version("2", T3));
    let target = script.target();

    assert_eq!(target.publish(&spec).await, Ok(published("1")));
    assert_eq!(target.publish(&spec).await, Ok(published("2")));
    assert_eq!(target.publish(&spec).await, Ok(published("2")));
    assert_eq!(target.publish(&spec).await, Ok(published("2")));
    script.assert_all_made();
}

#[tokio::test(start_paused = true)]
async fn an_alias_that_ends_failed_is_a_failure() {
    let spec = spec(vec![]);
    let script = Script::default()
        .then(list_agents(true))
        .then(list_aliases(vec![]))
        .then(
            mock!(Client::create_agent_alias)
                .then_http_response(answer(json!({"agentAlias": alias("CREATING", "1")}))),
        )
        .then(mock!(Client::get_agent_alias).then_http_response(answer(json!({
            "agentAlias": with(alias("FAILED", "1"), json!({"failureReasons": ["The agent is not prepared"]}))
        }))));

    let message = failed(script.target().publish(&spec).await);
    assert!(message.contains("The agent is not prepared"), "{message}");
    script.assert_all_made();
}

// ---------------------------------------------------------------------------------------
// 5. Failures

#[tokio::test(start_paused = true)]
async fn throttling_and_busy_resources_are_unavailable_and_refusals_are_failed() {
    // Throttling on UpdateAgentActionGroup: Unavailable.
    let spec_with_orders = spec(vec![orders_group("Finds and explains orders")]);
    let script = Script::default()
        .then(list_agents(true))
        .then(get_agent(agent("NOT_PREPARED")))
        .then_all(held_groups(vec![held_group("AG00000002", &orders_group("Finds orders"))]))
        .then(mock!(Client::update_agent_action_group).then_http_response(aws_error(
            429,
            "ThrottlingException",
            "Rate exceeded",
        )));
    match script.target().apply(&spec_with_orders).await {
        Err(DeployError::Unavailable(message)) => {
            assert!(message.starts_with("UpdateAgentActionGroup orders: "), "{message}");
            assert!(
                message.contains("ThrottlingException") && message.contains("Rate exceeded"),
                "{message}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    script.assert_all_made();

    // Access denied on CreateAgent: Failed.
    let script =
        Script::default().then(list_agents(false)).then(mock!(Client::create_agent).then_http_response(
            aws_error(403, "AccessDeniedException", "User is not authorized to perform: bedrock:CreateAgent"),
        ));
    let message = failed(script.target().apply(&spec(vec![])).await);
    assert!(message.starts_with("CreateAgent: "), "{message}");
    assert!(message.contains("not authorized to perform: bedrock:CreateAgent"), "{message}");
    script.assert_all_made();

    // A busy agent (ConflictException) and a 500: Unavailable; a validation error: Failed.
    let script = Script::default()
        .then(list_agents(true))
        .then(get_agent(agent("NOT_PREPARED")))
        .then(mock!(Client::prepare_agent).then_http_response(aws_error(
            409,
            "ConflictException",
            "The agent is busy",
        )))
        .then(mock!(Client::list_agents).then_http_response(aws_error(
            500,
            "InternalServerException",
            "Oops",
        )))
        .then(list_agents(true))
        .then(mock!(Client::list_agent_aliases).then_http_response(aws_error(
            400,
            "ValidationException",
            "Bad alias",
        )));
    let (target, spec) = (script.target(), spec(vec![]));
    let busy = target.prepare(&spec).await;
    assert!(matches!(&busy, Err(DeployError::Unavailable(m)) if m.contains("ConflictException")), "{busy:?}");
    let internal = target.prepare(&spec).await;
    assert!(
        matches!(&internal, Err(DeployError::Unavailable(m)) if m.starts_with("ListAgents: ")),
        "{internal:?}"
    );
    let invalid = target.publish(&spec).await;
    assert!(matches!(&invalid, Err(DeployError::Failed(m)) if m.contains("Bad alias")), "{invalid:?}");
    script.assert_all_made();
}

#[tokio::test(start_paused = true)]
async fn steps_that_need_the_agent_fail_clearly_when_it_is_absent() {
    let script = Script::default().then(list_agents(false));
    let error = script.target().publish(&spec(vec![])).await.expect_err("no agent");
    assert_eq!(error, DeployError::Failed("Bedrock Agents has no agent named support-bot".into()));
    script.assert_all_made();
}

// ---------------------------------------------------------------------------------------
// 6. Restore and point_to

#[tokio::test(start_paused = true)]
async fn restore_brings_back_the_snapshot_and_point_to_routes_the_alias_back() {
    let spec = spec(vec![lookup_group(), orders_group("Finds orders")]);
    let later_instruction = format!("{INSTRUCTION} Never promise a refund.");
    let script = Script::default()
        // The backup, before the deployment: lookup and orders, version 1 serving.
        .then(list_agents(true))
        .then(get_agent(with(agent("PREPARED"), json!({"preparedAt": T1}))))
        .then_all(held_groups(vec![
            held_group("AG00000001", &lookup_group()),
            held_group("AG00000002", &orders_group("Finds orders")),
        ]))
        .then(held_knowledge_bases(&[knowledge_base()]))
        .then(list_aliases(vec![alias("PREPARED", "1")]))
        // The deployment changed the instruction, deleted lookup, changed orders, added
        // refunds and dropped the knowledge base: restore undoes each.
        .then(list_agents(true))
        .then(get_agent(with(agent("PREPARED"), json!({"instruction": later_instruction}))))
        .then(
            mock!(Client::update_agent)
                .match_requests(|r| {
                    r.instruction() == Some(INSTRUCTION) && r.agent_resource_role_arn() == Some(ROLE)
                })
                .then_http_response(answer(json!({"agent": agent("NOT_PREPARED")}))),
        )
        .then_all(held_groups(vec![
            held_group("AG00000002", &orders_group("Finds and explains orders")),
            held_group("AG00000005", &refunds_group()),
        ]))
        .then(delete_group("AG00000005"))
        .then(
            mock!(Client::create_agent_action_group)
                .match_requests(|r| {
                    r.action_group_name() == Some("lookup")
                        && sends_lookup(r.action_group_executor(), r.api_schema())
                })
                .then_http_response(group_answer("AG00000006", &lookup_group())),
        )
        .then(
            mock!(Client::update_agent_action_group)
                .match_requests(|r| {
                    r.action_group_id() == Some("AG00000002") && r.description() == Some("Finds orders")
                })
                .then_http_response(group_answer("AG00000002", &orders_group("Finds orders"))),
        )
        .then(held_knowledge_bases(&[]))
        .then(associate_knowledge_base())
        // point_to("1"): the alias serves version 2 and is routed back to 1.
        .then(list_agents(true))
        .then(list_aliases(vec![alias("PREPARED", "2")]))
        .then(
            mock!(Client::update_agent_alias)
                .match_requests(|r| {
                    let routing = r.routing_configuration();
                    r.agent_alias_id() == Some(ALIAS_ID)
                        && routing.len() == 1
                        && routing[0].agent_version() == Some("1")
                })
                .then_http_response(answer(json!({"agentAlias": alias("UPDATING", "1")}))),
        )
        .then(get_alias("UPDATING", "1"))
        .then(get_alias("PREPARED", "1"))
        // point_to("1") again: already there, nothing to do.
        .then(list_agents(true))
        .then(list_aliases(vec![alias("PREPARED", "1")]));
    let target = script.target();

    let snapshot = target.snapshot(&spec).await.expect("snapshot").expect("the agent exists");
    assert_eq!(snapshot.serving_version.as_deref(), Some("1"));
    assert_eq!(snapshot.config["agent_id"], AGENT_ID);
    assert_eq!(snapshot.config["alias_id"], ALIAS_ID);
    assert_eq!(snapshot.config["agent"]["instruction"], INSTRUCTION);
    let names: Vec<&Value> =
        snapshot.config["action_groups"].as_array().expect("groups").iter().map(|g| &g["name"]).collect();
    assert_eq!(names, ["lookup", "orders"], "built-in groups are not in the snapshot");
    assert_eq!(snapshot.config["knowledge_bases"][0]["id"], KB_ID);

    target.restore(&spec, &snapshot).await.expect("restore");
    assert_eq!(target.point_to(&spec, "1").await, Ok(published("1")));
    assert_eq!(target.point_to(&spec, "1").await, Ok(published("1")));
    script.assert_all_made();
}

// ---------------------------------------------------------------------------------------
// 7. Bounded waits, and nothing written that cannot be written whole

/// `GetAgent` answering `agent` `n` times, then `then`.
fn get_agent_times(agent: Value, n: usize, then: Value) -> Rule {
    mock!(Client::get_agent)
        .match_requests(|r| r.agent_id() == Some(AGENT_ID))
        .sequence()
        .http_response(answer(json!({ "agent": agent })))
        .times(n)
        .http_response(answer(json!({ "agent": then })))
        .build()
}

/// `GetAgent` answering `agent` for ever (the last call of a script).
fn get_agent_forever(agent: Value) -> Rule {
    mock!(Client::get_agent)
        .match_requests(|r| r.agent_id() == Some(AGENT_ID))
        .sequence()
        .http_response(answer(json!({ "agent": agent })))
        .repeatedly()
        .build()
}

#[tokio::test(start_paused = true)]
async fn the_waits_of_one_apply_share_one_bound_then_it_is_settling_naming_the_agent() {
    // The agent is busy (7 s), then updated, then busy for ever: apply waited for it
    // twice, up to a minute each, past the worker's 60 s.
    let mut spec = spec(vec![]);
    spec.knowledge_bases.clear();
    spec.instruction = Some(format!("{INSTRUCTION} Never promise a refund."));
    let busy_forever = get_agent_forever(agent("UPDATING"));
    let script = Script::default()
        .then(list_agents(true))
        .then(get_agent_times(agent("UPDATING"), 3, agent("NOT_PREPARED")))
        .then(mock!(Client::update_agent).then_http_response(answer(json!({"agent": agent("UPDATING")}))))
        .then(busy_forever.clone());

    let message = settling(script.target().apply(&spec)).await;
    assert!(message.contains("the agent support-bot is still UPDATING"), "{message}");
    assert!(busy_forever.num_calls() >= 2, "the agent was looked at again after the update");
}

#[tokio::test(start_paused = true)]
async fn the_waits_of_one_publish_share_one_bound_then_it_is_settling_naming_the_alias() {
    // The alias is UPDATING (7 s), then PREPARED on an old version, so it is updated, and
    // stays UPDATING: publish waited for it twice, up to two minutes each.
    let spec = spec(vec![]);
    let updating_forever = mock!(Client::get_agent_alias)
        .sequence()
        .http_response(answer(json!({ "agentAlias": alias("UPDATING", "1") })))
        .repeatedly()
        .build();
    let script = Script::default()
        .then(list_agents(true))
        .then(list_aliases(vec![alias("UPDATING", "1")]))
        .then(
            mock!(Client::get_agent_alias)
                .sequence()
                .http_response(answer(json!({ "agentAlias": alias("UPDATING", "1") })))
                .times(3)
                .http_response(answer(json!({ "agentAlias": alias("PREPARED", "1") })))
                .build(),
        )
        .then(get_agent(with(agent("PREPARED"), json!({"preparedAt": T2}))))
        .then(get_version("1", T1))
        .then(
            mock!(Client::update_agent_alias)
                .then_http_response(answer(json!({"agentAlias": alias("UPDATING", "1")}))),
        )
        .then(updating_forever.clone());

    let message = settling(script.target().publish(&spec)).await;
    assert!(message.contains("the alias live is still UPDATING"), "{message}");
    assert!(updating_forever.num_calls() >= 2, "the alias was looked at again after the update");
}

#[tokio::test(start_paused = true)]
async fn an_action_group_that_cannot_be_built_fails_the_write_before_anything_is_written() {
    // A parameter type Bedrock does not know (a spec made in code, not validated): the
    // agent's update and the deletion of legacy came before the group was built.
    let mut broken = orders_group("Finds orders");
    broken.functions[0].parameters.get_mut("order_id").expect("order_id").kind = "text".into();
    let mut spec = spec(vec![broken]);
    spec.instruction = Some(format!("{INSTRUCTION} Never promise a refund."));
    // What a write would call: none of it may be called.
    let script = Script::default()
        .then(list_agents(true))
        .then(get_agent(agent("NOT_PREPARED")))
        .then(mock!(Client::update_agent).then_http_response(answer(json!({"agent": agent("NOT_PREPARED")}))))
        .then_all(held_groups(vec![held_group("AG00000003", &legacy_group())]))
        .then(delete_group("AG00000003"));
    // The same group in a snapshot, as restore writes it back.
    let saved = json!({
        "agent_id": AGENT_ID,
        "alias_id": ALIAS_ID,
        "agent": {
            "name": NAME, "role_arn": ROLE, "foundation_model": MODEL, "instruction": INSTRUCTION,
            "description": null, "idle_session_ttl_seconds": 900, "guardrail": null,
        },
        "action_groups": [{
            "name": "orders", "description": null, "lambda_arn": null, "api_schema": null,
            "functions": [{"name": "get_order", "parameters": {"order_id": {"type": "text"}}}],
            "state": "ENABLED",
        }],
        "knowledge_bases": [],
    });
    let snapshot = tdev_domain::deploy::Snapshot { serving_version: Some("1".into()), config: saved };
    let target = script.target();

    let applied = target.apply(&spec).await;
    let restored = target.restore(&spec, &snapshot).await;
    for (step, result) in [("apply", applied), ("restore", restored)] {
        match result {
            Err(DeployError::Failed(message)) => {
                assert!(message.contains("the action group orders"), "{step}: {message}");
                assert!(message.contains("order_id") && message.contains("\"text\""), "{step}: {message}");
            }
            other => panic!("{step}: expected Failed, got {other:?}"),
        }
    }
    let made: Vec<usize> = script.rules.iter().map(Rule::num_calls).collect();
    assert!(made.iter().all(|&n| n == 0), "calls made: {made:?}");
}

// ---------------------------------------------------------------------------------------
// 8. Collaborators (multi-agent collaboration)

/// A collaborator whose alias is `agent-alias/AGENTCOL0<n>/ALIASCOL0<n>`.
fn collaborator(name: &str, n: u8, instruction: &str, relay_history: bool) -> CollaboratorSpec {
    CollaboratorSpec {
        name: name.into(),
        agent_alias_arn: format!(
            "arn:aws:bedrock:us-east-1:123456789012:agent-alias/AGENTCOL0{n}/ALIASCOL0{n}"
        ),
        instruction: instruction.into(),
        relay_history,
    }
}

fn billing() -> CollaboratorSpec {
    collaborator("billing", 1, "Questions about invoices.", true)
}

fn shipping(instruction: &str) -> CollaboratorSpec {
    collaborator("shipping", 2, instruction, false)
}

fn returns() -> CollaboratorSpec {
    collaborator("returns", 3, "Questions about returns.", false)
}

fn refunds() -> CollaboratorSpec {
    collaborator("refunds", 4, "Questions about refunds.", true)
}

/// `spec()` without action groups or knowledge bases, collaborating as `mode` with
/// `collaborators`.
fn supervisor_spec(mode: Option<Collaboration>, collaborators: Vec<CollaboratorSpec>) -> AgentSpec {
    let mut spec = spec(vec![]);
    spec.knowledge_bases.clear();
    spec.collaboration = mode;
    spec.collaborators = collaborators;
    spec
}

/// The agent as `GetAgent` returns it, collaborating as `mode` (`SUPERVISOR`…).
fn supervisor(status: &str, mode: &str) -> Value {
    with(agent(status), json!({ "agentCollaboration": mode }))
}

/// A collaborator as Bedrock holds it (a summary and a full record alike).
fn held_collaborator(id: &str, c: &CollaboratorSpec) -> Value {
    json!({
        "agentId": AGENT_ID,
        "agentVersion": "DRAFT",
        "collaboratorId": id,
        "collaboratorName": c.name,
        "agentDescriptor": {"aliasArn": c.agent_alias_arn},
        "collaborationInstruction": c.instruction,
        "relayConversationHistory": if c.relay_history { "TO_COLLABORATOR" } else { "DISABLED" },
        "createdAt": T1,
        "lastUpdatedAt": T1,
    })
}

/// `ListAgentCollaborators` on the DRAFT: `held`, with their ids.
fn list_collaborators(held: &[(&str, CollaboratorSpec)]) -> Rule {
    let summaries: Vec<Value> = held.iter().map(|(id, c)| held_collaborator(id, c)).collect();
    mock!(Client::list_agent_collaborators)
        .match_requests(|r| r.agent_id() == Some(AGENT_ID) && r.agent_version() == Some("DRAFT"))
        .then_http_response(answer(json!({ "agentCollaboratorSummaries": summaries })))
}

/// Whether a request's name, alias, instruction and relay are `c`'s.
fn sends_collaborator(
    c: &CollaboratorSpec,
    name: Option<&str>,
    descriptor: Option<&AgentDescriptor>,
    instruction: Option<&str>,
    relay: Option<&RelayConversationHistory>,
) -> bool {
    let relayed = if c.relay_history {
        RelayConversationHistory::ToCollaborator
    } else {
        RelayConversationHistory::Disabled
    };
    name == Some(c.name.as_str())
        && descriptor.and_then(AgentDescriptor::alias_arn) == Some(c.agent_alias_arn.as_str())
        && instruction == Some(c.instruction.as_str())
        && relay == Some(&relayed)
}

/// `AssociateAgentCollaborator` of `c` on the DRAFT, which Bedrock holds as `id`.
fn associate(id: &'static str, c: CollaboratorSpec) -> Rule {
    let body = json!({ "agentCollaborator": held_collaborator(id, &c) });
    mock!(Client::associate_agent_collaborator)
        .match_requests(move |r| {
            r.agent_id() == Some(AGENT_ID)
                && r.agent_version() == Some("DRAFT")
                && sends_collaborator(
                    &c,
                    r.collaborator_name(),
                    r.agent_descriptor(),
                    r.collaboration_instruction(),
                    r.relay_conversation_history(),
                )
        })
        .then_http_response(answer(body))
}

/// `UpdateAgentCollaborator` of `id` on the DRAFT to `c`.
fn update_collaborator(id: &'static str, c: CollaboratorSpec) -> Rule {
    let body = json!({ "agentCollaborator": held_collaborator(id, &c) });
    mock!(Client::update_agent_collaborator)
        .match_requests(move |r| {
            r.agent_version() == Some("DRAFT")
                && r.collaborator_id() == Some(id)
                && sends_collaborator(
                    &c,
                    r.collaborator_name(),
                    r.agent_descriptor(),
                    r.collaboration_instruction(),
                    r.relay_conversation_history(),
                )
        })
        .then_http_response(answer(body))
}

/// `DisassociateAgentCollaborator` of `id` on the DRAFT.
fn disassociate(id: &'static str) -> Rule {
    let body = json!({"agentId": AGENT_ID, "agentVersion": "DRAFT", "collaboratorId": id});
    mock!(Client::disassociate_agent_collaborator)
        .match_requests(move |r| {
            r.agent_id() == Some(AGENT_ID)
                && r.agent_version() == Some("DRAFT")
                && r.collaborator_id() == Some(id)
        })
        .then_http_response(answer(body))
}

/// `UpdateAgent` setting the collaboration mode to `mode`, answered with the agent as
/// `status`.
fn update_agent_collaboration(mode: AgentCollaboration, status: &str) -> Rule {
    let body = json!({ "agent": supervisor(status, mode.as_str()) });
    mock!(Client::update_agent)
        .match_requests(move |r| {
            r.agent_id() == Some(AGENT_ID)
                && r.instruction() == Some(INSTRUCTION)
                && r.agent_collaboration() == Some(&mode)
        })
        .then_http_response(answer(body))
}

#[tokio::test(start_paused = true)]
async fn a_first_deploy_makes_a_supervisor_then_associates_its_collaborators_in_order() {
    let spec = supervisor_spec(Some(Collaboration::Supervisor), vec![billing(), shipping("Deliveries.")]);
    let script = Script::default()
        // snapshot: no agent.
        .then(list_agents(false))
        // apply: the agent is created a supervisor; a new agent holds no collaborators.
        .then(list_agents(false))
        .then(
            mock!(Client::create_agent)
                .match_requests(|r| {
                    r.agent_name() == Some(NAME)
                        && r.agent_collaboration() == Some(&AgentCollaboration::Supervisor)
                })
                .then_http_response(answer(json!({ "agent": supervisor("CREATING", "SUPERVISOR") }))),
        )
        .then(get_agent(supervisor("NOT_PREPARED", "SUPERVISOR")))
        .then_all(held_groups(vec![]))
        .then(held_knowledge_bases(&[]))
        .then(associate("COLLAB0001", billing()))
        .then(associate("COLLAB0002", shipping("Deliveries.")));
    let target = script.target();

    assert_eq!(target.snapshot(&spec).await.expect("snapshot"), None);
    target.apply(&spec).await.expect("apply");
    script.assert_all_made();
}

#[tokio::test(start_paused = true)]
async fn an_update_disassociates_then_changes_the_mode_then_updates_and_associates_collaborators() {
    // Held: billing (unchanged), shipping (its instruction changes), returns (removed), as
    // SUPERVISOR. Wanted: billing, shipping, refunds (new), as SUPERVISOR_ROUTER.
    let wanted = vec![billing(), shipping("Deliveries and tracking."), refunds()];
    let spec = supervisor_spec(Some(Collaboration::SupervisorRouter), wanted);
    let script = Script::default()
        .then(list_agents(true))
        .then(get_agent(supervisor("PREPARED", "SUPERVISOR")))
        .then(list_collaborators(&[
            ("COLLAB0001", billing()),
            ("COLLAB0002", shipping("Deliveries.")),
            ("COLLAB0003", returns()),
        ]))
        .then(disassociate("COLLAB0003"))
        .then(update_agent_collaboration(AgentCollaboration::SupervisorRouter, "UPDATING"))
        .then(get_agent(supervisor("NOT_PREPARED", "SUPERVISOR_ROUTER")))
        .then_all(held_groups(vec![]))
        .then(held_knowledge_bases(&[]))
        .then(update_collaborator("COLLAB0002", shipping("Deliveries and tracking.")))
        .then(associate("COLLAB0004", refunds()))
        // The same apply again (a worker that crashed after the last call): it looks, and
        // writes nothing.
        .then(list_agents(true))
        .then(get_agent(supervisor("NOT_PREPARED", "SUPERVISOR_ROUTER")))
        .then(list_collaborators(&[
            ("COLLAB0001", billing()),
            ("COLLAB0002", shipping("Deliveries and tracking.")),
            ("COLLAB0004", refunds()),
        ]))
        .then_all(held_groups(vec![]))
        .then(held_knowledge_bases(&[]));
    let target = script.target();

    target.apply(&spec).await.expect("apply");
    target.apply(&spec).await.expect("the same apply again");
    script.assert_all_made();
}

#[tokio::test(start_paused = true)]
async fn a_supervisor_made_a_lone_agent_again_loses_its_collaborators_before_collaboration() {
    let script = Script::default()
        .then(list_agents(true))
        .then(get_agent(supervisor("PREPARED", "SUPERVISOR")))
        .then(list_collaborators(&[("COLLAB0001", billing()), ("COLLAB0002", shipping("Deliveries."))]))
        .then(disassociate("COLLAB0001"))
        .then(disassociate("COLLAB0002"))
        .then(update_agent_collaboration(AgentCollaboration::Disabled, "NOT_PREPARED"))
        .then_all(held_groups(vec![]))
        .then(held_knowledge_bases(&[]));

    script.target().apply(&supervisor_spec(None, vec![])).await.expect("apply");
    script.assert_all_made();
}

#[tokio::test(start_paused = true)]
async fn restore_brings_back_the_snapshots_collaboration_mode_and_collaborators() {
    let before = vec![billing(), shipping("Deliveries."), returns()];
    let spec = supervisor_spec(Some(Collaboration::Supervisor), before.clone());
    let script = Script::default()
        // The backup: a supervisor of billing, shipping and returns.
        .then(list_agents(true))
        .then(get_agent(supervisor("PREPARED", "SUPERVISOR")))
        .then_all(held_groups(vec![]))
        .then(held_knowledge_bases(&[]))
        .then(list_collaborators(&[
            ("COLLAB0001", billing()),
            ("COLLAB0002", shipping("Deliveries.")),
            ("COLLAB0003", returns()),
        ]))
        .then(list_aliases(vec![alias("PREPARED", "1")]))
        // The deployment made it a router, changed shipping, replaced returns with refunds:
        // restore undoes each, in the order apply would.
        .then(list_agents(true))
        .then(get_agent(supervisor("PREPARED", "SUPERVISOR_ROUTER")))
        .then(list_collaborators(&[
            ("COLLAB0001", billing()),
            ("COLLAB0002", shipping("Deliveries and tracking.")),
            ("COLLAB0004", refunds()),
        ]))
        .then(disassociate("COLLAB0004"))
        .then(update_agent_collaboration(AgentCollaboration::Supervisor, "NOT_PREPARED"))
        .then_all(held_groups(vec![]))
        .then(held_knowledge_bases(&[]))
        .then(update_collaborator("COLLAB0002", shipping("Deliveries.")))
        .then(associate("COLLAB0005", returns()));
    let target = script.target();

    let snapshot = target.snapshot(&spec).await.expect("snapshot").expect("the agent exists");
    assert_eq!(snapshot.config["agent"]["collaboration"], "SUPERVISOR");
    let saved: Vec<CollaboratorSpec> =
        serde_json::from_value(snapshot.config["collaborators"].clone()).expect("collaborators");
    assert_eq!(saved, before);
    target.restore(&spec, &snapshot).await.expect("restore");
    script.assert_all_made();
}
