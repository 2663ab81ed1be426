//! What runs need from the world: stored workflow and squad versions, and runs with their
//! steps.

use std::future::Future;

use serde_json::{Map, Value};

use super::records::{Run, RunFilter, StepRun, StoredDefinition};
use super::task_records::{Assignment, SquadTask, TaskFilter};
use crate::agents::AgentStore;
use crate::events::{Event, EventStore};
use crate::messaging::AgentLoadStore;
use crate::ports::StoreError;

/// What a stored definition defines: versions of each kind are kept apart (a squad and a
/// workflow may share an id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DefinitionKind {
    Workflow,
    Squad,
}

impl DefinitionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DefinitionKind::Workflow => "workflow",
            DefinitionKind::Squad => "squad",
        }
    }
}

/// Immutable, versioned definitions: workflows and squads.
pub trait DefinitionStore: Send + Sync + 'static {
    /// Stores a version. Storing the same id and version again is harmless when the
    /// content is the same, and a `Conflict` when it differs: versions are immutable.
    fn put_definition(
        &self,
        kind: DefinitionKind,
        definition: &StoredDefinition,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One version, or with `version: None` the most recently stored one.
    fn get_definition(
        &self,
        kind: DefinitionKind,
        id: &str,
        version: Option<&str>,
    ) -> impl Future<Output = Result<Option<StoredDefinition>, StoreError>> + Send;
}

/// Runs and their steps. Every update names the version it read and fails with
/// `Conflict` if the record changed since: that is what keeps concurrent workers exact.
/// Every write takes the events that report it, appended with it all or nothing: an
/// event is never missing for a change that happened, nor present for one that did not.
pub trait RunStore: Send + Sync + 'static {
    /// `Conflict` if the id is taken.
    fn create_run(&self, run: &Run, events: &[Event]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The run and every step that has a record, by step id.
    fn get_run(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<(Run, Vec<StepRun>)>, StoreError>> + Send;

    /// Newest first.
    fn list_runs(&self, filter: &RunFilter) -> impl Future<Output = Result<Vec<Run>, StoreError>> + Send;

    /// Writes `run` (whose `version` is already bumped) if the stored one is at
    /// `run.version - 1`.
    fn update_run(&self, run: &Run, events: &[Event]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Creates a step's record; `Conflict` if it has one: exactly one caller makes a
    /// waiting step ready.
    fn create_step(
        &self,
        run_id: &str,
        step: &StepRun,
        events: &[Event],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_step(
        &self,
        run_id: &str,
        step_id: &str,
    ) -> impl Future<Output = Result<Option<StepRun>, StoreError>> + Send;

    /// Writes `step` (version already bumped) if the stored one is at `step.version - 1`.
    fn update_step(
        &self,
        run_id: &str,
        step: &StepRun,
        events: &[Event],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Squad tasks and their assignments, written as runs and steps are: every update names
/// the version it read and fails with `Conflict` if the record changed since.
pub trait TaskStore: Send + Sync + 'static {
    /// Records a new task and what it was started with, together; `Conflict` if the id is
    /// taken. The input is kept apart from the task's record: it never changes, and the
    /// record is read and written at every step of the task.
    fn create_task(
        &self,
        task: &SquadTask,
        input: &Map<String, Value>,
        events: &[Event],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_task(&self, id: &str) -> impl Future<Output = Result<Option<SquadTask>, StoreError>> + Send;

    /// What the task was started with (`None` if there is no such task).
    fn get_task_input(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Map<String, Value>>, StoreError>> + Send;

    /// Newest first.
    fn list_tasks(
        &self,
        filter: &TaskFilter,
    ) -> impl Future<Output = Result<Vec<SquadTask>, StoreError>> + Send;

    /// Writes `task` (version already bumped) if the stored one is at `task.version - 1`,
    /// with the events that report the change (all or nothing, as for runs).
    fn update_task(
        &self,
        task: &SquadTask,
        events: &[Event],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// `Conflict` if the task has an assignment of this id: exactly one caller makes it.
    fn create_assignment(
        &self,
        task_id: &str,
        assignment: &Assignment,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_assignment(
        &self,
        task_id: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<Assignment>, StoreError>> + Send;

    /// Every assignment of the task, by id.
    fn list_assignments(
        &self,
        task_id: &str,
    ) -> impl Future<Output = Result<Vec<Assignment>, StoreError>> + Send;

    /// Writes `assignment` (version already bumped) if the stored one is at `version - 1`.
    fn update_assignment(
        &self,
        task_id: &str,
        assignment: &Assignment,
        events: &[Event],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Every port the engine uses: the workflows and squads, the runs and squad tasks, the
/// registry its steps call, the agents' load and breakers (shared with message routing),
/// and the event log.
pub trait EngineStore:
    RunStore + DefinitionStore + TaskStore + AgentStore + AgentLoadStore + EventStore
{
}
impl<T: RunStore + DefinitionStore + TaskStore + AgentStore + AgentLoadStore + EventStore> EngineStore for T {}
