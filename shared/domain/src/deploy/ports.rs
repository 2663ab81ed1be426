//! What deployments need from the world: the deployment store, and the targets agents are
//! deployed to.

use std::future::Future;

use jiff::Timestamp;

use super::records::{AgentLock, Backup, Deployment, DeploymentEvent, DeploymentFilter, Snapshot};
use super::spec::{AgentSpec, PlatformKind};
use crate::agents::AgentTarget;
use crate::ports::StoreError;

/// Deployments, their audit trail, their backups, and the per-agent deployment lock.
/// Every change of a deployment is a conditional write on its `revision` made together
/// with its event: the record and its trail never disagree.
pub trait DeploymentStore: Send + Sync + 'static {
    /// Stores a new deployment (revision 1) with its first event and, with `lock_until`,
    /// takes the agent's lock for it — all or nothing. `Conflict` if the id is taken or
    /// another deployment holds the agent's lock past `now`.
    fn create_deployment(
        &self,
        deployment: &Deployment,
        event: &DeploymentEvent,
        now: Timestamp,
        lock_until: Option<Timestamp>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_deployment(&self, id: &str)
    -> impl Future<Output = Result<Option<Deployment>, StoreError>> + Send;

    /// Newest first (by `created_at`, then id), at most `filter.limit`.
    fn list_deployments(
        &self,
        filter: &DeploymentFilter,
    ) -> impl Future<Output = Result<Vec<Deployment>, StoreError>> + Send;

    /// Writes `deployment` (revision already bumped) if the stored one is at
    /// `revision - 1`, and appends `event`, all or nothing; `Conflict` otherwise.
    fn transition(
        &self,
        deployment: &Deployment,
        event: &DeploymentEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The deployment's events, by `seq`.
    fn deployment_events(
        &self,
        deployment_id: &str,
    ) -> impl Future<Output = Result<Vec<DeploymentEvent>, StoreError>> + Send;

    /// `Conflict` if the deployment has a backup already (a backup is never replaced).
    fn put_backup(&self, backup: &Backup) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_backup(
        &self,
        deployment_id: &str,
    ) -> impl Future<Output = Result<Option<Backup>, StoreError>> + Send;

    /// The agent's lock, if it has one (expired or not).
    fn get_lock(&self, agent: &str) -> impl Future<Output = Result<Option<AgentLock>, StoreError>> + Send;

    /// Extends `holder`'s lock to `until`; `Conflict` if `holder` does not hold it.
    fn renew_lock(
        &self,
        agent: &str,
        holder: &str,
        until: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives the lock up; harmless when `holder` does not hold it.
    fn release_lock(&self, agent: &str, holder: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Why a target refused or failed a deployment step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployError {
    /// Throttling, a 5xx, a network failure: worth trying again.
    #[error("the target is unavailable: {0}")]
    Unavailable(String),
    /// A refusal or a failure that trying again will not fix (access denied, a bad
    /// configuration, a preparation that FAILED).
    #[error("{0}")]
    Failed(String),
    /// A resource is still changing (an agent updating, an alias or endpoint moving) after
    /// the step's own wait: the step is repeated later. Not a failed attempt: only the
    /// deployment's deadline bounds it, as it bounds a preparation.
    #[error("still settling: {0}")]
    Settling(String),
}

/// How far a preparation has got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Still going (e.g. `PREPARING`); ask again later.
    Pending(String),
}

/// A version in service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub version: String,
    /// How to invoke it (for the smoke test and the registry).
    pub target: AgentTarget,
}

/// A place agents are deployed to: Bedrock Agents, AgentCore Runtime, or the local
/// stack's own target. Every operation may be repeated after a crash: each looks at what
/// the target holds and does only what is missing.
pub trait AgentDeployer: Send + Sync + 'static {
    /// Which targets this deployer serves.
    fn supports(&self, kind: PlatformKind) -> bool;

    /// The agent's current configuration, or `None` if the target has no such agent.
    fn snapshot(
        &self,
        spec: &AgentSpec,
    ) -> impl Future<Output = Result<Option<Snapshot>, DeployError>> + Send;

    /// Makes the agent's draft match `spec`, creating the agent if it has none (Bedrock
    /// Agents: the agent and its action groups, created, updated and deleted to match;
    /// AgentCore: the runtime, which makes a new runtime version).
    fn apply(&self, spec: &AgentSpec) -> impl Future<Output = Result<(), DeployError>> + Send;

    /// Starts preparing the draft if needed, and says how far it has got. A preparation
    /// that failed is `Err(Failed)`.
    fn prepare(&self, spec: &AgentSpec) -> impl Future<Output = Result<Readiness, DeployError>> + Send;

    /// Publishes the prepared draft as a new immutable version and points the alias (or
    /// endpoint) at it. Called again after a crash, it finds the version it made.
    fn publish(&self, spec: &AgentSpec) -> impl Future<Output = Result<Published, DeployError>> + Send;

    /// Points the alias (or endpoint) at an existing `version`: no rebuild.
    fn point_to(
        &self,
        spec: &AgentSpec,
        version: &str,
    ) -> impl Future<Output = Result<Published, DeployError>> + Send;

    /// Makes the agent's draft what `snapshot` recorded, action groups included.
    fn restore(
        &self,
        spec: &AgentSpec,
        snapshot: &Snapshot,
    ) -> impl Future<Output = Result<(), DeployError>> + Send;
}
