//! What moto cannot show of the AgentCore Runtime target, against `aws-smithy-mocks`:
//! moto keeps an updated runtime `UPDATING` for ever and never fails one, so `prepare`'s
//! `UPDATING` → `READY` and `*_FAILED` are scripted here, as is an AWS error; and moto
//! never moves an updated endpoint's live version, so the endpoint going live (what
//! `publish` and `point_to` wait for) is scripted here too. The calls are checked in order
//! (`RuleMode::Sequential`), and every scripted one must be made. Time is paused, so the
//! waits' sleeps pass at once.

use aws_sdk_bedrockagentcorecontrol::Client;
use aws_sdk_bedrockagentcorecontrol::config::retry::RetryConfig;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use serde_json::{Value, json};
use tdev_domain::agents::AgentTarget;
use tdev_domain::deploy::{AgentDeployer, AgentSpec, DeployError, Published, Readiness};
use tdev_platforms::AgentcoreRuntimes;

mod common;
use common::{ROLE, agentcore_spec, failed, http, settling};

const NAME: &str = "support_bot";
const RUNTIME_ID: &str = "support_bot-a1b2c3d4e5";
const RUNTIME_ARN: &str = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/support_bot-a1b2c3d4e5";
const IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/support-bot:v1";

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

fn spec() -> AgentSpec {
    agentcore_spec(NAME, None, IMAGE, &[])
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
    let mut broken = runtime("UPDATE_FAILED");
    broken["failureReason"] = json!("The container image could not be pulled");
    let rules = [
        list_runtimes(true),
        get_runtime(runtime("UPDATING")),
        list_runtimes(true),
        get_runtime(runtime("READY")),
        list_runtimes(true),
        get_runtime(broken),
    ];
    let target = target(&rules);

    assert_eq!(target.prepare(&spec()).await, Ok(Readiness::Pending("UPDATING".into())));
    assert_eq!(target.prepare(&spec()).await, Ok(Readiness::Ready));
    let message = failed(target.prepare(&spec()).await);
    assert!(message.contains("UPDATE_FAILED"), "{message}");
    assert!(message.contains("The container image could not be pulled"), "{message}");
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
    let message = failed(target.apply(&spec()).await);
    assert!(message.contains("Invalid container URI"), "{message}");
    assert_all_made(&rules);
}

/// The runtime as `GetAgentRuntime` returns it when its latest version holds `spec()`.
fn held_runtime(status: &str) -> Value {
    let mut held = runtime(status);
    held["agentRuntimeArtifact"] = json!({"containerConfiguration": {"containerUri": IMAGE}});
    held["networkConfiguration"] = json!({"networkMode": "PUBLIC"});
    held["protocolConfiguration"] = json!({"serverProtocol": "HTTP"});
    held
}

/// `UpdateAgentRuntime` with `spec()`'s configuration: version 3.
fn update_runtime() -> Rule {
    mock!(Client::update_agent_runtime)
        .match_requests(|r| {
            let artifact = r.agent_runtime_artifact().and_then(|a| a.as_container_configuration().ok());
            r.agent_runtime_id() == Some(RUNTIME_ID)
                && r.role_arn() == Some(ROLE)
                && artifact.is_some_and(|c| c.container_uri() == IMAGE)
        })
        .then_http_response(|| {
            let mut updated = runtime("UPDATING");
            updated["agentRuntimeVersion"] = json!("3");
            http(200, None, &updated)
        })
}

/// The endpoint `live` as `GetAgentRuntimeEndpoint` returns it.
fn endpoint(status: &str, live: &str, target: &str) -> Value {
    json!({
        "name": "live",
        "id": "live-a1b2c3d4e5",
        "agentRuntimeEndpointArn": format!("{RUNTIME_ARN}/runtime-endpoint/live"),
        "agentRuntimeArn": RUNTIME_ARN,
        "status": status,
        "liveVersion": live,
        "targetVersion": target,
        "createdAt": "2025-06-01T10:00:00Z",
        "lastUpdatedAt": "2025-06-01T10:00:00Z",
    })
}

fn get_endpoint(endpoint: Value) -> Rule {
    mock!(Client::get_agent_runtime_endpoint)
        .match_requests(|r| r.agent_runtime_id() == Some(RUNTIME_ID) && r.endpoint_name() == Some("live"))
        .then_http_response(move || http(200, None, &endpoint))
}

/// `UpdateAgentRuntimeEndpoint` to `version`.
fn update_endpoint(version: &'static str) -> Rule {
    mock!(Client::update_agent_runtime_endpoint)
        .match_requests(move |r| {
            r.endpoint_name() == Some("live") && r.agent_runtime_version() == Some(version)
        })
        .then_http_response(move || http(200, None, &endpoint("UPDATING", "1", version)))
}

