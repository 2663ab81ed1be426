//! The workflow model: what a workflow file says, every reference resolved to a step.
//!
//! Only the parser builds a [`Workflow`], so holding one means the file was well formed:
//! every referenced step exists, every field had a valid value. It may still have cycles;
//! [`super::ValidatedWorkflow`] is the acyclic one.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

/// The position of a step in [`Workflow::steps`], which is its position in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct StepIndex(u32);

impl StepIndex {
    /// The parser caps the step count far below `u32::MAX`, so this cannot truncate there.
    pub(crate) fn new(index: usize) -> Self {
        debug_assert!(u32::try_from(index).is_ok());
        Self(index as u32)
    }

    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A step's id: 1 to [`StepId::MAX_CHARS`] characters, not blank, no control characters.
///
/// Deliberately loose (the old system took any string, and existing files must load); the
/// rules only keep ids printable in cycle reports and usable as keys. Shared, not copied:
/// plans and the step index repeat every id, and a clone is a reference count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepId(Arc<str>);

impl Serialize for StepId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl StepId {
    pub const MAX_CHARS: usize = 256;

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.trim().is_empty() {
            return Err("must not be empty or blank");
        }
        if crate::validation::unsafe_char(raw).is_some() {
            return Err(crate::validation::UNSAFE_TEXT);
        }
        // Count characters only when the bytes could exceed the limit: ids are usually short.
        if raw.len() > Self::MAX_CHARS && raw.chars().count() > Self::MAX_CHARS {
            return Err("must be at most 256 characters");
        }
        Ok(Self(Arc::from(raw)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Names a step whose id could not be read by its path (`$.steps[3]`), so that a
    /// report of errors can still place it in a cycle. Never stored, never run.
    pub(crate) fn of_unreadable(path: &str) -> Self {
        Self(Arc::from(path))
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lets maps keyed by step id be searched with a `&str`.
impl std::borrow::Borrow<str> for StepId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for StepId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A positive duration in seconds, at most [`Seconds::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Seconds(f64);

impl Seconds {
    /// 365 days: the longest a Step Functions standard workflow may run, so no longer
    /// timeout could be honoured by any engine we would run on.
    pub const MAX: f64 = 365.0 * 24.0 * 3600.0;

    pub fn new(seconds: f64) -> Result<Self, &'static str> {
        if !(seconds.is_finite() && seconds > 0.0) {
            return Err("must be a positive number of seconds");
        }
        if seconds > Self::MAX {
            return Err("must be at most 31536000 seconds (365 days)");
        }
        Ok(Self(seconds))
    }

    pub fn get(self) -> f64 {
        self.0
    }

    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.0)
    }
}

/// What a run does when a step fails for good (after its retries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorHandling {
    /// No further step starts; the run fails once the steps already running finish.
    #[default]
    Stop,
    /// Steps that do not depend on the failed one go on; its dependents are skipped. The
    /// run still ends failed.
    Continue,
}

impl ErrorHandling {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorHandling::Stop => "stop",
            ErrorHandling::Continue => "continue",
        }
    }
}

/// How often and how patiently a failed step is tried again.
///
/// Attempt `n` (counting from 1) waits `min(initial_delay × backoff_factor^(n-2),
/// max_delay)` before it starts; the first attempt does not wait.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included: 1 (the default) means no retry. 1 to 100.
    pub max_attempts: u32,
    /// How much each delay grows over the previous one: at least 1. Default 2.
    pub backoff_factor: f64,
    /// The delay before the second attempt, 0 or more. Default 1.
    pub initial_delay_seconds: f64,
    /// No delay is longer than this; at least `initial_delay_seconds`. Default 300.
    pub max_delay_seconds: f64,
}

impl RetryPolicy {
    pub const MAX_ATTEMPTS: u32 = 100;

    /// The delay before attempt `attempt` (1-based); `None` past `max_attempts`.
    pub fn delay_before(&self, attempt: u32) -> Option<f64> {
        match attempt {
            0 => None,
            _ if attempt > self.max_attempts => None,
            1 => Some(0.0),
            _ => {
                // powi saturates to infinity rather than overflowing, and min() caps it.
                let exponent = i32::try_from(attempt - 2).unwrap_or(i32::MAX);
                let delay = self.initial_delay_seconds * self.backoff_factor.powi(exponent);
                Some(delay.min(self.max_delay_seconds))
            }
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 1, backoff_factor: 2.0, initial_delay_seconds: 1.0, max_delay_seconds: 300.0 }
    }
}

/// Where a `service` step sends its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceTarget {
    /// A JSON POST of the step's inputs to an `http` or `https` URL.
    Http { url: url::Url },
    /// A synchronous invocation of an AWS Lambda function, by name or ARN.
    Lambda { function: String },
    /// The registered agent `agent_id`, invoked as an `agent` step with no parameters.
    Agent { agent_id: String },
}

/// Where in the document a service step's target was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSource {
    /// The step's own `parameters.target`.
    Step,
    /// The workflow's `defaults.target`, for every service step without its own.
    Default,
    /// The workflow's `defaults.targets.<step id>`.
    DefaultForStep,
}

/// A service step's target and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTarget {
    pub target: ServiceTarget,
    pub source: TargetSource,
}

/// The six step types, without their parameters: for messages and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepType {
    Agent,
    Service,
    Condition,
    Parallel,
    Sequential,
    Loop,
    Squad,
}

impl StepType {
    pub const ALL: [StepType; 7] = [
        StepType::Agent,
        StepType::Service,
        StepType::Condition,
        StepType::Parallel,
        StepType::Sequential,
        StepType::Loop,
        StepType::Squad,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepType::Agent => "agent",
            StepType::Service => "service",
            StepType::Condition => "condition",
            StepType::Parallel => "parallel",
            StepType::Sequential => "sequential",
            StepType::Loop => "loop",
            StepType::Squad => "squad",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Group steps only order other steps; they do no work of their own.
    pub fn is_group(self) -> bool {
        matches!(self, StepType::Parallel | StepType::Sequential)
    }
}

impl fmt::Display for StepType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a step does, with its type's parameters, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// Invokes the registered agent with the step's inputs and `parameters`; the reply's
    /// fields named in the step's `outputs` become its outputs.
    Agent { agent_id: String, parameters: Map<String, Value> },
    /// Sends the step's inputs to `target`; the response's fields named in `outputs`
    /// become its outputs. `None`: the file names no target for it (the system this
    /// replaces had none), so the workflow is valid but cannot run until one is given.
    Service { target: Option<ResolvedTarget> },
    /// Evaluates `expression` over the step's inputs. Of its direct dependents, those in
    /// the branch not taken are skipped. Its single output, if declared, is the result.
    Condition { expression: String, when_true: Vec<StepIndex>, when_false: Vec<StepIndex> },
    /// Invokes `agent_id` once per item of the list input `over` (at most
    /// `max_concurrency` at a time), each invocation seeing one item under that name;
    /// the replies, in item order, become the step's single output.
    Loop { over: String, agent_id: String, max_concurrency: u32 },
    /// Completes once every listed step has: a fan-in barrier.
    Parallel { steps: Vec<StepIndex> },
    /// Runs the listed steps one after another, in order, and completes after the last.
    Sequential { steps: Vec<StepIndex> },
    /// Gives the stored squad `squad` (its latest version, or `version`) a task whose
    /// input is the step's inputs; the aggregated result becomes its outputs.
    Squad { squad: String, version: Option<String> },
}

impl StepKind {
    pub fn step_type(&self) -> StepType {
        match self {
            StepKind::Agent { .. } => StepType::Agent,
            StepKind::Service { .. } => StepType::Service,
            StepKind::Condition { .. } => StepType::Condition,
            StepKind::Loop { .. } => StepType::Loop,
            StepKind::Parallel { .. } => StepType::Parallel,
            StepKind::Sequential { .. } => StepType::Sequential,
            StepKind::Squad { .. } => StepType::Squad,
        }
    }

