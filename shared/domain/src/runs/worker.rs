//! What a delivery on the step queue asks of the [`Engine`]: a step task runs (or
//! re-checks) one step, a deadline task times its run out.
//!
//! A step task is a queue message naming a run and a step. A worker that receives one
//! starts an attempt (a conditional write), calls the step's target, records the result
//! (a conditional write), and makes each newly ready dependent ready: creating the
//! dependent's record is a conditional create, so exactly one of several parents that
//! finish at once enqueues it. Every message may arrive twice; every write checks the
//! version it read; so each step's effect happens once and nothing is lost when a worker
//! dies mid-step — its message comes back after the visibility timeout and the step is
//! tried again.
//!
//! Tasks of one step share a FIFO group (`<run>/<step>`), so a step never has two tasks in
//! flight at once, while different steps of a run run in parallel.
//!
//! # A lost attempt
//!
//! A task that comes back while its step is `running` means the attempt's worker stopped
//! before it recorded a result: the local stack was restarted (its queue takes back what
//! the dead process held, and marks the delivery [`Delivery::reclaimed`]), or, on AWS,
//! the attempt's visibility timeout ran out (a Lambda that died or timed out). The lost
//! attempt counts as one of the step's attempts — a step that brings its worker down
//! every time must end, not loop — and the next one starts at once, without the retry
//! policy's backoff: the wait for the task to come back was the pause. The log and a
//! `run.attempt_lost` event say so: "step `x`: attempt 1 lost with the previous process;
//! retrying".

use std::collections::HashMap;
use std::time::Duration;

use jiff::SignedDuration;
use serde_json::{Map, Value, json};

use super::execute::Failed;
use super::ports::EngineStore;
use super::service::{Compiled, Engine, EngineError, STEP_QUEUE, Task};
use super::{Run, RunStatus, SkipReason, StepRun, StepStatus};
use crate::agents::AgentInvoker;
use crate::events::Event;
use crate::ports::{MessageQueue, StoreError};
use crate::queue::{Delivery, Handled, Outcome, Polling, QueueWorker};
use crate::workflow::{ErrorHandling, StepIndex, StepKind};

/// SQS cannot hide a message longer than 12 hours; a deadline further away is re-armed.
const MAX_HIDE: Duration = Duration::from_secs(12 * 3600);
/// After a lost conditional write, look at the record again soon.
const CONFLICT_RETRY: Duration = Duration::from_millis(200);

impl<S: EngineStore, Q: MessageQueue, I: AgentInvoker> Engine<S, Q, I> {
    /// Processes one delivered task; the caller applies the outcome to the queue
    /// ([`MessageQueue::settle`] on [`STEP_QUEUE`]).
    pub async fn process(&self, delivery: &Delivery) -> Outcome {
        let task: Task = match serde_json::from_str(&delivery.body) {
            Ok(task) => task,
            Err(e) => return Outcome::DeadLetter(format!("malformed_task: {e}")),
        };
        // Each kind's work is boxed: their futures are large (a debug build's especially),
        // and this one is polled on whatever stack calls it.
        let result = match &task {
            Task::Step { run_id, step_id } => Box::pin(self.process_step(run_id, step_id, delivery)).await,
            Task::Deadline { run_id } => Box::pin(self.process_deadline(run_id)).await,
            Task::Assignment { task_id, assignment_id } => {
                Box::pin(self.process_assignment(task_id, assignment_id, delivery)).await
            }
            Task::TaskWatch { task_id, generation } => {
                Box::pin(self.process_watch(task_id, *generation, delivery)).await
            }
        };
        match result {
            Ok(outcome) => outcome,
            Err(EngineError::Store(StoreError::Conflict(_))) => Outcome::RetryAfter(CONFLICT_RETRY),
            Err(EngineError::Store(StoreError::Unavailable(e))) => {
                tracing::warn!(error = %e, "store unavailable; the task will be retried");
                Outcome::RetryAfter(Duration::from_secs(5))
            }
            Err(e) => Outcome::DeadLetter(format!("unprocessable_task: {e}")),
        }
    }

    async fn process_deadline(&self, run_id: &str) -> Result<Outcome, EngineError> {
        let Some((run, _)) = self.store.get_run(run_id).await? else { return Ok(Outcome::Done) };
        let Some(deadline) = run.deadline else { return Ok(Outcome::Done) };
        if run.status.is_terminal() {
            return Ok(Outcome::Done);
        }
        let now = self.clock.now();
        if now < deadline {
            let wait = Duration::try_from(deadline.duration_since(now)).unwrap_or(Duration::ZERO);
            return Ok(Outcome::RetryAfter(wait.min(MAX_HIDE)));
        }
        self.end_run(&run, RunStatus::TimedOut, Some("the run's timeout passed".into())).await?;
        Ok(Outcome::Done)
    }

