//! What moto cannot show of the AgentCore Runtime target, against `aws-smithy-mocks`:
//! moto keeps an updated runtime `UPDATING` for ever and never fails one, so `prepare`'s
//! `UPDATING` → `READY` and `*_FAILED` are scripted here, as is an AWS error. The calls
//! are checked in order (`RuleMode::Sequential`), and every scripted one must be made.

use std::collections::BTreeMap;

use aws_sdk_bedrockagentcorecontrol::Client;
use aws_sdk_bedrockagentcorecontrol::config::http::HttpResponse;
use aws_sdk_bedrockagentcorecontrol::config::retry::RetryConfig;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_types::body::SdkBody;
use serde_json::{Value, json};
use tdev_domain::deploy::{AgentSpec, TargetSpec};
use tdev_domain::ports::{AgentDeployer, DeployError, Readiness};
use tdev_targets::AgentcoreRuntimes;

const NAME: &str = "support_bot";
const RUNTIME_ID: &str = "support_bot-a1b2c3d4e5";

fn target(rules: &[Rule]) -> AgentcoreRuntimes {
    let client = mock_client!(aws_sdk_bedrockagentcorecontrol, RuleMode::Sequential, rules, |config| config
        .retry_config(RetryConfig::disabled()));
    AgentcoreRuntimes::from_client(client)
}

fn assert_all_made(rules: &[Rule]) {
    for (i, rule) in rules.iter().enumerate() {
        assert_eq!(rule.num_calls(), 1, "expected call #{i} of {} was not made", rules.len());
    }
}

fn http(status: u16, error_type: Option<&'static str>, body: &Value) -> HttpResponse {
    let mut response = HttpResponse::new(status.try_into().expect("status"), SdkBody::from(body.to_string()));
    response.headers_mut().insert("content-type", "application/json");
    if let Some(code) = error_type {
        response.headers_mut().insert("x-amzn-errortype", code);
    }
    response
}

fn spec() -> AgentSpec {
    AgentSpec {
        name: NAME.into(),
        description: None,
        instruction: None,
        foundation_model: None,
        agent_role_arn: Some("arn:aws:iam::123456789012:role/agentcore-runtime".into()),
        idle_session_ttl_seconds: 600,
        action_groups: Vec::new(),
        guardrail: None,
        knowledge_bases: Vec::new(),
        tags: BTreeMap::new(),
        target: TargetSpec::AgentcoreRuntime {
            artifact: "123456789012.dkr.ecr.us-east-1.amazonaws.com/support-bot:v1".into(),
            protocol: "HTTP".into(),
            environment: BTreeMap::new(),
            network_mode: "PUBLIC".into(),
            subnets: Vec::new(),
            security_groups: Vec::new(),
            endpoint: "live".into(),
        },
        register: None,
        verify: None,
    }
}

fn runtime(status: &str) -> Value {
    json!({
        "agentRuntimeArn": format!("arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/{RUNTIME_ID}"),
        "agentRuntimeId": RUNTIME_ID,
        "agentRuntimeName": NAME,
        "agentRuntimeVersion": "2",
        "description": "",
        "lastUpdatedAt": "2025-06-01T10:00:00Z",
        "createdAt": "2025-06-01T10:00:00Z",
        "roleArn": "arn:aws:iam::123456789012:role/agentcore-runtime",
        "status": status,
    })
}

fn list_runtimes(found: bool) -> Rule {
    let runtimes = if found { json!([runtime("READY")]) } else { json!([]) };
    let body = json!({ "agentRuntimes": runtimes });
    mock!(Client::list_agent_runtimes).then_http_response(move || http(200, None, &body))
}

fn get_runtime(runtime: Value) -> Rule {
    mock!(Client::get_agent_runtime)
        .match_requests(|r| r.agent_runtime_id() == Some(RUNTIME_ID))
        .then_http_response(move || http(200, None, &runtime))
}

#[tokio::test]
async fn prepare_follows_the_runtime_from_updating_to_ready_or_failed() {
    let mut failed = runtime("UPDATE_FAILED");
    failed["failureReason"] = json!("The container image could not be pulled");
    let rules = [
        list_runtimes(true),
        get_runtime(runtime("UPDATING")),
        list_runtimes(true),
        get_runtime(runtime("READY")),
        list_runtimes(true),
        get_runtime(failed),
    ];
    let target = target(&rules);

    assert_eq!(target.prepare(&spec()).await, Ok(Readiness::Pending("UPDATING".into())));
    assert_eq!(target.prepare(&spec()).await, Ok(Readiness::Ready));
    match target.prepare(&spec()).await {
        Err(DeployError::Failed(message)) => {
            assert!(message.contains("UPDATE_FAILED"), "{message}");
            assert!(message.contains("The container image could not be pulled"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_all_made(&rules);
}

#[tokio::test]
async fn throttling_is_unavailable_and_a_validation_error_is_failed() {
    let rules = [
        list_runtimes(false),
        mock!(Client::create_agent_runtime).then_http_response(|| {
            http(429, Some("ThrottlingException"), &json!({"message": "Rate exceeded"}))
        }),
        list_runtimes(false),
        mock!(Client::create_agent_runtime).then_http_response(|| {
            http(400, Some("ValidationException"), &json!({"message": "Invalid container URI"}))
        }),
    ];
    let target = target(&rules);

    match target.apply(&spec()).await {
        Err(DeployError::Unavailable(message)) => {
            assert!(message.starts_with("CreateAgentRuntime: "), "{message}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    match target.apply(&spec()).await {
        Err(DeployError::Failed(message)) => assert!(message.contains("Invalid container URI"), "{message}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_all_made(&rules);
}
