//! The deployment pipeline: a request is checked and recorded at once (the API answers
//! 202), and a worker moves it through its statuses from the deploy queue, one
//! conditional write (with its event) per move.
//!
//! Every status's work may be done twice: a worker that dies mid-way leaves its task on
//! the queue, the task comes back after its visibility timeout, and the next worker
//! repeats the work of the status the record is in. The target operations look before
//! they act ([`AgentDeployer`]), so repeating one does no harm. Nothing waits in memory:
//! while Bedrock prepares, the task is hidden and comes back to poll, so no deployment is
//! bound by API Gateway's 30 seconds or one Lambda's timeout. A deployment past its
//! deadline is rolled back (reason `timeout`).
//!
//! One deployment per agent at a time: creating one takes the agent's lock (with the
//! record, atomically); each move renews it; the end releases it. A lock whose holder has
//! ended, or that expired, is taken over.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ports::{AgentDeployer, DeployError, DeploymentStore, Readiness};
use super::{
    AgentSpec, Deployment, DeploymentEvent, DeploymentFilter, DeploymentKind, DeploymentStatus,
    RollbackReason, SpecLimits, Submitted, TargetKind,
};
use crate::agents::{Agent, AgentInvoker, AgentStatus, AgentStore, AgentTarget};
use crate::clock::Clock;
use crate::ports::{MessageQueue, StoreError};
use crate::queue::{Delivery, NewMessage, Priority};
use crate::runs::Outcome;
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

const MAX_PAUSE: Duration = Duration::from_secs(30);

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

/// What one step of the pipeline leaves to do.
enum Next {
    /// Keep going: read the record again and do its next step.
    Continue,
    /// Come back after this long.
    Wait(Duration),
    /// Nothing more to do.
    Done,
}

/// Why a step did not succeed.
enum StepError {
    Deploy(DeployError),
    Store(StoreError),
    /// A failure of the deployment itself, with the rollback reason it calls for.
    Fail(RollbackReason, String),
}

impl From<DeployError> for StepError {
    fn from(e: DeployError) -> Self {
        StepError::Deploy(e)
    }
}
impl From<StoreError> for StepError {
    fn from(e: StoreError) -> Self {
        StepError::Store(e)
    }
}

/// The pipeline over its ports: `S` stores deployments (and the registry), `Q` carries
/// tasks, `D` is the target, `I` runs smoke tests.
pub struct Deployments<S, Q, D, I> {
    store: S,
    queue: Q,
    deployer: D,
    invoker: I,
    clock: Arc<dyn Clock>,
    config: DeployConfig,
}

