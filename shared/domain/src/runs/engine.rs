//! The durable engine: runs advance one step task at a time, over a queue and a store.
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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::StoredWorkflow;
use super::ports::{RunStore, WorkflowStore};
use super::{Run, RunStatus, SkipReason, StepRun, StepStatus};
use crate::agents::{AgentInvoker, AgentStore, AgentTarget, InvokeError};
use crate::clock::Clock;
use crate::events::{Event, EventStore};
use crate::ports::{MessageQueue, StoreError};
use crate::queue::{Delivery, NewMessage, Priority};
use crate::validation::ValidationErrors;
use crate::workflow::{
    ErrorHandling, Format, Limits, Notice, ResolvedTarget, ServiceTarget, StepIndex, StepKind,
    ValidatedWorkflow, ValidationReport, Workflow, WorkflowError, load_off_runtime, parse_json, to_json,
    untargeted, untargeted_message, validate_off_runtime,
};

/// The queue step tasks travel on.
pub const STEP_QUEUE: &str = "steps";
/// Its dead-letter queue, where tasks no worker could process end up, with the reason.
pub const STEP_DEAD_LETTER_QUEUE: &str = "steps-dlq";
/// Receives after which a step task is dead-lettered (the template's `maxReceiveCount`).
/// A step's one task carries all its attempts (a retry makes the same message visible
/// again after the backoff), so this must exceed the most attempts a step may have: each
/// attempt is one receive, and may be received once more (a worker that died, a
/// duplicate). It was 5 once, and a step with `max_attempts` of 6 or more stalled.
pub const STEP_MAX_RECEIVES: u32 = 2 * crate::workflow::RetryPolicy::MAX_ATTEMPTS;
/// An attempt with no timeout of its own (nor a run deadline nearer) gets this long.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a received task stays hidden beyond its attempt's timeout, by default: a
/// worker that died is noticed this much after its attempt would have timed out.
pub const DEFAULT_VISIBILITY_MARGIN: Duration = Duration::from_secs(30);
/// SQS cannot hide a message longer than 12 hours; a deadline further away is re-armed.
const MAX_HIDE: Duration = Duration::from_secs(12 * 3600);
/// After a lost conditional write, look at the record again soon.
const CONFLICT_RETRY: Duration = Duration::from_millis(200);

/// A message on the step queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// Run (or re-check) one step.
    Step { run_id: String, step_id: String },
    /// Time the run out when its deadline passes.
    Deadline { run_id: String },
}

/// An attempt that failed, with a `loop`'s replies so far.
#[derive(Debug)]
struct Failed {
    error: InvokeError,
    loop_results: Option<Vec<Option<Value>>>,
}

impl From<InvokeError> for Failed {
    fn from(error: InvokeError) -> Self {
        Failed { error, loop_results: None }
    }
}

/// What one loop step asks of each item's call.
#[derive(Clone, Copy)]
struct LoopCall<'a> {
    target: &'a AgentTarget,
    over: &'a str,
    inputs: &'a Map<String, Value>,
    context: &'a Value,
    budget: Duration,
}

