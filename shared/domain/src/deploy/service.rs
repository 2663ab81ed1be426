//! [`Deployments`]: what the API asks of deployment. A deploy or rollback request is
//! checked and recorded at once (the API answers 202) with the agent's lock, and its
//! first task queued; the history, a deployment and its events are read here. What a task
//! asks is the worker's (`worker.rs`).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ports::{AgentDeployer, DeploymentStore};
use super::{
    AgentSpec, Deployment, DeploymentEvent, DeploymentFilter, DeploymentKind, DeploymentStatus, PlatformKind,
    RollbackReason, SpecLimits, Submitted,
};
use crate::agents::{AgentInvoker, AgentStore};
use crate::clock::Clock;
use crate::ports::{MessageQueue, StoreError};
use crate::queue::{NewMessage, Priority};
use crate::validation::ValidationErrors;

/// The queue deployment tasks travel on.
pub const DEPLOY_QUEUE: &str = "deploys";
/// Its dead-letter queue.
pub const DEPLOY_DEAD_LETTER_QUEUE: &str = "deploys-dlq";
/// Receives after which a task is dead-lettered. A task comes back once per poll while
/// Bedrock prepares, so this is high; the deployment's deadline ends it first.
pub const DEPLOY_MAX_RECEIVES: u32 = 200;

#[derive(Debug, Clone)]
pub struct DeployConfig {
    pub limits: SpecLimits,
    /// How long the agent's lock lasts without a renewal. Default 10 minutes.
    pub lock_ttl: Duration,
    /// How long a deployment may take before it is rolled back. Default 30 minutes.
    pub deadline: Duration,
    /// Tries of one step when the target is unavailable. Default 5.
    pub max_attempts: u32,
    /// How long one worker call keeps moving a deployment before it hands the task back
    /// to the queue. Default 40 s (the worker Lambda's timeout is 60 s).
    pub work_budget: Duration,
    /// The first pause between polls and retries; it doubles up to 30 s. Default 2 s.
    pub first_pause: Duration,
}

impl Default for DeployConfig {
    fn default() -> Self {
        Self {
            limits: SpecLimits::default(),
            lock_ttl: Duration::from_secs(600),
            deadline: Duration::from_secs(1800),
            max_attempts: 5,
            work_budget: Duration::from_secs(40),
            first_pause: Duration::from_secs(2),
        }
    }
}

/// A message on the deploy queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployTask {
    pub deployment_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DeployRequestError {
    /// The spec was rejected; `deployment` is the failed record that says why.
    #[error("invalid agent spec: {errors}")]
    Invalid { errors: ValidationErrors, deployment: Option<String> },
    /// Another deployment of the agent is in flight.
    #[error("deployment {holder} of agent {agent:?} is in progress")]
    Busy { agent: String, holder: String },
    #[error("no deployment {0:?}")]
    NotFound(String),
    /// The same idempotency key came with another request.
    #[error("the idempotency key was used for a different request (deployment {0})")]
    KeyReused(String),
    /// A rollback with no version to go back to.
    #[error("{0}")]
    NothingToRollBack(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A version that served, in an agent's history.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct VersionEntry {
    pub version: String,
    /// The deployment that put it in service.
    pub deployment_id: String,
    /// `deploy` or `rollback`.
    pub kind: &'static str,
    pub since: Timestamp,
    pub spec_hash: String,
    /// It serves now.
    pub current: bool,
}

/// The pipeline over its ports: `S` stores deployments (and the registry), `Q` carries
/// tasks, `D` is the target, `I` runs smoke tests.
pub struct Deployments<S, Q, D, I> {
    pub(super) store: S,
    pub(super) queue: Q,
    pub(super) deployer: D,
    pub(super) invoker: I,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) config: DeployConfig,
}