    /// The steps a `parallel` or `sequential` step groups; empty for other types.
    pub fn grouped_steps(&self) -> &[StepIndex] {
        match self {
            StepKind::Parallel { steps } | StepKind::Sequential { steps } => steps,
            _ => &[],
        }
    }
}

/// One step, as declared.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: StepId,
    /// For people; not interpreted.
    pub name: String,
    pub kind: StepKind,
    /// Data names the step reads. Each is another step's output (a data edge) or, if no
    /// step produces it, a workflow input.
    pub inputs: Vec<String>,
    /// Data names the step produces; unique across the workflow. Empty for group steps,
    /// whose outputs are those of the steps they list (see [`Workflow::outputs_of`]).
    pub outputs: Vec<String>,
    /// The explicit dependencies from the file's `dependencies` map, in the listed order.
    pub dependencies: Vec<StepIndex>,
    /// Longest one attempt may run (an agent call, a service request, one item of a
    /// loop, a condition's evaluation); absent: only the workflow's timeout applies.
    pub timeout: Option<Seconds>,
    /// How each attempt is retried (for a loop, each item's invocation); by default not.
    pub retry_policy: RetryPolicy,
    /// The author's estimate of the step's duration, for the planner only.
    pub estimate: Option<Seconds>,
}

/// Why one step must wait for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EdgeReason {
    /// Listed in the file's `dependencies`.
    Dependency,
    /// `to` reads `to.inputs[input]`, which `from` produces.
    Data { input: u32 },
    /// Implied by the `parallel` or `sequential` step `group`.
    Group { group: StepIndex },
}

