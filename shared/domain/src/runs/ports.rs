//! What runs need from the world: stored workflow versions, and runs with their steps.

use std::future::Future;

use super::records::{Run, RunFilter, StepRun, StoredWorkflow};
use crate::agents::AgentStore;
use crate::events::EventStore;
use crate::ports::StoreError;

pub trait WorkflowStore: Send + Sync + 'static {
    /// Stores a version. Storing the same id and version again is harmless when the
    /// content is the same, and a `Conflict` when it differs: versions are immutable.
    fn put_workflow(&self, workflow: &StoredWorkflow) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One version, or with `version: None` the most recently stored one.
    fn get_workflow(
        &self,
        id: &str,
        version: Option<&str>,
    ) -> impl Future<Output = Result<Option<StoredWorkflow>, StoreError>> + Send;
}

/// Runs and their steps. Every update names the version it read and fails with
/// `Conflict` if the record changed since: that is what keeps concurrent workers exact.
pub trait RunStore: Send + Sync + 'static {
    /// `Conflict` if the id is taken.
    fn create_run(&self, run: &Run) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The run and every step that has a record, by step id.
    fn get_run(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<(Run, Vec<StepRun>)>, StoreError>> + Send;

    /// Newest first.
    fn list_runs(&self, filter: &RunFilter) -> impl Future<Output = Result<Vec<Run>, StoreError>> + Send;

    /// Writes `run` (whose `version` is already bumped) if the stored one is at
    /// `run.version - 1`.
    fn update_run(&self, run: &Run) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Creates a step's record; `Conflict` if it has one: exactly one caller makes a
    /// waiting step ready.
    fn create_step(
        &self,
        run_id: &str,
        step: &StepRun,
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
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Every port the engine uses: the workflows, the runs, the registry its steps call, and
/// the event log.
pub trait EngineStore: RunStore + WorkflowStore + AgentStore + EventStore {}
impl<T: RunStore + WorkflowStore + AgentStore + EventStore> EngineStore for T {}
