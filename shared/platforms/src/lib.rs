//! Where agents are deployed on AWS, for the domain's
//! [`AgentDeployer`](tdev_domain::deploy::AgentDeployer) port:
//!
//! - [`BedrockAgents`]: Amazon Bedrock Agents (aws-sdk-bedrockagent), tested with
//!   aws-smithy-mocks because moto's bedrock-agent does not work with the Rust SDK;
//! - [`AgentcoreRuntimes`]: Amazon Bedrock AgentCore Runtime
//!   (aws-sdk-bedrockagentcorecontrol), tested against moto.
//!
//! [`AwsPlatforms`] serves both, choosing by the spec's target.

mod agentcore;
mod bedrock;
mod calls;

pub use agentcore::AgentcoreRuntimes;
pub use bedrock::BedrockAgents;

use aws_config::SdkConfig;
use tdev_domain::deploy::{
    AgentDeployer, AgentSpec, DeployError, PlatformKind, Published, Readiness, Snapshot,
};

/// Both AWS targets, built once at cold start.
#[derive(Debug, Clone)]
pub struct AwsPlatforms {
    /// For `bedrock-agent` specs.
    pub bedrock: BedrockAgents,
    /// For `agentcore-runtime` specs.
    pub agentcore: AgentcoreRuntimes,
}

impl AwsPlatforms {
    /// Both targets, for the account and region of `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Self { bedrock: BedrockAgents::new(config), agentcore: AgentcoreRuntimes::new(config) }
    }
}

/// Calls `$method` on the deployer for the spec's target.
macro_rules! by_target {
    ($self:ident, $spec:expr, $method:ident($($arg:expr),*)) => {
        match $spec.platform.kind() {
            PlatformKind::BedrockAgent => $self.bedrock.$method($($arg),*).await,
            PlatformKind::AgentcoreRuntime => $self.agentcore.$method($($arg),*).await,
            PlatformKind::Local => Err(DeployError::Failed("the local target exists only in the local stack".into())),
        }
    };
}

impl AgentDeployer for AwsPlatforms {
    fn supports(&self, kind: PlatformKind) -> bool {
        kind != PlatformKind::Local
    }

    async fn snapshot(&self, spec: &AgentSpec) -> Result<Option<Snapshot>, DeployError> {
        by_target!(self, spec, snapshot(spec))
    }

    async fn apply(&self, spec: &AgentSpec) -> Result<(), DeployError> {
        by_target!(self, spec, apply(spec))
    }

    async fn prepare(&self, spec: &AgentSpec) -> Result<Readiness, DeployError> {
        by_target!(self, spec, prepare(spec))
    }

    async fn publish(&self, spec: &AgentSpec) -> Result<Published, DeployError> {
        by_target!(self, spec, publish(spec))
    }

    async fn point_to(&self, spec: &AgentSpec, version: &str) -> Result<Published, DeployError> {
        by_target!(self, spec, point_to(spec, version))
    }

    async fn restore(&self, spec: &AgentSpec, snapshot: &Snapshot) -> Result<(), DeployError> {
        by_target!(self, spec, restore(spec, snapshot))
    }
}
