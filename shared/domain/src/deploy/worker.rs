//! What a delivery on the deploy queue asks of [`Deployments`]: move the deployment
//! through its statuses, one conditional write (with its event) per move, as far as one
//! work budget allows.
//!
//! Every status's work may be done twice: a worker that dies mid-way leaves its task on
//! the queue, the task comes back after its visibility timeout, and the next worker
//! repeats the work of the status the record is in. The target operations look before
//! they act ([`AgentDeployer`]), so repeating one does no harm. Nothing waits in memory:
//! while Bedrock prepares, the task is hidden and comes back to poll, so no deployment is
//! bound by API Gateway's 30 seconds or one Lambda's timeout. A deployment past its
//! deadline is rolled back (reason `timeout`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::ports::{AgentDeployer, DeployError, DeploymentStore, Readiness};
use super::service::{DEPLOY_QUEUE, DeployTask, Deployments};
use super::{AgentSpec, Deployment, DeploymentKind, DeploymentStatus, RollbackReason, Submitted};
use crate::agents::{Agent, AgentInvoker, AgentStatus, AgentStore, AgentTarget};
use crate::ports::{MessageQueue, StoreError};
use crate::queue::{Delivery, Handled, Outcome, Polling, QueueWorker};

const MAX_PAUSE: Duration = Duration::from_secs(30);

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

impl<S: DeploymentStore + AgentStore, Q: MessageQueue, D: AgentDeployer, I: AgentInvoker>
    Deployments<S, Q, D, I>
{
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
        let mut replacing: Vec<Deployment> = self
            .deployments_of(agent)
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

/// How much longer than the work budget a task received by the local stack stays hidden:
/// the pipeline hands a task back once its budget is spent, after the step under way.
const LOCAL_VISIBILITY_MARGIN: Duration = Duration::from_secs(20);

impl<S, Q, D, I> QueueWorker for Deployments<S, Q, D, I>
where
    S: DeploymentStore + AgentStore,
    Q: MessageQueue,
    D: AgentDeployer,
    I: AgentInvoker,
{
    async fn handle(&self, _queue: &str, delivery: &Delivery) -> Handled {
        let outcome = self.process(delivery).await;
        Handled::or_retry(self.queue.settle(DEPLOY_QUEUE, delivery, outcome).await, delivery)
    }

    /// One task at a time: a deployment's work is long, and one receive per task lets
    /// another consumer take the next.
    fn polling(&self) -> Vec<Polling> {
        let visibility = self.config.work_budget + LOCAL_VISIBILITY_MARGIN;
        vec![Polling { queues: vec![DEPLOY_QUEUE.to_owned()], batch: 1, visibility }]
    }
}
