//! [`Engine`]: what the API asks of runs. It checks a workflow document (the registry
//! included) and stores it as an immutable version, starts a run (inputs and agents
//! checked, the run recorded, every step without dependencies queued), shows a run and
//! cancels one. The engine and what both sides share are here; what a step task asks of
//! it is the worker's (`worker.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ports::{DefinitionKind, EngineStore};
use super::{Run, RunStatus, StepRun, StepStatus, StoredDefinition};
use crate::agents::AgentInvoker;
use crate::clock::Clock;
use crate::ports::{MessageQueue, StoreError};
use crate::queue::{NewMessage, Priority};
use crate::validation::ValidationErrors;
use crate::workflow::{
    Limits, Loaded, Notice, StepIndex, ValidatedWorkflow, ValidationReport, Workflow, WorkflowError,
    load_definition, untargeted, untargeted_message,
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
/// How long a received task stays hidden beyond its attempt's timeout, by default: a
/// worker that died is noticed this much after its attempt would have timed out.
pub const DEFAULT_VISIBILITY_MARGIN: Duration = Duration::from_secs(30);

/// A message on the step queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// Run (or re-check) one step.
    Step { run_id: String, step_id: String },
    /// Time the run out when its deadline passes.
    Deadline { run_id: String },
    /// Call (or re-check) one assignment of a squad task.
    Assignment { task_id: String, assignment_id: String },
    /// Look after a squad task every [`super::task_worker::WATCH_EVERY`]: time it out at
    /// its deadline, cancel it when its workflow run has ended, re-send what was lost, and
    /// once it ended make sure its workflow step heard. A watch received many times sends
    /// the next `generation` and ends, so that it never reaches the queue's receive limit.
    TaskWatch {
        task_id: String,
        #[serde(default, skip_serializing_if = "is_zero")]
        generation: u32,
    },
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no {} {id:?}{}", kind.as_str(), version.as_ref().map(|v| format!(" version {v:?}")).unwrap_or_default())]
    NotFound { kind: DefinitionKind, id: String, version: Option<String> },
    #[error("no run {0:?}")]
    RunNotFound(String),
    #[error("no squad task {0:?}")]
    TaskNotFound(String),
    #[error("invalid run request: {0}")]
    Invalid(#[from] ValidationErrors),
    #[error("invalid workflow: {0}")]
    InvalidWorkflow(#[from] WorkflowError),
    /// A stored record (a workflow or squad version, a run, a task) that does not read
    /// as it must, or records that contradict each other: a bug or a damaged store.
    #[error("a stored record is not as it must be: {0}")]
    Corrupt(String),
    /// `what` ("run", "task") ended before the request.
    #[error("the {what} has already ended ({status})")]
    AlreadyEnded { what: &'static str, status: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A parsed workflow with its graph in the shape the engine walks.
pub(super) struct Compiled {
    pub(super) workflow: Workflow,
    pub(super) dependencies: Vec<Vec<StepIndex>>,
    pub(super) dependents: Vec<Vec<StepIndex>>,
    /// Which step produces each data name.
    pub(super) producers: HashMap<String, StepIndex>,
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

    pub(super) fn index(&self, step_id: &str) -> Option<StepIndex> {
        self.workflow.step_index(step_id)
    }

    pub(super) fn id_of(&self, index: StepIndex) -> &str {
        self.workflow.step(index).id.as_str()
    }
}

/// Parsed copies of what never changes once stored (definition versions, task inputs),
/// at most [`Kept::MAX`] of a kind: a full one is emptied and fills again.
pub(super) struct Kept<K, V>(Mutex<HashMap<K, Arc<V>>>);

impl<K, V> Default for Kept<K, V> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<K: std::hash::Hash + Eq, V> Kept<K, V> {
    const MAX: usize = 64;

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<V>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn get(&self, key: &K) -> Option<Arc<V>> {
        self.map().get(key).cloned()
    }

    pub(super) fn keep(&self, key: K, value: V) -> Arc<V> {
        let value = Arc::new(value);
        let mut map = self.map();
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(key, value.clone());
        value
    }
}

/// The engine over its ports. `S` stores workflows, runs and agents; `Q` carries tasks.
pub struct Engine<S, Q, I> {
    pub(super) store: S,
    pub(super) queue: Q,
    pub(super) invoker: I,
    pub(super) clock: Arc<dyn Clock>,
    limits: Limits,
    pub(super) visibility_margin: Duration,
    pub(super) attempt_timeout: Duration,
    /// Stored versions are immutable, so a parsed one can be kept.
    compiled: Kept<(String, String), Compiled>,
    /// The same for squads.
    pub(super) squads: Kept<(String, String), crate::squads::Squad>,
    /// And for the inputs of squad tasks, by task id.
    pub(super) task_inputs: Kept<String, Map<String, Value>>,
    /// Where each squad task's figures go when it ends.
    pub(super) metrics: Option<Arc<dyn crate::ports::Metrics>>,
}

impl<S: EngineStore, Q: MessageQueue, I: AgentInvoker> Engine<S, Q, I> {
    pub fn new(store: S, queue: Q, invoker: I, clock: Arc<dyn Clock>, limits: Limits) -> Self {
        let visibility_margin = DEFAULT_VISIBILITY_MARGIN;
        Self {
            store,
            queue,
            invoker,
            clock,
            limits,
            visibility_margin,
            attempt_timeout: crate::agents::DEFAULT_ATTEMPT_TIMEOUT,
            compiled: Kept::default(),
            squads: Kept::default(),
            task_inputs: Kept::default(),
            metrics: None,
        }
    }

    /// How long after an attempt's timeout a dead worker's task comes back.
    pub fn with_visibility_margin(mut self, margin: Duration) -> Self {
        self.visibility_margin = margin;
        self
    }

    /// Records each squad task's figures when it ends (latency, member failure rate,
    /// replacements, agreement), per squad.
    pub fn with_metrics(mut self, metrics: Arc<dyn crate::ports::Metrics>) -> Self {
        self.metrics = Some(metrics);
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

    pub(super) async fn compiled(
        &self,
        id: &str,
        version: Option<&str>,
    ) -> Result<Arc<Compiled>, EngineError> {
        if let Some(version) = version
            && let Some(found) = self.compiled.get(&(id.to_owned(), version.to_owned()))
        {
            return Ok(found);
        }
        let stored =
            self.store.get_definition(DefinitionKind::Workflow, id, version).await?.ok_or_else(|| {
                EngineError::NotFound {
                    kind: DefinitionKind::Workflow,
                    id: id.to_owned(),
                    version: version.map(str::to_owned),
                }
            })?;
        let validated =
            load_definition(&stored.definition).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        Ok(self.compiled.keep((stored.id, stored.version), Compiled::new(validated)))
    }

    /// A validation report ([`crate::workflow::validate_off_runtime`]) with the agents a
    /// valid workflow names checked against the registry (an `unknown_agents` notice).
    pub async fn check_agents(
        &self,
        mut report: ValidationReport,
        validated: Option<&ValidatedWorkflow>,
    ) -> Result<ValidationReport, EngineError> {
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

    /// Stores a checked workflow document ([`crate::workflow::load`]) as an immutable
    /// version, its canonical form as the definition, with the findings that do not stop
    /// it from being stored: service steps without a target, agents not registered (yet).
    /// Storing the same version with the same content again is harmless; with other
    /// content it is a `Conflict`.
    pub async fn put_workflow(&self, loaded: Loaded) -> Result<(StoredDefinition, Vec<Notice>), EngineError> {
        let workflow = loaded.workflow();
        let missing = self.missing_agents(workflow).await?;
        let notices: Vec<Notice> = Notice::not_runnable(workflow)
            .into_iter()
            .chain(Notice::unknown_agents(workflow, &missing))
            .collect();
        let (id, version) = (workflow.id().to_owned(), workflow.version().to_owned());
        let stored = StoredDefinition::new(id, version, loaded.into_definition(), self.clock.now());
        self.store.put_definition(DefinitionKind::Workflow, &stored).await?;
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
        for (i, step) in workflow.steps().iter().enumerate() {
            if let crate::workflow::StepKind::Squad { squad, version } = &step.kind
                && self
                    .store
                    .get_definition(DefinitionKind::Squad, squad, version.as_deref())
                    .await?
                    .is_none()
            {
                let which = version.as_ref().map(|v| format!(" version {v:?}")).unwrap_or_default();
                let message = format!(
                    "step {:?} gives squad {squad:?}{which} a task, and it is not stored: store it (POST /v1/squads) \
                     or change the workflow",
                    step.id.as_str()
                );
                errors.add(format!("$.steps[{i}].parameters.squad"), message);
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
        self.store.create_run(&run, run.event(now).as_slice()).await?;
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
                return Err(EngineError::AlreadyEnded { what: "run", status: run.status.as_str() });
            }
            match self.end_run(&run, RunStatus::Cancelled, Some("cancelled through the API".into())).await {
                Ok(ended) => return Ok(ended),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Creates a waiting step's record as queued and sends its task. Only the caller whose
    /// create wins sends; a task lost between the two is re-sent by whoever looks next,
    /// and the queue's deduplication (and the step's version check) keeps it single.
    pub(super) async fn make_ready(&self, run_id: &str, step_id: &str) -> Result<(), EngineError> {
        match self.store.create_step(run_id, &StepRun::queued(step_id, self.clock.now()), &[]).await {
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

    pub(super) async fn send(&self, task: &Task, key: &str) -> Result<(), StoreError> {
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

    pub(super) async fn end_run(
        &self,
        run: &Run,
        status: RunStatus,
        error: Option<String>,
    ) -> Result<Run, StoreError> {
        let ended = Run {
            status: run.status.check(status).map_err(|e| StoreError::Conflict(e.to_string()))?,
            finished_at: Some(self.clock.now()),
            error,
            version: run.version + 1,
            ..run.clone()
        };
        self.store.update_run(&ended, ended.event(self.clock.now()).as_slice()).await?;
        tracing::info!(run_id = %run.id, status = status.as_str(), "run ended");
        // Boxed: the squad engine's futures are large, and this one is awaited deep in others.
        Box::pin(self.cancel_squad_steps(&ended)).await;
        Ok(ended)
    }
}
