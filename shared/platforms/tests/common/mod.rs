//! What the target tests share: a scripted HTTP answer and an AgentCore runtime's spec.

#![allow(dead_code)]

use std::collections::BTreeMap;

use aws_sdk_bedrockagent::config::http::HttpResponse;
use aws_smithy_types::body::SdkBody;
use serde_json::Value;
use tdev_domain::deploy::{AgentSpec, DeployError, PlatformSpec};

/// How long one step may wait, all its waits together: the worker Lambda has 60 s.
pub const STEP_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

pub const ROLE: &str = "arn:aws:iam::123456789012:role/agentcore-runtime";

/// A JSON answer with `status`, and with `error_type` as the AWS error code.
pub fn http(status: u16, error_type: Option<&'static str>, body: &Value) -> HttpResponse {
    let mut response = HttpResponse::new(status.try_into().expect("status"), SdkBody::from(body.to_string()));
    response.headers_mut().insert("content-type", "application/json");
    if let Some(code) = error_type {
        response.headers_mut().insert("x-amzn-errortype", code);
    }
    response
}

/// The spec of the AgentCore runtime `name`: `artifact` with `environment`, public, on
/// the endpoint `live`, run as [`ROLE`].
pub fn agentcore_spec(
    name: &str,
    description: Option<&str>,
    artifact: &str,
    environment: &[(&str, &str)],
) -> AgentSpec {
    AgentSpec {
        name: name.to_owned(),
        description: description.map(str::to_owned),
        instruction: None,
        foundation_model: None,
        agent_role_arn: Some(ROLE.into()),
        idle_session_ttl_seconds: 600,
        action_groups: Vec::new(),
        guardrail: None,
        knowledge_bases: Vec::new(),
        collaboration: None,
        collaborators: Vec::new(),
        tags: BTreeMap::new(),
        platform: PlatformSpec::AgentcoreRuntime {
            artifact: artifact.to_owned(),
            protocol: "HTTP".into(),
            environment: environment.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            network_mode: "PUBLIC".into(),
            subnets: Vec::new(),
            security_groups: Vec::new(),
            endpoint: "live".into(),
        },
        register: None,
        verify: None,
    }
}

/// Runs `step` against something that never settles: it must give up within one step's
/// bound ([`STEP_WAIT`]), as `Settling`; its message.
pub async fn settling<T: std::fmt::Debug>(step: impl Future<Output = Result<T, DeployError>>) -> String {
    let started = tokio::time::Instant::now();
    let result = step.await;
    let waited = started.elapsed();
    assert!(waited <= STEP_WAIT, "the step waited {waited:?}");
    match result {
        Err(DeployError::Settling(message)) => message,
        other => panic!("expected Settling, got {other:?}"),
    }
}

/// The message of `result`, which must be `Failed`.
pub fn failed<T: std::fmt::Debug>(result: Result<T, DeployError>) -> String {
    match result {
        Err(DeployError::Failed(message)) => message,
        other => panic!("expected Failed, got {other:?}"),
    }
}