impl<S, Q, D, I> Deployments<S, Q, D, I>
where
    S: DeploymentStore + AgentStore,
    Q: MessageQueue,
    D: AgentDeployer,
    I: AgentInvoker,
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
        let kind = spec.target.kind();
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
    /// gives the same deployment.
    pub async fn deploy(
        &self,
        submitted: Submitted,
        requested_by: &str,
        idempotency_key: Option<&str>,
    ) -> Result<Deployment, DeployRequestError> {
        let hash = AgentSpec::hash(&submitted.document);
        let id = deployment_id(requested_by, idempotency_key);
        if let Some(existing) = self.replay(&id, &hash).await? {
            return Ok(existing);
        }
        let checked = self.check(&submitted);
        let agent = match &checked {
            Ok(spec) => spec.name.clone(),
            Err(_) => submitted.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "-".to_owned()),
        };
        let target = match &checked {
            Ok(spec) => spec.target.kind().to_string(),
            Err(_) => submitted
                .document
                .pointer("/target/kind")
                .and_then(|k| k.as_str())
                .map_or_else(|| TargetKind::BedrockAgent.as_str().to_owned(), TargetKind::canonical),
        };
        let record = self.new_record(
            id.clone(),
            agent,
            target,
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
        let record = self.new_record(id, undone.agent, undone.target, kind, undone.spec, hash, requested_by);
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
        let filter = DeploymentFilter { agent: Some(agent.to_owned()), status: None, limit: 0 };
        let mut entries: Vec<VersionEntry> = self
            .store
            .list_deployments(&filter)
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

    #[allow(clippy::too_many_arguments)]
    fn new_record(
        &self,
        id: String,
        agent: String,
        target: String,
        kind: DeploymentKind,
        spec: serde_json::Value,
        spec_hash: String,
        requested_by: &str,
    ) -> Deployment {
        let now = self.clock.now();
        Deployment {
            id,
            agent,
            target,
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
            DeploymentKind::Deploy => format!("deploy of {} to {} requested", record.agent, record.target),
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
    async fn advance(
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

    /// Moves the deployment of one task as far as it can go in one work budget.
    pub async fn process(&self, delivery: &Delivery) -> Outcome {
        let Ok(task) = serde_json::from_str::<DeployTask>(&delivery.body) else {
            return Outcome::DeadLetter("malformed_task".into());
        };
        let started = Instant::now();
        loop {
            let record = match self.store.get_deployment(&task.deployment_id).await {
                Ok(Some(record)) => record,
                Ok(None) => {
                    tracing::warn!(deployment = %task.deployment_id, "a task for no deployment");
                    return Outcome::Done;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read a deployment");
                    return Outcome::RetryAfter(self.config.first_pause);
                }
            };
            match self.step(record).await {
                Next::Done => return Outcome::Done,
                Next::Wait(pause) => return Outcome::RetryAfter(pause),
                Next::Continue if started.elapsed() >= self.config.work_budget => {
                    return Outcome::RetryAfter(Duration::ZERO);
                }
                Next::Continue => {}
            }
        }
    }

    /// Acknowledges, delays or dead-letters the task as `outcome` says.
    pub async fn settle(&self, delivery: &Delivery, outcome: Outcome) -> Result<(), StoreError> {
        match outcome {
            Outcome::Done => self.queue.ack(DEPLOY_QUEUE, &delivery.receipt).await,
            Outcome::RetryAfter(delay) => {
                self.queue.retry_after(DEPLOY_QUEUE, &delivery.receipt, delay).await
            }
            Outcome::DeadLetter(reason) => self.queue.dead_letter(DEPLOY_QUEUE, delivery, &reason).await,
        }
    }

    /// Does the work of the record's status and moves it on.
    async fn step(&self, record: Deployment) -> Next {
        if record.status.is_terminal() {
            // Its end was written; the lock may not have been released.
            return match self.store.release_lock(&record.agent, &record.id).await {
                Ok(()) => Next::Done,
                Err(_) => Next::Wait(self.config.first_pause),
            };
        }
        let now = self.clock.now();
        let result = if now >= record.deadline && record.status != DeploymentStatus::RollingBack {
            Err(StepError::Fail(
                RollbackReason::Timeout,
                "the deployment did not finish before its deadline".into(),
            ))
        } else {
            match self.store.renew_lock(&record.agent, &record.id, now + self.config.lock_ttl).await {
                Err(StoreError::Conflict(_)) => return self.lost_lock(record).await,
                Err(e) => Err(StepError::Store(e)),
                Ok(()) => self.work(&record).await,
            }
        };
        match result {
            Ok(next) => next,
            Err(StepError::Store(StoreError::Conflict(_))) => {
                // Someone else moved it: look again.
                Next::Continue
            }
            Err(StepError::Store(e)) => {
                tracing::warn!(error = %e, deployment = %record.id, "store unavailable; will retry");
                Next::Wait(self.config.first_pause)
            }
            Err(StepError::Deploy(DeployError::Settling(state))) => {
                tracing::debug!(deployment = %record.id, %state, "still settling");
                Next::Wait(self.settling_pause(&record))
            }
            Err(StepError::Deploy(DeployError::Unavailable(why)))
                if record.attempts + 1 < self.config.max_attempts =>
            {
                let pause = self.pause(record.attempts);
                let detail = format!("attempt {} failed, retrying in {pause:?}: {why}", record.attempts + 1);
                let status = record.status;
                self.moved(self.advance(&record, status, detail, |d| d.attempts += 1).await, pause)
            }
            Err(StepError::Deploy(e)) => self.fail(record, RollbackReason::Failure, e.to_string()).await,
            Err(StepError::Fail(reason, why)) => self.fail(record, reason, why).await,
        }
    }

    /// The next step after a write: wait `pause` if it went in, look again if it lost.
    fn moved(&self, written: Result<Deployment, StoreError>, pause: Duration) -> Next {
        match written {
            Ok(_) => Next::Wait(pause),
            Err(StoreError::Conflict(_)) => Next::Wait(Duration::ZERO),
            Err(_) => Next::Wait(self.config.first_pause),
        }
    }

    /// The pause before looking again at something that takes its time (a preparation, a
    /// resource settling): it grows with the time spent in the status so far.
    fn settling_pause(&self, record: &Deployment) -> Duration {
        let waited =
            Duration::try_from(self.clock.now().duration_since(record.updated_at)).unwrap_or_default();
        (waited / 2).clamp(self.config.first_pause, MAX_PAUSE)
    }

    fn pause(&self, attempts: u32) -> Duration {
        self.config.first_pause.saturating_mul(1 << attempts.min(8)).min(MAX_PAUSE)
    }

    fn spec(record: &Deployment) -> Result<AgentSpec, StepError> {
        serde_json::from_value(record.spec.clone()).map_err(|e| {
            StepError::Fail(RollbackReason::Failure, format!("the stored spec no longer reads: {e}"))
        })
    }

    /// The work of one status.
    async fn work(&self, record: &Deployment) -> Result<Next, StepError> {
        use DeploymentStatus::*;
        let continue_with = |_: Deployment| Ok(Next::Continue);
        match (record.status, &record.kind) {
            (Pending, DeploymentKind::Deploy) => {
                continue_with(self.advance(record, Validating, "checking the spec".into(), |_| {}).await?)
            }
            (Pending, DeploymentKind::Rollback { .. }) => {
                continue_with(self.advance(record, BackingUp, "taking a backup".into(), |_| {}).await?)
            }
            (Validating, _) => {
                let submitted = Submitted::from_value(record.spec.clone());
                match self.check(&submitted) {
                    Ok(_) => {
                        let detail =
                            format!("the spec is valid ({} bytes); taking a backup", submitted.size());
                        continue_with(self.advance(record, BackingUp, detail, |_| {}).await?)
                    }
                    Err(errors) => Err(StepError::Fail(
                        RollbackReason::Failure,
                        format!("the spec was rejected: {errors}"),
                    )),
                }
            }
            (BackingUp, kind) => {
                let spec = Self::spec(record)?;
                let backup = match self.store.get_backup(&record.id).await? {
                    Some(backup) => backup,
                    None => {
                        let backup = super::Backup {
                            deployment_id: record.id.clone(),
                            agent: record.agent.clone(),
                            taken_at: self.clock.now(),
                            snapshot: self.deployer.snapshot(&spec).await?,
                        };
                        match self.store.put_backup(&backup).await {
                            Ok(()) | Err(StoreError::Conflict(_)) => {}
                            Err(e) => return Err(e.into()),
                        }
                        self.store.get_backup(&record.id).await?.unwrap_or(backup)
                    }
                };
                let serving = backup.snapshot.as_ref().and_then(|s| s.serving_version.clone());
                let detail = match (&backup.snapshot, &serving) {
                    (None, _) => "backed up: the agent does not exist on the target yet".to_owned(),
                    (Some(_), None) => {
                        "backed up the agent's configuration; no version serves yet".to_owned()
                    }
                    (Some(_), Some(v)) => format!("backed up the agent's configuration; version {v} serves"),
                };
                let to = match kind {
                    DeploymentKind::Deploy => Deploying,
                    DeploymentKind::Rollback { .. } => RollingBack,
                };
                continue_with(self.advance(record, to, detail, |d| d.previous_version = serving).await?)
            }
            (Deploying, _) => {
                let spec = Self::spec(record)?;
                self.deployer.apply(&spec).await?;
                let detail = format!(
                    "the agent's draft matches the spec ({} action groups); preparing",
                    spec.action_groups.len()
                );
                continue_with(self.advance(record, Preparing, detail, |_| {}).await?)
            }
            (Preparing, _) => {
                let spec = Self::spec(record)?;
                match self.deployer.prepare(&spec).await? {
                    Readiness::Ready => continue_with(
                        self.advance(record, Versioning, "prepared; publishing a version".into(), |_| {})
                            .await?,
                    ),
                    Readiness::Pending(state) => {
                        tracing::debug!(deployment = %record.id, %state, "still preparing");
                        Ok(Next::Wait(self.settling_pause(record)))
                    }
                }
            }
            (Versioning, _) => {
                let spec = Self::spec(record)?;
                let published = self.deployer.publish(&spec).await?;
                let detail = format!("version {} published and in service", published.version);
                continue_with(
                    self.advance(record, Verifying, detail, |d| {
                        d.version = Some(published.version.clone());
                        d.invoke_target = Some(published.target.clone());
                    })
                    .await?,
                )
            }
            (Verifying, _) => {
                let spec = Self::spec(record)?;
                let detail = match (&spec.verify, &record.invoke_target) {
                    (Some(verify), Some(target)) => self.smoke_test(verify, target).await?,
                    _ => "no smoke test in the spec".to_owned(),
                };
                let registered = self.register(&spec, record.invoke_target.as_ref()).await?;
                let detail = format!("{detail}{registered}; deployed");
                continue_with(self.advance(record, Deployed, detail, |_| {}).await?)
            }
            (RollingBack, kind) => self.roll_back(record, kind).await,
            (status, _) => {
                Err(StepError::Fail(RollbackReason::Failure, format!("nothing to do in status {status}")))
            }
        }
    }

    async fn smoke_test(
        &self,
        verify: &super::VerifySpec,
        target: &AgentTarget,
    ) -> Result<String, StepError> {
        let timeout = Duration::from_secs(u64::from(verify.timeout_seconds));
        let answer = match self.invoker.invoke(target, &verify.input, timeout).await {
            Ok(answer) => serde_json::Value::Object(answer).to_string(),
            Err(e) => {
                return Err(StepError::Fail(
                    RollbackReason::HealthCheck,
                    format!("the smoke test failed: {e}"),
                ));
            }
        };
        if let Some(pattern) = &verify.expect {
            let matches = regex_lite::Regex::new(pattern).is_ok_and(|re| re.is_match(&answer));
            if !matches {
                let shown: String = answer.chars().take(200).collect();
                return Err(StepError::Fail(
                    RollbackReason::HealthCheck,
                    format!("the smoke test's answer does not match {pattern:?}: {shown}"),
                ));
            }
        }
        Ok("the smoke test passed".to_owned())
    }

    /// Puts the agent in the registry (or points its entry at `target`), if the spec asks.
    async fn register(&self, spec: &AgentSpec, target: Option<&AgentTarget>) -> Result<String, StoreError> {
        let (Some(register), Some(target)) = (&spec.register, target) else { return Ok(String::new()) };
        let capabilities: BTreeSet<String> = register.capabilities.iter().cloned().collect();
        match self.store.get_agent(&register.id).await? {
            Some(mut agent) => {
                agent.target = target.clone();
                agent.capabilities = capabilities;
                self.store.update_agent(&agent).await?;
            }
            None => {
                let agent = Agent {
                    id: register.id.clone(),
                    name: spec.name.clone(),
                    target: target.clone(),
                    capabilities,
                    status: AgentStatus::Active,
                    max_concurrency: None,
                    created_at: self.clock.now(),
                };
                match self.store.insert_agent(&agent).await {
                    Ok(()) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(format!("; registry entry {} points at it", register.id))
    }

    /// A rollback: of a failed deployment (to what served before it), or one asked for.
    async fn roll_back(&self, record: &Deployment, kind: &DeploymentKind) -> Result<Next, StepError> {
        let spec = Self::spec(record)?;
        let (to_version, source) = match kind {
            DeploymentKind::Deploy => {
                let Some(previous) = record.previous_version.clone() else {
                    let why = record.error.clone().unwrap_or_default();
                    let detail = format!(
                        "{why}; nothing to roll back to: no version served before this deployment \
                         (the agent's draft is left on the target)"
                    );
                    self.advance(record, DeploymentStatus::Failed, detail, |_| {}).await?;
                    return Ok(Next::Continue);
                };
                (previous, self.store.get_backup(&record.id).await?)
            }
            DeploymentKind::Rollback { to_version, .. } => {
                (to_version.clone(), self.backup_of(&record.agent, to_version).await?)
            }
        };
        let restored = match source.as_ref().and_then(|b| b.snapshot.as_ref().map(|s| (b, s))) {
            Some((backup, snapshot)) => {
                self.deployer.restore(&spec, snapshot).await?;
                format!("restored the draft from the backup of {}", backup.deployment_id)
            }
            None => "no backup holds that version's configuration: the draft was left as it is".to_owned(),
        };
        let published = self.deployer.point_to(&spec, &to_version).await?;
        let registered = self.register(&spec, Some(&published.target)).await?;
        let detail = format!("{restored}; version {to_version} serves again{registered}");
        self.advance(record, DeploymentStatus::RolledBack, detail, |d| {
            d.version = Some(published.version.clone());
            d.invoke_target = Some(published.target.clone());
        })
        .await?;
        Ok(Next::Continue)
    }

    /// The backup that holds `version`'s configuration: the one taken by the first
    /// deployment that replaced it.
    async fn backup_of(&self, agent: &str, version: &str) -> Result<Option<super::Backup>, StoreError> {
        let filter = DeploymentFilter { agent: Some(agent.to_owned()), status: None, limit: 0 };
        let mut replacing: Vec<Deployment> = self
            .store
            .list_deployments(&filter)
            .await?
            .into_iter()
            .filter(|d| d.previous_version.as_deref() == Some(version))
            .collect();
        replacing.sort_by_key(|d| d.created_at);
        for deployment in replacing {
            if let Some(backup) = self.store.get_backup(&deployment.id).await?
                && backup.snapshot.is_some()
            {
                return Ok(Some(backup));
            }
        }
        Ok(None)
    }

    /// A failure: rolled back if the target was touched, else the end.
    async fn fail(&self, record: Deployment, reason: RollbackReason, why: String) -> Next {
        tracing::warn!(deployment = %record.id, status = %record.status, %why, "deployment step failed");
        let written = if record.status.has_touched_target() {
            let detail = format!("{why}; rolling back (reason {})", reason.as_str());
            self.advance(&record, DeploymentStatus::RollingBack, detail, |d| {
                d.error = Some(why.clone());
                d.rollback_reason = Some(reason);
            })
            .await
        } else if record.status == DeploymentStatus::RollingBack {
            let error = match &record.error {
                Some(first) => format!("{first}; the rollback failed: {why}"),
                None => format!("the rollback failed: {why}"),
            };
            self.advance(&record, DeploymentStatus::Failed, error.clone(), |d| d.error = Some(error)).await
        } else {
            self.advance(&record, DeploymentStatus::Failed, why.clone(), |d| d.error = Some(why)).await
        };
        match written {
            Ok(_) => Next::Continue,
            Err(_) => Next::Wait(self.config.first_pause),
        }
    }

    /// Another deployment holds the agent's lock (ours expired): end without touching
    /// the target further, and say so.
    async fn lost_lock(&self, record: Deployment) -> Next {
        let holder =
            self.store.get_lock(&record.agent).await.ok().flatten().map(|l| l.holder).unwrap_or_default();
        let why = format!("lost the agent's lock to deployment {holder}; left as it was, not rolled back");
        let mut current = record;
        if current.status.has_touched_target() {
            match self
                .advance(&current, DeploymentStatus::RollingBack, why.clone(), |d| {
                    d.error = Some(why.clone())
                })
                .await
            {
                Ok(next) => current = next,
                Err(_) => return Next::Wait(self.config.first_pause),
            }
        }
        match self.advance(&current, DeploymentStatus::Failed, why.clone(), |d| d.error = Some(why)).await {
            Ok(_) => Next::Done,
            Err(_) => Next::Wait(self.config.first_pause),
        }
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