/// `to` cannot start before `from` completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Edge {
    pub from: StepIndex,
    pub to: StepIndex,
    pub reason: EdgeReason,
}

/// One place a workflow names an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentReference<'w> {
    pub agent_id: &'w str,
    pub step: StepIndex,
    /// The JSON path of the agent id in the document.
    pub path: String,
}

/// A parsed workflow. Built only by [`super::parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) description: Option<String>,
    pub(crate) created_at: Option<String>,
    pub(crate) timeout: Option<Seconds>,
    pub(crate) error_handling: ErrorHandling,
    pub(crate) tags: Vec<String>,
    pub(crate) metadata: Map<String, Value>,
    pub(crate) steps: Vec<Step>,
    pub(crate) index: HashMap<StepId, StepIndex>,
    pub(crate) edges: Vec<Edge>,
    pub(crate) required_inputs: Vec<String>,
}

impl Workflow {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The author's label for this revision; not interpreted. Default `1.0.0`.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// When the author says the workflow was written (the old system stamped it); kept
    /// as given, not interpreted.
    pub fn created_at(&self) -> Option<&str> {
        self.created_at.as_deref()
    }

    /// Longest a whole run may take.
    pub fn timeout(&self) -> Option<Seconds> {
        self.timeout
    }

    pub fn error_handling(&self) -> ErrorHandling {
        self.error_handling
    }

    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// Free-form, kept and returned, never interpreted.
    pub fn metadata(&self) -> &Map<String, Value> {
        &self.metadata
    }

    /// In file order; a [`StepIndex`] is a position in this slice.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn step(&self, index: StepIndex) -> &Step {
        &self.steps[index.index()]
    }

    pub fn step_index(&self, id: &str) -> Option<StepIndex> {
        self.index.get(id).copied()
    }

    /// Every ordering the file implies, one per reason (a pair may appear more than once,
    /// say as a dependency and as a data edge): explicit dependencies, then data edges,
    /// then group edges, each in file order.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// Data names some step reads and no step produces: they must be supplied when a run
    /// starts. In order of first use, each once.
    pub fn required_inputs(&self) -> &[String] {
        &self.required_inputs
    }

    /// Service steps with no target: a run cannot start until each has one. In file order.
    pub fn untargeted_steps(&self) -> impl Iterator<Item = StepIndex> + '_ {
        self.steps
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.kind, StepKind::Service { target: None }))
            .map(|(i, _)| StepIndex::new(i))
    }

    /// Every place the workflow names an agent (agent steps, loop steps, service steps
    /// whose target is an agent), in file order.
    pub fn agent_references(&self) -> Vec<AgentReference<'_>> {
        let mut out = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let (agent_id, path) = match &step.kind {
                StepKind::Agent { agent_id, .. } => (agent_id, format!("$.steps[{i}].agent_id")),
                StepKind::Loop { agent_id, .. } => (agent_id, format!("$.steps[{i}].parameters.agent_id")),
                StepKind::Service {
                    target: Some(ResolvedTarget { target: ServiceTarget::Agent { agent_id }, source }),
                } => {
                    let target = match source {
                        TargetSource::Step => format!("$.steps[{i}].parameters.target"),
                        TargetSource::Default => "$.defaults.target".to_owned(),
                        TargetSource::DefaultForStep => super::path::default_target_path(step.id.as_str()),
                    };
                    (agent_id, format!("{target}.agent_id"))
                }
                _ => continue,
            };
            out.push(AgentReference { agent_id, step: StepIndex::new(i), path });
        }
        out
    }

    /// What a step makes available to others: its own `outputs`, or for a group step the
    /// union of its listed steps' outputs (recursively for nested groups), in listed order.
    pub fn outputs_of(&self, step: StepIndex) -> Vec<&str> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![step];
        // Nested groups could list each other in a cycle; `seen` stops that.
        while let Some(current) = stack.pop() {
            if !seen.insert(current) {
                continue;
            }
            let s = self.step(current);
            out.extend(s.outputs.iter().map(String::as_str));
            stack.extend(s.kind.grouped_steps().iter().rev());
        }
        out
    }
}
