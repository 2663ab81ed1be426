//! What the agent registry and every caller of agents need from the world: the registry's
//! store, and the invoker that calls an agent.

use std::future::Future;
use std::time::Duration;

use super::model::{Agent, AgentTarget};
use crate::ports::StoreError;

pub trait AgentStore: Send + Sync + 'static {
    /// Registers a new agent; `Conflict` if the id is taken.
    fn insert_agent(&self, agent: &Agent) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_agent(&self, id: &str) -> impl Future<Output = Result<Option<Agent>, StoreError>> + Send;

    /// Every agent, by id.
    fn list_agents(&self) -> impl Future<Output = Result<Vec<Agent>, StoreError>> + Send;

    /// Replaces a registered agent; `NotFound` if there is no such agent.
    fn update_agent(&self, agent: &Agent) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// `NotFound` if there is no such agent.
    fn delete_agent(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Why an invocation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// No answer within the timeout. Worth retrying.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The agent could not be reached, or answered that it is overloaded (HTTP 429 and
    /// 5xx, throttling). Worth retrying.
    #[error("the agent is unavailable: {0}")]
    Unavailable(String),
    /// The agent answered, and the answer is an error or not a JSON object. Retrying the
    /// same input would give the same answer.
    #[error("the agent refused the request: {0}")]
    Rejected(String),
}

impl InvokeError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, InvokeError::Rejected(_))
    }
}

/// The payload member that carries a delivery's idempotency key to the agent (a message's
/// deliveries, redeliveries included, all carry the message's key).
pub const IDEMPOTENCY_KEY_FIELD: &str = "idempotency_key";

/// Calls an agent: an HTTP endpoint, a Lambda function, a Bedrock agent or an AgentCore
/// runtime. The payload is a JSON object; so is a successful answer.
///
/// A payload whose [`IDEMPOTENCY_KEY_FIELD`] is a string is passed on with that key where
/// the target lets the agent see more than the payload: an HTTP agent gets it as the
/// `Idempotency-Key` header too, a Bedrock agent as a prompt session attribute
/// `idempotency_key` too. A key that cannot be an HTTP header value (it holds a control
/// character) is [`InvokeError::Rejected`] by an HTTP target.
pub trait AgentInvoker: Send + Sync + 'static {
    fn invoke(
        &self,
        target: &AgentTarget,
        payload: &serde_json::Value,
        timeout: Duration,
    ) -> impl Future<Output = Result<serde_json::Map<String, serde_json::Value>, InvokeError>> + Send;
}