fn published(version: &str) -> Published {
    Published {
        version: version.into(),
        target: AgentTarget::AgentcoreRuntime {
            runtime_arn: RUNTIME_ARN.into(),
            qualifier: Some("live".into()),
        },
    }
}

#[tokio::test]
async fn apply_makes_a_new_version_of_a_failed_runtime_even_when_it_holds_the_spec() {
    // A runtime whose latest version failed holds the spec, yet never serves: redeploying
    // the same spec must make a new version, or it could never succeed.
    let rules = [
        // READY and holding the spec: nothing to do.
        list_runtimes(true),
        get_runtime(held_runtime("READY")),
        // UPDATE_FAILED, then CREATE_FAILED: a new version each time.
        list_runtimes(true),
        get_runtime(held_runtime("UPDATE_FAILED")),
        update_runtime(),
        list_runtimes(true),
        get_runtime(held_runtime("CREATE_FAILED")),
        update_runtime(),
        // The update under way (a repeat after a crash): nothing to do.
        list_runtimes(true),
        get_runtime(held_runtime("UPDATING")),
    ];
    let target = target(&rules);

    for _ in 0..4 {
        target.apply(&spec()).await.expect("apply");
    }
    assert_all_made(&rules);
}

#[tokio::test]
async fn a_snapshot_mid_update_names_the_live_version_not_the_target() {
    // The endpoint is moving from version 1 to 2: 1 is what serves, and what a rollback
    // must come back to.
    let rules = [
        list_runtimes(true),
        get_runtime(held_runtime("READY")),
        get_endpoint(endpoint("UPDATING", "1", "2")),
    ];
    let snapshot = target(&rules).snapshot(&spec()).await.expect("snapshot").expect("the runtime exists");

    assert_eq!(snapshot.serving_version.as_deref(), Some("1"));
    assert_eq!(snapshot.config["endpoint"]["live_version"], "1");
    assert_eq!(snapshot.config["endpoint"]["target_version"], "2");
    assert_all_made(&rules);
}

#[tokio::test(start_paused = true)]
async fn publish_returns_once_the_endpoint_serves_the_version_and_a_repeat_only_waits() {
    let rules = [
        // publish: version 2 (as listed) on an endpoint serving 1; then UPDATING, until
        // READY with 2 live.
        list_runtimes(true),
        get_endpoint(endpoint("READY", "1", "1")),
        update_endpoint("2"),
        get_endpoint(endpoint("UPDATING", "1", "2")),
        get_endpoint(endpoint("UPDATING", "1", "2")),
        get_endpoint(endpoint("READY", "2", "2")),
        // The same publish after a crash mid-wait: the endpoint already targets 2, so it
        // is not updated again, only waited for.
        list_runtimes(true),
        get_endpoint(endpoint("UPDATING", "1", "2")),
        get_endpoint(endpoint("READY", "2", "2")),
        // point_to(1): the same wait.
        list_runtimes(true),
        get_endpoint(endpoint("READY", "2", "2")),
        update_endpoint("1"),
        get_endpoint(endpoint("READY", "2", "1")),
        get_endpoint(endpoint("READY", "1", "1")),
    ];
    let target = target(&rules);

    assert_eq!(target.publish(&spec()).await, Ok(published("2")));
    assert_eq!(target.publish(&spec()).await, Ok(published("2")));
    assert_eq!(target.point_to(&spec(), "1").await, Ok(published("1")));
    assert_all_made(&rules);
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_still_moving_at_the_bound_is_settling_and_one_that_failed_is_failed() {
    let updating_forever = mock!(Client::get_agent_runtime_endpoint)
        .sequence()
        .http_response(|| http(200, None, &endpoint("UPDATING", "1", "2")))
        .repeatedly()
        .build();
    let rules = [
        list_runtimes(true),
        get_endpoint(endpoint("READY", "1", "1")),
        update_endpoint("2"),
        updating_forever.clone(),
    ];
    let message = settling(target(&rules).publish(&spec())).await;
    let expected = "the endpoint live is UPDATING, serving version 1 and not yet 2";
    assert!(message.starts_with(expected), "{message}");
    assert!(updating_forever.num_calls() >= 2, "the endpoint was looked at more than once");

    // An endpoint whose update to 2 failed is updated again, and fails with the reason.
    let mut broken = endpoint("UPDATE_FAILED", "1", "2");
    broken["failureReason"] = json!("The version 2 could not start");
    let rules =
        [list_runtimes(true), get_endpoint(broken.clone()), update_endpoint("2"), get_endpoint(broken)];
    let message = failed(target(&rules).publish(&spec()).await);
    assert!(message.contains("UPDATE_FAILED"), "{message}");
    assert!(message.contains("The version 2 could not start"), "{message}");
    assert_all_made(&rules);
}