/// What to do with a delivery once it is processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: delete it.
    Done,
    /// Not yet: make it visible again after this long.
    RetryAfter(Duration),
    /// It can never be processed: move it to the dead-letter queue with this reason.
    DeadLetter(String),
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no workflow {id:?}{}", version.as_ref().map(|v| format!(" version {v:?}")).unwrap_or_default())]
    WorkflowNotFound { id: String, version: Option<String> },
    #[error("no run {0:?}")]
    RunNotFound(String),
    #[error("invalid run request: {0}")]
    Invalid(#[from] ValidationErrors),
    #[error("invalid workflow: {0}")]
    InvalidWorkflow(#[from] WorkflowError),
    #[error("the stored workflow no longer parses: {0}")]
    Corrupt(String),
    #[error("the run has already ended ({0})")]
    AlreadyEnded(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A parsed workflow with its graph in the shape the engine walks.
struct Compiled {
    workflow: Workflow,
    dependencies: Vec<Vec<StepIndex>>,
    dependents: Vec<Vec<StepIndex>>,
    /// Which step produces each data name.
    producers: HashMap<String, StepIndex>,
    /// Each step's position in the plan's order (by level, then file order).
    rank: Vec<u32>,
}

impl Compiled {
    fn new(validated: ValidatedWorkflow) -> Self {
        let mut rank = vec![0u32; validated.workflow().steps().len()];
        for (position, step) in validated.topological_order().iter().enumerate() {
            rank[step.index()] = position as u32;
        }
        let workflow = validated.into_workflow();
        let n = workflow.steps().len();
        let mut dependencies = vec![Vec::new(); n];
        let mut dependents = vec![Vec::new(); n];
        for edge in workflow.edges() {
            if !dependencies[edge.to.index()].contains(&edge.from) {
                dependencies[edge.to.index()].push(edge.from);
                dependents[edge.from.index()].push(edge.to);
            }
        }
        let mut producers = HashMap::new();
        for (i, step) in workflow.steps().iter().enumerate() {
            for output in &step.outputs {
                producers.insert(output.to_string(), StepIndex::new(i));
            }
        }
        Self { workflow, dependencies, dependents, producers, rank }
    }

    fn index(&self, step_id: &str) -> Option<StepIndex> {
        self.workflow.step_index(step_id)
    }

    fn id_of(&self, index: StepIndex) -> &str {
        self.workflow.step(index).id.as_str()
    }
}

/// The engine over its ports. `S` stores workflows, runs and agents; `Q` carries tasks.
pub struct Engine<S, Q, I> {
    store: S,
    queue: Q,
    invoker: I,
    clock: Arc<dyn Clock>,
    limits: Limits,
    visibility_margin: Duration,
    attempt_timeout: Duration,
    /// Stored versions are immutable, so a parsed one can be kept.
    compiled: Mutex<HashMap<(String, String), Arc<Compiled>>>,
}

impl<S, Q, I> Engine<S, Q, I>
where
    S: RunStore + WorkflowStore + AgentStore + EventStore,
    Q: MessageQueue,
    I: AgentInvoker,
{
    pub fn new(store: S, queue: Q, invoker: I, clock: Arc<dyn Clock>, limits: Limits) -> Self {
        let visibility_margin = DEFAULT_VISIBILITY_MARGIN;
        Self {
            store,
            queue,
            invoker,
            clock,
            limits,
            visibility_margin,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// How long after an attempt's timeout a dead worker's task comes back.
    pub fn with_visibility_margin(mut self, margin: Duration) -> Self {
        self.visibility_margin = margin;
        self
    }

    /// How long an attempt may take when neither its step nor its run says less.
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    pub fn queue(&self) -> &Q {
        &self.queue
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// What a workflow document may hold to be stored.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    async fn compiled(&self, id: &str, version: Option<&str>) -> Result<Arc<Compiled>, EngineError> {
        if let Some(version) = version
            && let Some(found) = self.cache().get(&(id.to_owned(), version.to_owned()))
        {
            return Ok(found.clone());
        }
        let stored = self.store.get_workflow(id, version).await?.ok_or_else(|| {
            EngineError::WorkflowNotFound { id: id.to_owned(), version: version.map(str::to_owned) }
        })?;
        // Checked against the limits when stored; as JSON it may be larger than its YAML
        // was (aliases expanded), and the limits may have been lowered since.
        let workflow = parse_json(&stored.definition.to_string(), &Limits::NONE)
            .map_err(|e| EngineError::Corrupt(e.to_string()))?;
        let validated = ValidatedWorkflow::new(workflow).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        let compiled = Arc::new(Compiled::new(validated));
        let mut cache = self.cache();
        if cache.len() >= 64 {
            cache.clear();
        }
        cache.insert((stored.id, stored.version), compiled.clone());
        Ok(compiled)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<Compiled>>> {
        self.compiled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The validation report of a document, with the agents it names checked against
    /// the registry (an `unknown_agents` notice).
    pub async fn validate_workflow(
        &self,
        text: String,
        format: Format,
    ) -> Result<ValidationReport, EngineError> {
        let (mut report, validated) = validate_off_runtime(text, format, self.limits).await;
        if let Some(validated) = validated {
            let workflow = validated.workflow();
            let missing = self.missing_agents(workflow).await?;
            if let Some(notice) = Notice::unknown_agents(workflow, &missing) {
                report.notice(notice);
            }
        }
        Ok(report)
    }

    /// The agents `workflow` names that are not registered, each once, in file order.
    async fn missing_agents<'w>(&self, workflow: &'w Workflow) -> Result<Vec<&'w str>, StoreError> {
        let mut checked = std::collections::HashSet::new();
        let mut missing = Vec::new();
        for reference in workflow.agent_references() {
            if checked.insert(reference.agent_id) && self.store.get_agent(reference.agent_id).await?.is_none()
            {
                missing.push(reference.agent_id);
            }
        }
        Ok(missing)
    }

    /// Checks a workflow document (JSON or YAML) and stores it as an immutable version,
    /// with the findings that do not stop it from being stored: service steps without a
    /// target, agents not registered (yet). Storing the same version with the same
    /// content again is harmless; with other content it is a `Conflict`.
    pub async fn put_workflow(
        &self,
        text: &str,
        format: Format,
    ) -> Result<(StoredWorkflow, Vec<Notice>), EngineError> {
        let validated = load_off_runtime(text.to_owned(), format, self.limits).await?;
        let workflow = validated.workflow();
        let missing = self.missing_agents(workflow).await?;
        let notices: Vec<Notice> = Notice::not_runnable(workflow)
            .into_iter()
            .chain(Notice::unknown_agents(workflow, &missing))
            .collect();
        // The document as JSON, keys sorted and YAML merge keys applied: YAML and JSON
        // spellings of one workflow store the same definition and hash, and the engine
        // reads it back as JSON.
        let definition = to_json(text, format).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        let canonical = definition.to_string();
        let stored = StoredWorkflow {
            id: workflow.id().to_owned(),
            version: workflow.version().to_owned(),
            content_hash: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(canonical.as_bytes())),
            definition,
            created_at: self.clock.now(),
        };
        self.store.put_workflow(&stored).await?;
        Ok((stored, notices))
    }

    /// Starts a run of a stored workflow (the latest version unless one is named): checks
    /// the inputs, records the run, and queues every step with no dependencies.
    pub async fn start_run(
        &self,
        workflow_id: &str,
        version: Option<&str>,
        inputs: Map<String, Value>,
    ) -> Result<Run, EngineError> {
        let compiled = self.compiled(workflow_id, version).await?;
        let workflow = &compiled.workflow;
        let mut errors = ValidationErrors::new();
        for name in workflow.required_inputs() {
            if !inputs.contains_key(&**name) {
                errors.add(format!("$.inputs.{name}"), "this workflow input is required");
            }
        }
        // What the workflow itself lacks, before anything runs; paths are in its document.
        for step in untargeted(workflow) {
            errors.add(step.path, untargeted_message(&step.step));
        }
        let missing = self.missing_agents(workflow).await?;
        for reference in workflow.agent_references() {
            if missing.contains(&reference.agent_id) {
                let step = workflow.step(reference.step).id.as_str();
                let message = format!(
                    "step {step:?} calls agent {:?}, which is not registered: register it (POST /v1/agents) \
                     or change the workflow",
                    reference.agent_id
                );
                errors.add(reference.path, message);
            }
        }
        errors.into_result(())?;
        let now = self.clock.now();
        let deadline = workflow.timeout().map(|t| now + SignedDuration::from_secs_f64(t.get()));
        let run = Run {
            id: uuid::Uuid::new_v4().to_string(),
            workflow_id: workflow.id().to_owned(),
            workflow_version: workflow.version().to_owned(),
            status: RunStatus::Running,
            inputs,
            created_at: now,
            deadline,
            finished_at: None,
            error: None,
            version: 1,
        };
        self.store.create_run(&run).await?;
        if deadline.is_some() {
            self.send(&Task::Deadline { run_id: run.id.clone() }, &format!("{}/deadline", run.id)).await?;
        }
        for (i, deps) in compiled.dependencies.iter().enumerate() {
            if deps.is_empty() {
                self.make_ready(&run.id, compiled.id_of(StepIndex::new(i))).await?;
            }
        }
        Ok(run)
    }

    /// A run and the records of its steps, in the plan's order (by level, then file order).
    pub async fn run_view(&self, run_id: &str) -> Result<(Run, Vec<StepRun>), EngineError> {
        let (run, mut steps) =
            self.store.get_run(run_id).await?.ok_or_else(|| EngineError::RunNotFound(run_id.into()))?;
        let compiled = self.compiled(&run.workflow_id, Some(&run.workflow_version)).await?;
        steps.sort_by_key(|s| compiled.index(&s.step_id).map_or(u32::MAX, |i| compiled.rank[i.index()]));
        Ok((run, steps))
    }

    /// Cancels a running run: nothing new starts; attempts in flight finish but do not
    /// make more steps ready.
    pub async fn cancel_run(&self, run_id: &str) -> Result<Run, EngineError> {
        loop {
            let (run, _) =
                self.store.get_run(run_id).await?.ok_or_else(|| EngineError::RunNotFound(run_id.into()))?;
            if run.status.is_terminal() {
                return Err(EngineError::AlreadyEnded(run.status.as_str()));
            }
            match self.end_run(&run, RunStatus::Cancelled, Some("cancelled through the API".into())).await {
                Ok(ended) => return Ok(ended),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Processes one delivered task; the caller applies the outcome to the queue
    /// (see [`Engine::settle`]).
    pub async fn process(&self, delivery: &Delivery) -> Outcome {
        let task: Task = match serde_json::from_str(&delivery.body) {
            Ok(task) => task,
            Err(e) => return Outcome::DeadLetter(format!("malformed_task: {e}")),
        };
        let result = match &task {
            Task::Step { run_id, step_id } => self.process_step(run_id, step_id, delivery).await,
            Task::Deadline { run_id } => self.process_deadline(run_id).await,
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

    /// Applies an outcome to the delivery on the step queue.
    pub async fn settle(&self, delivery: &Delivery, outcome: Outcome) -> Result<(), StoreError> {
        match outcome {
            Outcome::Done => self.queue.ack(STEP_QUEUE, &delivery.receipt).await,
            Outcome::RetryAfter(delay) => self.queue.retry_after(STEP_QUEUE, &delivery.receipt, delay).await,
            Outcome::DeadLetter(reason) => {
                tracing::error!(reason = %reason, message_id = %delivery.message_id, "task dead-lettered");
                self.queue.dead_letter(STEP_QUEUE, delivery, &reason).await
            }
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
        if run.status.is_terminal() {
            if !step.status.is_terminal() {
                self.finish_step(run_id, step, StepStatus::Cancelled, None, Some("the run has ended".into()))
                    .await?;
            }
            return Ok(Outcome::Done);
        }
        if let Some(deadline) = run.deadline
            && self.clock.now() >= deadline
        {
            self.end_run(&run, RunStatus::TimedOut, Some("the run's timeout passed".into())).await?;
            return Ok(Outcome::Done);
        }
        if step.status.is_terminal() {
            // A redelivery after the step ended, perhaps after a crash between recording
            // the result and making dependents ready: finish that work.
            self.advance(&compiled, &run, index).await?;
            return Ok(Outcome::Done);
        }

        let definition = compiled.workflow.step(index);
        let attempt = step.attempts + 1;
        let now = self.clock.now();
        let retrying = attempt <= definition.retry_policy.max_attempts;
        let lost = (step.status == StepStatus::Running).then(|| LostAttempt::new(&step, delivery, retrying));
        if !retrying {
            // Only a task whose attempts were all cut off (workers that died) gets here.
            let why = match &lost {
                Some(lost) => {
                    self.record_lost(run_id, lost).await;
                    lost.reason.clone()
                }
                None => format!("no attempts left after {}", step.attempts),
            };
            return self.fail_step(&compiled, &run, index, step, why).await;
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
        self.store.update_step(run_id, &started).await?;
        if let Some(lost) = &lost {
            self.record_lost(run_id, lost).await;
        }
        // Hide the task for as long as this attempt may take: a worker that dies
        // mid-attempt is noticed when it reappears (or when the local stack restarts).
        self.queue.keep_hidden(STEP_QUEUE, &delivery.receipt, budget + self.visibility_margin).await?;

        let result = self.execute(&compiled, &run, index, &records, &started, budget).await;
        if result.is_err()
            && let Some(deadline) = run.deadline
            && self.clock.now() >= deadline
        {
            // Cut off by the run's deadline: the run timed out; the step did not fail.
            self.finish_step(run_id, started, StepStatus::Cancelled, None, Some("the run timed out".into()))
                .await?;
            self.end_run(&run, RunStatus::TimedOut, Some("the run's timeout passed".into())).await?;
            return Ok(Outcome::Done);
        }
        match result {
            Ok(outputs) => {
                let branch = outputs.values().next().and_then(Value::as_bool);
                self.finish_step(run_id, started, StepStatus::Succeeded, Some(outputs), None).await?;
                tracing::info!(run_id, step_id, attempt, "step succeeded");
                if let (StepKind::Condition { when_true, when_false, .. }, Some(taken)) =
                    (&definition.kind, branch)
                {
                    let not_taken = if taken { when_false } else { when_true };
                    for skipped in not_taken {
                        let id = compiled.id_of(*skipped);
                        let record = StepRun::skipped(id, SkipReason::BranchNotTaken, self.clock.now());
                        match self.store.create_step(run_id, &record).await {
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
                        self.store.update_step(run_id, &waiting).await?;
                        Ok(Outcome::RetryAfter(Duration::from_secs_f64(delay)))
                    }
                    None => self.fail_step(&compiled, &run, index, started, error.to_string()).await,
                }
            }
            Err(Failed { error, .. }) => {
                self.fail_step(&compiled, &run, index, started, error.to_string()).await
            }
        }
    }

    /// Says in the log and the run's events why a step's attempt is lost.
    async fn record_lost(&self, run_id: &str, lost: &LostAttempt) {
        tracing::warn!(run_id, step_id = %lost.step_id, attempt = lost.attempt, cause = lost.cause, "{}", lost.reason);
        let data = json!({
            "step_id": lost.step_id, "attempt": lost.attempt, "cause": lost.cause,
            "retrying": lost.retrying, "reason": lost.reason,
        });
        let event = Event::new("run.attempt_lost", run_id, self.clock.now(), data);
        if let Err(e) = self.store.append_event(&event).await {
            tracing::warn!(error = %e, run_id, "could not record an event");
        }
    }

    /// Does a step's work; returns its outputs.
    async fn execute(
        &self,
        compiled: &Compiled,
        run: &Run,
        index: StepIndex,
        records: &HashMap<&str, &StepRun>,
        this: &StepRun,
        budget: Duration,
    ) -> Result<Map<String, Value>, Failed> {
        let attempt = this.attempts;
        let definition = compiled.workflow.step(index);
        let value_of = |name: &str| -> Value {
            match compiled.producers.get(name) {
                Some(producer) => records
                    .get(compiled.id_of(*producer))
                    .and_then(|r| r.outputs.as_ref())
                    .and_then(|o| o.get(name).cloned())
                    .unwrap_or(Value::Null),
                None => run.inputs.get(name).cloned().unwrap_or(Value::Null),
            }
        };
        let inputs: Map<String, Value> =
            definition.inputs.iter().map(|name| (name.to_string(), value_of(name))).collect();
        let context = json!({
            "run_id": run.id, "workflow_id": run.workflow_id, "step_id": definition.id.as_str(), "attempt": attempt,
        });
        let (target, parameters) = match &definition.kind {
            StepKind::Parallel { .. } | StepKind::Sequential { .. } => {
                // A group does no work: it passes on what its listed steps produced.
                let names = compiled.workflow.outputs_of(index);
                return Ok(names.into_iter().map(|n| (n.to_owned(), value_of(n))).collect());
            }
            StepKind::Agent { agent_id, parameters } => {
                (self.agent_target(agent_id).await?, parameters.clone())
            }
            StepKind::Service { target: Some(ResolvedTarget { target, .. }) } => {
                let target = match target {
                    ServiceTarget::Http { url } => AgentTarget::Http { url: url.to_string() },
                    ServiceTarget::Lambda { function } => AgentTarget::Lambda { function: function.clone() },
                    ServiceTarget::Agent { agent_id } => self.agent_target(agent_id).await?,
                };
                (target, Map::new())
            }
            // A run does not start without every target; a stored run cannot lose one.
            StepKind::Service { target: None } => {
                return Err(InvokeError::Rejected("the step has no target".into()).into());
            }
            StepKind::Loop { over, agent_id, max_concurrency } => {
                let target = self.agent_target(agent_id).await?;
                let items = match inputs.get(over) {
                    Some(Value::Array(items)) => items.clone(),
                    other => {
                        return Err(InvokeError::Rejected(format!(
                            "loop input {over:?} is not a list: {other:?}"
                        ))
                        .into());
                    }
                };
                let call = LoopCall { target: &target, over, inputs: &inputs, context: &context, budget };
                let results = self.run_loop(call, items, *max_concurrency, this.loop_results.clone()).await?;
                let output =
                    definition.outputs.first().map_or_else(|| "results".to_owned(), |o| o.to_string());
                return Ok(Map::from_iter([(output, Value::Array(results))]));
            }
            StepKind::Condition { expression, .. } => {
                // Off the async runtime, within the attempt's budget like any other work.
                let (expression, one) = (expression.clone(), inputs.clone());
                let result = crate::bounded::off_runtime(budget, move || {
                    crate::workflow::condition::evaluate(&expression, &one)
                })
                .await
                .map_err(|unfinished| {
                    InvokeError::Rejected(format!("the condition's evaluation: {unfinished}"))
                })?
                .map_err(InvokeError::Rejected)?;
                let output =
                    definition.outputs.first().map_or_else(|| "result".to_owned(), |o| o.to_string());
                return Ok(Map::from_iter([(output, Value::Bool(result))]));
            }
        };
        let payload = json!({"inputs": inputs, "parameters": parameters, "context": context});
        let reply = self.invoker.invoke(&target, &payload, budget).await?;
        let mut outputs = Map::new();
        for name in &definition.outputs {
            let value = reply.get(&**name).cloned().ok_or_else(|| {
                InvokeError::Rejected(format!(
                    "the reply has no field {name:?}, a declared output of the step"
                ))
            })?;
            outputs.insert(name.to_string(), value);
        }
        Ok(outputs)
    }

    /// Calls the agent for each item not yet done (`done`: the replies of earlier
    /// attempts, index by index), `max_concurrency` at a time. Every item is tried once
    /// per attempt; on any failure the replies so far travel with the error, so that the
    /// next attempt calls only the items that failed.
    async fn run_loop(
        &self,
        call: LoopCall<'_>,
        items: Vec<Value>,
        max_concurrency: u32,
        done: Option<Vec<Option<Value>>>,
    ) -> Result<Vec<Value>, Failed> {
        let mut results = match done {
            Some(done) if done.len() == items.len() => done,
            _ => vec![None; items.len()],
        };
        let todo: Vec<usize> = (0..items.len()).filter(|&i| results[i].is_none()).collect();
        let mut first_error: Option<InvokeError> = None;
        for chunk in todo.chunks(usize::try_from(max_concurrency.max(1)).unwrap_or(1)) {
            let calls = chunk.iter().map(|&i| {
                let mut one = call.inputs.clone();
                one.insert(call.over.to_owned(), items[i].clone());
                let payload = json!({"inputs": one, "parameters": {}, "context": call.context});
                async move { (i, self.invoker.invoke(call.target, &payload, call.budget).await) }
            });
            for (i, reply) in futures::future::join_all(calls).await {
                match reply {
                    Ok(reply) => results[i] = Some(Value::Object(reply)),
                    // A refusal ends the step whatever else happened: report it first.
                    Err(error) if !error.is_retryable() => {
                        return Err(Failed { error, loop_results: Some(results) });
                    }
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
        }
        match first_error {
            Some(error) => Err(Failed { error, loop_results: Some(results) }),
            None => Ok(results.into_iter().flatten().collect()),
        }
    }

    async fn agent_target(&self, agent_id: &str) -> Result<AgentTarget, InvokeError> {
        match self.store.get_agent(agent_id).await {
            Ok(Some(agent)) => Ok(agent.target),
            Ok(None) => Err(InvokeError::Rejected(format!("no agent {agent_id:?} is registered"))),
            Err(e) => Err(InvokeError::Unavailable(format!("the agent registry: {e}"))),
        }
    }

    async fn fail_step(
        &self,
        compiled: &Compiled,
        run: &Run,
        index: StepIndex,
        step: StepRun,
        error: String,
    ) -> Result<Outcome, EngineError> {
        let step_id = step.step_id.clone();
        tracing::warn!(run_id = %run.id, step_id = %step_id, error = %error, "step failed");
        self.finish_step(&run.id, step, StepStatus::Failed, None, Some(error.clone())).await?;
        match compiled.workflow.error_handling() {
            ErrorHandling::Stop => {
                self.end_run(run, RunStatus::Failed, Some(format!("step {step_id:?} failed: {error}")))
                    .await?;
            }
            ErrorHandling::Continue => self.advance(compiled, run, index).await?,
        }
        Ok(Outcome::Done)
    }

    async fn finish_step(
        &self,
        run_id: &str,
        step: StepRun,
        status: StepStatus,
        outputs: Option<Map<String, Value>>,
        error: Option<String>,
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
        self.store.update_step(run_id, &finished).await?;
        Ok(finished)
    }

    /// After step `index` ended: makes each dependent whose dependencies have all ended
    /// ready (or skipped, if one of them did not succeed), then ends the run if nothing
    /// is left. Safe to repeat.
    async fn advance(&self, compiled: &Compiled, run: &Run, index: StepIndex) -> Result<(), EngineError> {
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
                        match self
                            .store
                            .create_step(&run.id, &StepRun::skipped(id, reason, self.clock.now()))
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

    /// Creates a waiting step's record as queued and sends its task. Only the caller whose
    /// create wins sends; a task lost between the two is re-sent by whoever looks next,
    /// and the queue's deduplication (and the step's version check) keeps it single.
    async fn make_ready(&self, run_id: &str, step_id: &str) -> Result<(), EngineError> {
        match self.store.create_step(run_id, &StepRun::queued(step_id, self.clock.now())).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                let existing = self.store.get_step(run_id, step_id).await?;
                if existing.is_none_or(|s| s.status != StepStatus::Queued) {
                    return Ok(());
                }
            }
            Err(e) => return Err(e.into()),
        }
        let task = Task::Step { run_id: run_id.to_owned(), step_id: step_id.to_owned() };
        self.send(&task, &format!("{run_id}/{step_id}")).await?;
        Ok(())
    }

    async fn send(&self, task: &Task, key: &str) -> Result<(), StoreError> {
        let body = serde_json::to_string(task).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let message = NewMessage {
            group: key.to_owned(),
            dedup_id: key.to_owned(),
            body,
            priority: Priority::DEFAULT,
            attributes: Default::default(),
        };
        self.queue.send(STEP_QUEUE, message).await.map(|_| ())
    }

    async fn end_run(&self, run: &Run, status: RunStatus, error: Option<String>) -> Result<Run, StoreError> {
        let ended = Run {
            status: run.status.check(status).map_err(|e| StoreError::Conflict(e.to_string()))?,
            finished_at: Some(self.clock.now()),
            error,
            version: run.version + 1,
            ..run.clone()
        };
        self.store.update_run(&ended).await?;
        tracing::info!(run_id = %run.id, status = status.as_str(), "run ended");
        Ok(ended)
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
