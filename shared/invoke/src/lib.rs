//! Calls agents. [`Invoker`] implements the domain's [`AgentInvoker`] port and dispatches
//! on the kind of [`AgentTarget`]:
//!
//! | target | call | a successful answer |
//! |---|---|---|
//! | `http` | POST of the payload as JSON | a 2xx whose body is a JSON object |
//! | `lambda` | Lambda `Invoke`, `RequestResponse`, the payload as the event | the function's result, a JSON object |
//! | `bedrock_agent` | Bedrock `InvokeAgent` | the streamed text as `{"output", "session_id"}`, or the text itself if it is a JSON object |
//! | `agentcore_runtime` | AgentCore `InvokeAgentRuntime`, the payload as the body | the body if it is a JSON object, else `{"output": <text>}` |
//!
//! # Idempotency keys
//!
//! A payload whose `idempotency_key` ([`IDEMPOTENCY_KEY_FIELD`]) is a string carries a
//! delivery's key: every kind gets it in the payload (Lambda's event, AgentCore's body,
//! the POST body; a Bedrock agent's input text when the payload has no `input`), and
//! where the target allows more: an HTTP agent as the `Idempotency-Key` header, a Bedrock
//! agent as the prompt session attribute `idempotency_key` (its action groups' Lambda
//! functions see it). A key that cannot be a header value is refused by an HTTP target.
//!
//! # Errors
//!
//! - [`InvokeError::Timeout`]: no complete answer within the timeout. The whole call,
//!   reading the answer included, is bounded by it; a Lambda function or an agent that
//!   was already running keeps running, only the wait ends.
//! - [`InvokeError::Unavailable`]: the agent could not be reached, or said to come back
//!   later: connection errors, HTTP 408, 429 and 5xx, throttling, the services' internal
//!   errors, and an invoker without AWS configuration asked for an AWS target.
//! - [`InvokeError::Rejected`]: the agent answered, and the answer is an error or not a
//!   JSON object: other HTTP 4xx (and 3xx: redirects are not followed), a Lambda function
//!   error, the services' validation, access and not-found errors.
//!
//! Error messages carry the status or the service's error code and a short excerpt of
//! what came back, never the request's URL (it may hold a token).

mod agentcore;
mod answer;
mod bedrock;
mod events;
mod http;
mod lambda;
mod sdk;

use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, SdkConfig};
use serde_json::{Map, Value};
use tdev_domain::agents::{AgentInvoker, AgentTarget, IDEMPOTENCY_KEY_FIELD, InvokeError};
use tdev_domain::events::{Event, EventSink, SubscriptionTarget};

pub use events::EVENT_GROUP;
pub use http::default_http_client;

/// The AWS clients an [`Invoker`] calls AWS targets with. Cloning is cheap: the clients
/// share their connection pools.
#[derive(Debug, Clone)]
pub struct AwsClients {
    pub lambda: aws_sdk_lambda::Client,
    pub bedrock_agent: aws_sdk_bedrockagentruntime::Client,
    pub agentcore: aws_sdk_bedrockagentcore::Client,
    /// Delivers events to subscribers' queues.
    pub sqs: aws_sdk_sqs::Client,
}

impl AwsClients {
    /// Builds the clients from `config`.
    pub fn new(config: &SdkConfig) -> Self {
        // The SDK's clients panic on a config without a behavior version; take the latest,
        // as `aws_config::load_defaults(BehaviorVersion::latest())` would.
        let config: std::borrow::Cow<'_, SdkConfig> = match config.behavior_version() {
            Some(_) => std::borrow::Cow::Borrowed(config),
            None => std::borrow::Cow::Owned(
                config.to_builder().behavior_version(BehaviorVersion::latest()).build(),
            ),
        };
        Self {
            lambda: aws_sdk_lambda::Client::new(&config),
            bedrock_agent: aws_sdk_bedrockagentruntime::Client::new(&config),
            agentcore: aws_sdk_bedrockagentcore::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
        }
    }
}

/// Calls agents of every target kind. Build it once, at cold start, and share it: cloning
/// is cheap, and the HTTP client and the AWS clients keep their connection pools.
#[derive(Debug, Clone)]
pub struct Invoker {
    http: reqwest::Client,
    aws: Option<AwsClients>,
}

impl Invoker {
    /// `http` calls HTTP agents ([`default_http_client`] is a good one). Without `aws`
    /// (the local stack without AWS) HTTP agents still work and AWS targets answer
    /// [`InvokeError::Unavailable`].
    pub fn new(http: reqwest::Client, aws: Option<&SdkConfig>) -> Self {
        Self::from_clients(http, aws.map(AwsClients::new))
    }

