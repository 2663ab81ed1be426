//! Deployment: agent specs validated before any AWS call, a durable pipeline that ships
//! them to a target (Bedrock Agents, AgentCore Runtime, or the local stack's own target)
//! with a backup and an audit trail, and rollback to any earlier version.

mod pipeline;
mod ports;
mod records;
mod spec;
mod state;

pub use pipeline::{
    DEPLOY_DEAD_LETTER_QUEUE, DEPLOY_MAX_RECEIVES, DEPLOY_QUEUE, DeployConfig, DeployRequestError,
    DeployTask, Deployments, VersionEntry,
};
pub use ports::{AgentDeployer, DeployError, DeploymentStore, Published, Readiness};
pub use records::{
    AgentLock, Backup, Deployment, DeploymentEvent, DeploymentFilter, DeploymentKind, RollbackReason,
    Snapshot,
};
pub use spec::{
    ActionGroupSpec, AgentSpec, ApiSchema, DEFAULT_MAX_SPEC_BYTES, FunctionSpec, GuardrailSpec,
    KnowledgeBaseSpec, ParameterSpec, RegisterSpec, SpecLimits, SpecParseError, Submitted, TargetKind,
    TargetSpec, VerifySpec, bedrock_limits,
};
pub use state::{DeploymentStatus, IllegalTransition};