impl<S: DeploymentStore + AgentStore, Q: MessageQueue, D: AgentDeployer, I: AgentInvoker>
    Deployments<S, Q, D, I>
{
    pub fn new(
        store: S,
        queue: Q,
        deployer: D,
        invoker: I,
        clock: Arc<dyn Clock>,
        config: DeployConfig,
    ) -> Self {
        Self { store, queue, deployer, invoker, clock, config }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn queue(&self) -> &Q {
        &self.queue
    }

    pub fn config(&self) -> &DeployConfig {
        &self.config
    }

    /// The spec, or every problem with it, including a target this installation cannot
    /// deploy to.
    pub fn check(&self, submitted: &Submitted) -> Result<AgentSpec, ValidationErrors> {
        let spec = submitted.spec(&self.config.limits)?;
        let kind = spec.platform.kind();
        if !self.deployer.supports(kind) {
            return Err(ValidationErrors::single(
                "$.target.kind",
                format!("this installation cannot deploy to {kind}"),
            ));
        }
        Ok(spec)
    }

    /// Records a deployment of `submitted` and queues it. A rejected spec is recorded
    /// too, as failed, with its events. With an idempotency key, the same request again
    /// gives the same answer: the same deployment, or the same rejection.
    pub async fn deploy(
        &self,
        submitted: Submitted,
        requested_by: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Deployment, DeployRequestError> {
        let hash = AgentSpec::hash(&submitted.document);
        let id = deployment_id(requested_by, idempotency_key);
        let checked = self.check(&submitted);
        if let Some(existing) = self.replay(&id, &hash).await? {
            // The same request again gets the same answer: a rejected spec is rejected
            // again (its record says so), not reported as an accepted deployment.
            return match checked {
                Err(errors) if existing.status == DeploymentStatus::Failed => {
                    Err(DeployRequestError::Invalid { errors, deployment: Some(existing.id) })
                }
                _ => Ok(existing),
            };
        }
        let agent = match &checked {
            Ok(spec) => spec.name.clone(),
            Err(_) => submitted.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "-".to_owned()),
        };
        let platform = match &checked {
            Ok(spec) => spec.platform.kind().to_string(),
            Err(_) => submitted
                .document
                .pointer("/target/kind")
                .and_then(|k| k.as_str())
                .map_or_else(|| PlatformKind::BedrockAgent.as_str().to_owned(), PlatformKind::canonical),
        };
        let record = self.new_record(
            id.clone(),
            agent,
            platform,
            DeploymentKind::Deploy,
            submitted.document,
            hash,
            requested_by,
        );
        match checked {
            Ok(_) => self.start(record).await,
            Err(errors) => {
                self.reject(record, &errors).await?;
                Err(DeployRequestError::Invalid { errors, deployment: Some(id) })
            }
        }
    }

    /// Records a rollback of `deployment_id`'s agent to `to` (default: the version that
    /// served before that deployment) and queues it.
    pub async fn rollback(
        &self,
        deployment_id_: &str,
        to: Option<String>,
        reason: RollbackReason,
        requested_by: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Deployment, DeployRequestError> {
        let undone = self
            .store
            .get_deployment(deployment_id_)
            .await?
            .ok_or_else(|| DeployRequestError::NotFound(deployment_id_.to_owned()))?;
        let Some(to_version) = to.or_else(|| undone.previous_version.clone()) else {
            return Err(DeployRequestError::NothingToRollBack(format!(
                "deployment {} had no version before it to go back to; name one with `to_version`",
                undone.id
            )));
        };
        if Submitted::from_value(undone.spec.clone()).spec(&self.config.limits).is_err() {
            return Err(DeployRequestError::NothingToRollBack(format!(
                "deployment {} was rejected: it changed nothing",
                undone.id
            )));
        }
        let id = deployment_id(requested_by, idempotency_key);
        let kind = DeploymentKind::Rollback { to_version, reason, undoes: undone.id.clone() };
        let hash = AgentSpec::hash(&serde_json::to_value(&kind).unwrap_or_default());
        if let Some(existing) = self.replay(&id, &hash).await? {
            return Ok(existing);
        }
        let record =
            self.new_record(id, undone.agent, undone.platform, kind, undone.spec, hash, requested_by);
        self.start(record).await
    }

    pub async fn get(&self, id: &str) -> Result<Option<Deployment>, StoreError> {
        self.store.get_deployment(id).await
    }

    pub async fn list(&self, filter: &DeploymentFilter) -> Result<Vec<Deployment>, StoreError> {
        self.store.list_deployments(filter).await
    }

    pub async fn events(&self, id: &str) -> Result<Option<Vec<DeploymentEvent>>, StoreError> {
        if self.store.get_deployment(id).await?.is_none() {
            return Ok(None);
        }
        self.store.deployment_events(id).await.map(Some)
    }

    /// The versions that served the agent, newest first; the first serves now.
    pub async fn history(&self, agent: &str) -> Result<Vec<VersionEntry>, StoreError> {
        let mut entries: Vec<VersionEntry> = self
            .deployments_of(agent)
            .await?
            .into_iter()
            .filter(|d| matches!(d.status, DeploymentStatus::Deployed | DeploymentStatus::RolledBack))
            .filter_map(|d| {
                Some(VersionEntry {
                    version: d.version.clone()?,
                    kind: match d.kind {
                        DeploymentKind::Deploy => "deploy",
                        DeploymentKind::Rollback { .. } => "rollback",
                    },
                    since: d.ended_at.unwrap_or(d.updated_at),
                    spec_hash: d.spec_hash,
                    deployment_id: d.id,
                    current: false,
                })
            })
            .collect();
        entries.sort_by(|a, b| b.since.cmp(&a.since).then_with(|| b.deployment_id.cmp(&a.deployment_id)));
        if let Some(first) = entries.first_mut() {
            first.current = true;
        }
        Ok(entries)
    }

    /// Every deployment of `agent`.
    pub(super) async fn deployments_of(&self, agent: &str) -> Result<Vec<Deployment>, StoreError> {
        let filter = DeploymentFilter { agent: Some(agent.to_owned()), status: None, limit: 0 };
        self.store.list_deployments(&filter).await
    }

    #[allow(clippy::too_many_arguments)]
    fn new_record(
        &self,
        id: String,
        agent: String,
        platform: String,
        kind: DeploymentKind,
        spec: serde_json::Value,
        spec_hash: String,
        requested_by: &str,
    ) -> Deployment {
        let now = self.clock.now();
        Deployment {
            id,
            agent,
            platform,
            kind,
            status: DeploymentStatus::Pending,
            spec,
            spec_hash,
            version: None,
            previous_version: None,
            invoke_target: None,
            requested_by: requested_by.to_owned(),
            created_at: now,
            updated_at: now,
            ended_at: None,
            deadline: now + self.config.deadline,
            error: None,
            rollback_reason: None,
            attempts: 0,
            revision: 1,
        }
    }

    /// An earlier request with the same key: the same deployment (queued again if it is
    /// still going, in case the first request died before queueing it).
    async fn replay(&self, id: &str, hash: &str) -> Result<Option<Deployment>, DeployRequestError> {
        let Some(existing) = self.store.get_deployment(id).await? else { return Ok(None) };
        if existing.spec_hash != hash {
            return Err(DeployRequestError::KeyReused(existing.id));
        }
        if !existing.status.is_terminal() {
            self.enqueue(&existing).await?;
        }
        Ok(Some(existing))
    }

    fn first_event(&self, record: &Deployment) -> DeploymentEvent {
        let what = match &record.kind {
            DeploymentKind::Deploy => format!("deploy of {} to {} requested", record.agent, record.platform),
            DeploymentKind::Rollback { to_version, reason, undoes } => format!(
                "rollback of {} to version {to_version} requested (reason {}, undoing {undoes})",
                record.agent,
                reason.as_str()
            ),
        };
        DeploymentEvent {
            deployment_id: record.id.clone(),
            seq: 1,
            at: record.created_at,
            status: DeploymentStatus::Pending,
            detail: format!("{what} by {}", record.requested_by),
        }
    }

    /// Records a rejected spec: pending → validating → failed, each with its event.
    async fn reject(&self, record: Deployment, errors: &ValidationErrors) -> Result<(), StoreError> {
        let event = self.first_event(&record);
        self.store.create_deployment(&record, &event, record.created_at, None).await?;
        let record =
            self.advance(&record, DeploymentStatus::Validating, "checking the spec".into(), |_| {}).await?;
        self.advance(&record, DeploymentStatus::Failed, format!("the spec was rejected: {errors}"), |d| {
            d.error = Some(errors.to_string());
        })
        .await?;
        Ok(())
    }

    /// Takes the agent's lock with the record, and queues the first task.
    async fn start(&self, record: Deployment) -> Result<Deployment, DeployRequestError> {
        let event = self.first_event(&record);
        let now = record.created_at;
        let lock_until = now + self.config.lock_ttl;
        let mut tries = 0;
        loop {
            match self.store.create_deployment(&record, &event, now, Some(lock_until)).await {
                Ok(()) => break,
                Err(StoreError::Conflict(_)) => {
                    if let Some(existing) = self.replay(&record.id, &record.spec_hash).await? {
                        return Ok(existing);
                    }
                    let Some(lock) = self.store.get_lock(&record.agent).await? else {
                        tries += 1;
                        if tries > 3 {
                            return Err(StoreError::Conflict("could not take the agent's lock".into()).into());
                        }
                        continue;
                    };
                    // A holder that has ended (and did not get to release the lock) is
                    // not in flight: take its lock over.
                    let holder = self.store.get_deployment(&lock.holder).await?;
                    if tries < 3 && holder.as_ref().is_none_or(|h| h.status.is_terminal()) {
                        self.store.release_lock(&record.agent, &lock.holder).await?;
                        tries += 1;
                        continue;
                    }
                    return Err(DeployRequestError::Busy { agent: record.agent, holder: lock.holder });
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.enqueue(&record).await?;
        Ok(record)
    }

    async fn enqueue(&self, record: &Deployment) -> Result<(), StoreError> {
        let task = DeployTask { deployment_id: record.id.clone() };
        let message = NewMessage {
            group: record.agent.clone(),
            dedup_id: record.id.clone(),
            body: serde_json::to_string(&task).unwrap_or_default(),
            priority: Priority::DEFAULT,
            attributes: Default::default(),
        };
        self.queue.send(DEPLOY_QUEUE, message).await.map(|_| ())
    }

    /// Moves `record` to `to` with an event: a conditional write on its revision.
    pub(super) async fn advance(
        &self,
        record: &Deployment,
        to: DeploymentStatus,
        detail: String,
        edit: impl FnOnce(&mut Deployment),
    ) -> Result<Deployment, StoreError> {
        record.status.check(to).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let now = self.clock.now();
        let mut next = record.clone();
        edit(&mut next);
        if to != record.status {
            next.attempts = 0;
        }
        next.status = to;
        next.revision += 1;
        next.updated_at = now;
        if to.is_terminal() {
            next.ended_at = Some(now);
        }
        let event = DeploymentEvent {
            deployment_id: next.id.clone(),
            seq: next.revision,
            at: now,
            status: to,
            detail,
        };
        self.store.transition(&next, &event).await?;
        tracing::info!(deployment = %next.id, agent = %next.agent, status = %to, "deployment moved");
        if to.is_terminal() {
            self.store.release_lock(&next.agent, &next.id).await?;
        }
        Ok(next)
    }
}

/// A new deployment's id: random, or derived from the caller and its idempotency key so
/// that the same request twice names the same deployment.
fn deployment_id(requested_by: &str, idempotency_key: Option<&str>) -> String {
    match idempotency_key {
        Some(key) => {
            use sha2::Digest as _;
            let digest = sha2::Sha256::digest(format!("{requested_by}\n{key}").as_bytes());
            format!("dep-{}", &hex::encode(digest)[..32])
        }
        None => format!("dep-{}", uuid::Uuid::new_v4().simple()),
    }
}