    async fn process_step(
        &self,
        run_id: &str,
        step_id: &str,
        delivery: &Delivery,
    ) -> Result<Outcome, EngineError> {
        let Some((run, steps)) = self.store.get_run(run_id).await? else {
            tracing::warn!(run_id, "a task for an unknown run");
            return Ok(Outcome::Done);
        };
        let compiled = self.compiled(&run.workflow_id, Some(&run.workflow_version)).await?;
        let index = compiled
            .index(step_id)
            .ok_or_else(|| EngineError::Corrupt(format!("no step {step_id:?} in the workflow")))?;
        let records: HashMap<&str, &StepRun> = steps.iter().map(|s| (s.step_id.as_str(), s)).collect();
        let Some(step) = records.get(step_id).map(|s| (*s).clone()) else {
            return Err(EngineError::Corrupt(format!("step {step_id:?} has a task but no record")));
        };
        // Past its deadline the run times out here, and the step ends with it below.
        let run = match run.deadline {
            Some(deadline) if !run.status.is_terminal() && self.clock.now() >= deadline => {
                self.end_run(&run, RunStatus::TimedOut, Some("the run's timeout passed".into())).await?
            }
            _ => run,
        };
        if run.status.is_terminal() {
            if !step.status.is_terminal() {
                if matches!(compiled.workflow.step(index).kind, StepKind::Squad { .. }) {
                    Box::pin(self.cancel_squad_step_task(&run, &step)).await?;
                }
                self.finish_step(
                    run_id,
                    step,
                    StepStatus::Cancelled,
                    None,
                    Some("the run has ended".into()),
                    None,
                )
                .await?;
            }
            return Ok(Outcome::Done);
        }
        if step.status.is_terminal() {
            // A redelivery after the step ended, perhaps after a crash between recording
            // the result and making dependents ready: finish that work.
            self.advance(&compiled, &run, index).await?;
            return Ok(Outcome::Done);
        }

        let definition = compiled.workflow.step(index);
        if matches!(definition.kind, StepKind::Squad { .. }) {
            return self.process_squad_step(&compiled, &run, index, &records, step).await;
        }
        let attempt = step.attempts + 1;
        let now = self.clock.now();
        let retrying = attempt <= definition.retry_policy.max_attempts;
        let lost = (step.status == StepStatus::Running).then(|| LostAttempt::new(&step, delivery, retrying));
        if !retrying {
            // Only a task whose attempts were all cut off (workers that died) gets here.
            let (why, also) = match &lost {
                Some(lost) => (lost.reason.clone(), Some(self.lost_event(run_id, lost))),
                None => (format!("no attempts left after {}", step.attempts), None),
            };
            return self.fail_step(&compiled, &run, index, step, why, also).await;
        }
        let step_budget = definition.timeout.map(|t| SignedDuration::from_secs_f64(t.get()));
        let mut budget = self.attempt_timeout;
        for limit in [step_budget, run.deadline.map(|d| d.duration_since(now))].into_iter().flatten() {
            budget = budget.min(Duration::try_from(limit).unwrap_or(Duration::ZERO));
        }
        let started = StepRun {
            status: step
                .status
                .check(StepStatus::Running)
                .map_err(|e| EngineError::Corrupt(e.to_string()))?,
            attempts: attempt,
            started_at: step.started_at.or(Some(now)),
            error: None,
            version: step.version + 1,
            ..step
        };
        // The lost attempt, if any, is told with the new one's start, in the same write.
        let events: Vec<Event> = lost
            .as_ref()
            .map(|lost| self.lost_event(run_id, lost))
            .into_iter()
            .chain(started.event(run_id, now))
            .collect();
        self.store.update_step(run_id, &started, &events).await?;
        // Hide the task for as long as this attempt may take: a worker that dies
        // mid-attempt is noticed when it reappears (or when the local stack restarts).
        self.queue.keep_hidden(STEP_QUEUE, &delivery.receipt, budget + self.visibility_margin).await?;

        let result = self.execute(&compiled, &run, index, &records, &started, budget).await;
        if result.is_err()
            && let Some(deadline) = run.deadline
            && self.clock.now() >= deadline
        {
            // Cut off by the run's deadline: the run timed out; the step did not fail.
            self.finish_step(
                run_id,
                started,
                StepStatus::Cancelled,
                None,
                Some("the run timed out".into()),
                None,
            )
            .await?;
            self.end_run(&run, RunStatus::TimedOut, Some("the run's timeout passed".into())).await?;
            return Ok(Outcome::Done);
        }
        match result {
            Ok(outputs) => {
                let branch = outputs.values().next().and_then(Value::as_bool);
                self.finish_step(run_id, started, StepStatus::Succeeded, Some(outputs), None, None).await?;
                tracing::info!(run_id, step_id, attempt, "step succeeded");
                if let (StepKind::Condition { when_true, when_false, .. }, Some(taken)) =
                    (&definition.kind, branch)
                {
                    let not_taken = if taken { when_false } else { when_true };
                    for skipped in not_taken {
                        let id = compiled.id_of(*skipped);
                        let record = StepRun::skipped(id, SkipReason::BranchNotTaken, self.clock.now());
                        let events = record.event(run_id, self.clock.now());
                        match self.store.create_step(run_id, &record, events.as_slice()).await {
                            Ok(()) | Err(StoreError::Conflict(_)) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                self.advance(&compiled, &run, index).await?;
                Ok(Outcome::Done)
            }
            Err(Failed { error, loop_results }) if error.is_retryable() => {
                match definition.retry_policy.delay_before(attempt + 1) {
                    Some(delay) => {
                        tracing::warn!(run_id, step_id, attempt, error = %error, "attempt failed; retrying");
                        let waiting = StepRun {
                            status: StepStatus::Queued,
                            error: Some(error.to_string()),
                            loop_results: loop_results.or(started.loop_results.clone()),
                            version: started.version + 1,
                            ..started
                        };
                        let events = waiting.event(run_id, self.clock.now());
                        self.store.update_step(run_id, &waiting, events.as_slice()).await?;
                        Ok(Outcome::RetryAfter(Duration::from_secs_f64(delay)))
                    }
                    None => self.fail_step(&compiled, &run, index, started, error.to_string(), None).await,
                }
            }
            Err(Failed { error, .. }) => {
                self.fail_step(&compiled, &run, index, started, error.to_string(), None).await
            }
        }
    }

    /// Says in the log why a step's attempt is lost: the event that tells the run's
    /// followers, written with the next attempt's start.
    fn lost_event(&self, run_id: &str, lost: &LostAttempt) -> Event {
        tracing::warn!(run_id, step_id = %lost.step_id, attempt = lost.attempt, cause = lost.cause, "{}", lost.reason);
        let data = json!({
            "step_id": lost.step_id, "attempt": lost.attempt, "cause": lost.cause,
            "retrying": lost.retrying, "reason": lost.reason,
        });
        Event::new("run.attempt_lost", run_id, self.clock.now(), data)
    }

    pub(super) async fn fail_step(
        &self,
        compiled: &Compiled,
        run: &Run,
        index: StepIndex,
        step: StepRun,
        error: String,
        also: Option<Event>,
    ) -> Result<Outcome, EngineError> {
        let step_id = step.step_id.clone();
        tracing::warn!(run_id = %run.id, step_id = %step_id, error = %error, "step failed");
        self.finish_step(&run.id, step, StepStatus::Failed, None, Some(error.clone()), also).await?;
        match compiled.workflow.error_handling() {
            ErrorHandling::Stop => {
                self.end_run(run, RunStatus::Failed, Some(format!("step {step_id:?} failed: {error}")))
                    .await?;
            }
            ErrorHandling::Continue => self.advance(compiled, run, index).await?,
        }
        Ok(Outcome::Done)
    }

    pub(super) async fn finish_step(
        &self,
        run_id: &str,
        step: StepRun,
        status: StepStatus,
        outputs: Option<Map<String, Value>>,
        error: Option<String>,
        also: Option<Event>,
    ) -> Result<StepRun, EngineError> {
        let finished = StepRun {
            status: step.status.check(status).map_err(|e| EngineError::Corrupt(e.to_string()))?,
            finished_at: Some(self.clock.now()),
            outputs,
            error,
            loop_results: None,
            version: step.version + 1,
            ..step
        };
        // `also` (a lost attempt, say) is told with the step's end, in the same write.
        let events: Vec<Event> = also.into_iter().chain(finished.event(run_id, self.clock.now())).collect();
        self.store.update_step(run_id, &finished, &events).await?;
        Ok(finished)
    }

    /// After step `index` ended: makes each dependent whose dependencies have all ended
    /// ready (or skipped, if one of them did not succeed), then ends the run if nothing
    /// is left. Safe to repeat.
    pub(super) async fn advance(
        &self,
        compiled: &Compiled,
        run: &Run,
        index: StepIndex,
    ) -> Result<(), EngineError> {
        let (current, steps) =
            self.store.get_run(&run.id).await?.ok_or_else(|| EngineError::RunNotFound(run.id.clone()))?;
        if current.status.is_terminal() {
            return Ok(());
        }
        let mut statuses: HashMap<String, (StepStatus, Option<SkipReason>)> =
            steps.iter().map(|s| (s.step_id.clone(), (s.status, s.skip_reason))).collect();
        let mut frontier = vec![index];
        let mut visited = std::collections::HashSet::new();
        while let Some(ended) = frontier.pop() {
            if !visited.insert(ended) {
                continue;
            }
            for &dependent in &compiled.dependents[ended.index()] {
                let id = compiled.id_of(dependent);
                match statuses.get(id) {
                    // Skipped already (say, by a condition): its dependents are next.
                    Some((StepStatus::Skipped, _)) => {
                        frontier.push(dependent);
                        continue;
                    }
                    Some((status, _)) if status.is_terminal() => continue,
                    _ => {}
                }
                let deps = &compiled.dependencies[dependent.index()];
                let of = |d: &StepIndex| {
                    statuses.get(compiled.id_of(*d)).copied().unwrap_or((StepStatus::Waiting, None))
                };
                if !deps.iter().all(|d| of(d).0.is_terminal()) {
                    continue;
                }
                // A failed dependency (or one skipped because of a failure) means this
                // step's inputs can never exist; dependencies all skipped by a condition
                // mean its branch was not taken. Otherwise it runs: a join after two
                // branches runs once either succeeded.
                let broken = deps.iter().any(|d| {
                    matches!(
                        of(d),
                        (StepStatus::Failed | StepStatus::Cancelled, _)
                            | (_, Some(SkipReason::DependencyFailed))
                    )
                });
                let any_ran = deps.iter().any(|d| of(d).0 == StepStatus::Succeeded);
                let skip = if broken {
                    Some(SkipReason::DependencyFailed)
                } else if any_ran {
                    None
                } else {
                    Some(SkipReason::BranchNotTaken)
                };
                match skip {
                    None => {
                        self.make_ready(&run.id, id).await?;
                        statuses.entry(id.to_owned()).or_insert((StepStatus::Queued, None));
                    }
                    Some(reason) => {
                        let skipped = StepRun::skipped(id, reason, self.clock.now());
                        match self
                            .store
                            .create_step(
                                &run.id,
                                &skipped,
                                skipped.event(&run.id, self.clock.now()).as_slice(),
                            )
                            .await
                        {
                            Ok(()) | Err(StoreError::Conflict(_)) => {}
                            Err(e) => return Err(e.into()),
                        }
                        statuses.insert(id.to_owned(), (StepStatus::Skipped, Some(reason)));
                        frontier.push(dependent);
                    }
                }
            }
        }
        let total = compiled.workflow.steps().len();
        let ended = statuses.values().filter(|(s, _)| s.is_terminal()).count();
        if ended == total {
            let (latest, steps) =
                self.store.get_run(&run.id).await?.ok_or_else(|| EngineError::RunNotFound(run.id.clone()))?;
            if steps.len() == total
                && steps.iter().all(|s| s.status.is_terminal())
                && !latest.status.is_terminal()
            {
                let failed: Vec<&str> = steps
                    .iter()
                    .filter(|s| s.status == StepStatus::Failed)
                    .map(|s| s.step_id.as_str())
                    .collect();
                let (status, error) = if failed.is_empty() {
                    (RunStatus::Succeeded, None)
                } else {
                    (RunStatus::Failed, Some(format!("failed steps: {}", failed.join(", "))))
                };
                match self.end_run(&latest, status, error).await {
                    Ok(_) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

/// An attempt whose worker stopped before it recorded a result (see the module docs).
struct LostAttempt {
    step_id: String,
    attempt: u32,
    /// `restart` (the local stack took the task back at start-up) or `visibility_timeout`.
    cause: &'static str,
    retrying: bool,
    reason: String,
}

impl LostAttempt {
    fn new(step: &StepRun, delivery: &Delivery, retrying: bool) -> Self {
        let (cause, how) = if delivery.reclaimed {
            ("restart", "lost with the previous process")
        } else {
            ("visibility_timeout", "lost: its worker did not finish within the visibility timeout")
        };
        let next = if retrying { "retrying" } else { "no attempts left" };
        Self {
            step_id: step.step_id.clone(),
            attempt: step.attempts,
            cause,
            retrying,
            reason: format!("step `{}`: attempt {} {how}; {next}", step.step_id, step.attempts),
        }
    }
}

/// How long a step task received by the local stack stays hidden; a longer attempt keeps
/// it hidden as it goes (see [`Engine::process`]).
const LOCAL_VISIBILITY: Duration = Duration::from_secs(30);

impl<S: EngineStore, Q: MessageQueue, I: AgentInvoker> QueueWorker for Engine<S, Q, I> {
    async fn handle(&self, _queue: &str, delivery: &Delivery) -> Handled {
        let outcome = self.process(delivery).await;
        Handled::or_retry(self.queue.settle(STEP_QUEUE, delivery, outcome).await, delivery)
    }

    fn polling(&self) -> Vec<Polling> {
        vec![Polling { queues: vec![STEP_QUEUE.to_owned()], batch: 10, visibility: LOCAL_VISIBILITY }]
    }
}
