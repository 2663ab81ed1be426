//! Deployment: agent specs validated before any AWS call, a durable pipeline that ships
//! them to a target (Bedrock Agents, AgentCore Runtime, or the local stack's own target)
//! with a backup and an audit trail, and rollback to any earlier version.
//!
//! A request is checked and recorded at once (the API answers 202), and a worker moves
//! it through its statuses from the deploy queue, one conditional write (with its event)
//! per move. One deployment per agent at a time: creating one takes the agent's lock
//! (with the record, atomically); each move renews it; the end releases it. A lock whose
//! holder has ended, or that expired, is taken over.
//!
//! Here: the spec (`spec.rs`: what an operator deploys, its shape and its rules), the
//! records and their state machine (`records.rs`, `state.rs`), what deployment needs
//! from the world (`ports.rs`: the store and the targets), what the API asks
//! (`service.rs`) and what a task on the deploy queue asks (`worker.rs`, whose module
//! docs say why every step may be repeated).

mod ports;
mod records;
mod service;
mod spec;
mod state;
mod worker;

pub use ports::{AgentDeployer, DeployError, DeploymentStore, Published, Readiness};
pub use records::{
    AgentLock, Backup, Deployment, DeploymentEvent, DeploymentFilter, DeploymentKind, RollbackReason,
    Snapshot,
};
pub use service::{
    DEPLOY_DEAD_LETTER_QUEUE, DEPLOY_MAX_RECEIVES, DEPLOY_QUEUE, DeployConfig, DeployRequestError,
    DeployTask, Deployments, VersionEntry,
};
pub use spec::{
    ActionGroupSpec, AgentSpec, ApiSchema, Collaboration, CollaboratorSpec, DEFAULT_MAX_SPEC_BYTES,
    FunctionSpec, GuardrailSpec, KnowledgeBaseSpec, ParameterSpec, PlatformKind, PlatformSpec, RegisterSpec,
    SpecLimits, SpecParseError, Submitted, VerifySpec, bedrock_limits,
};
pub use state::{DeploymentStatus, IllegalTransition};