    /// Like [`Invoker::new`], with AWS clients built elsewhere (tests pass mocked ones).
    pub fn from_clients(http: reqwest::Client, aws: Option<AwsClients>) -> Self {
        Self { http, aws }
    }

    async fn dispatch(
        &self,
        target: &AgentTarget,
        payload: &Value,
        timeout: Duration,
    ) -> Result<Map<String, Value>, InvokeError> {
        match target {
            AgentTarget::Http { url } => http::invoke(&self.http, url, payload, timeout).await,
            AgentTarget::Lambda { function } => {
                lambda::invoke(&self.aws(target)?.lambda, function, payload).await
            }
            AgentTarget::BedrockAgent { agent_id, alias_id } => {
                bedrock::invoke(&self.aws(target)?.bedrock_agent, agent_id, alias_id, payload).await
            }
            AgentTarget::AgentcoreRuntime { runtime_arn, qualifier } => {
                agentcore::invoke(&self.aws(target)?.agentcore, runtime_arn, qualifier.as_deref(), payload)
                    .await
            }
        }
    }

    fn aws(&self, target: &AgentTarget) -> Result<&AwsClients, InvokeError> {
        self.aws.as_ref().ok_or_else(|| {
            InvokeError::Unavailable(format!(
                "no AWS configuration: this invoker was started without one, so it cannot call a {} agent",
                target.kind()
            ))
        })
    }
}

impl AgentInvoker for Invoker {
    async fn invoke(
        &self,
        target: &AgentTarget,
        payload: &Value,
        timeout: Duration,
    ) -> Result<Map<String, Value>, InvokeError> {
        let started = Instant::now();
        // One deadline for every kind, covering the answer's body too (a Bedrock agent
        // streams its answer; a slow stream must not outlive the timeout).
        let result = match tokio::time::timeout(timeout, self.dispatch(target, payload, timeout)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(InvokeError::Timeout(timeout)),
        };
        let elapsed_ms = started.elapsed().as_millis();
        match &result {
            Ok(_) => tracing::debug!(kind = target.kind(), elapsed_ms, "agent answered"),
            Err(error) => tracing::debug!(kind = target.kind(), elapsed_ms, %error, "agent call failed"),
        }
        result
    }
}

impl EventSink for Invoker {
    async fn deliver(
        &self,
        target: &SubscriptionTarget,
        event: &Event,
        timeout: Duration,
    ) -> Result<(), InvokeError> {
        let delivery = async {
            match target {
                SubscriptionTarget::Webhook { url } => events::webhook(&self.http, url, event, timeout).await,
                SubscriptionTarget::Sqs { queue_url } => {
                    let aws = self.aws.as_ref().ok_or_else(|| {
                        InvokeError::Unavailable(
                            "no AWS configuration: this invoker cannot send to an SQS queue".into(),
                        )
                    })?;
                    events::sqs(&aws.sqs, queue_url, event).await
                }
            }
        };
        tokio::time::timeout(timeout, delivery).await.unwrap_or(Err(InvokeError::Timeout(timeout)))
    }
}

/// The delivery's idempotency key the payload carries, if any.
pub(crate) fn idempotency_key(payload: &Value) -> Option<&str> {
    payload.get(IDEMPOTENCY_KEY_FIELD).and_then(Value::as_str)
}

/// An error and its sources, by their `Display`: the outer messages ("error sending
/// request", "dispatch failure") say little without the inner ones ("tcp connect error:
/// Connection refused"). `DisplayErrorContext` would add a `Debug` dump as well.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source's text in their own; say it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_without_a_behavior_version_does_not_panic() {
        let config = SdkConfig::builder().build();
        let invoker = Invoker::new(reqwest::Client::new(), Some(&config));
        assert!(invoker.aws.is_some());
    }

    #[tokio::test]
    async fn without_aws_configuration_aws_targets_are_unavailable() {
        let invoker = Invoker::new(reqwest::Client::new(), None);
        let targets = [
            AgentTarget::Lambda { function: "f".into() },
            AgentTarget::BedrockAgent { agent_id: "a".into(), alias_id: "b".into() },
            AgentTarget::AgentcoreRuntime { runtime_arn: "arn".into(), qualifier: None },
        ];
        for target in targets {
            let result = invoker.invoke(&target, &serde_json::json!({}), Duration::from_secs(1)).await;
            match result {
                Err(InvokeError::Unavailable(message)) => {
                    assert!(message.starts_with("no AWS configuration: "), "{message}");
                    assert!(message.contains(target.kind()), "{message}");
                }
                other => panic!("{target:?}: {other:?}"),
            }
        }
    }
}
