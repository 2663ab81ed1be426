//! Workflow runs: the run and step state machines the durable engine moves through.
//!
//! Every move is checked here and written with a conditional write (on the record's
//! `version`), so concurrent workers never lose an update and a redelivered message can
//! never move a record twice. A step has no record until it is first queued: "no record"
//! is `Waiting`, and creating the record is the conditional write that makes a dependent
//! ready exactly once, however many parents finish at the same moment.

mod engine;
mod ports;
mod records;
mod state;

pub use engine::{
    DEFAULT_ATTEMPT_TIMEOUT, DEFAULT_VISIBILITY_MARGIN, Engine, EngineError, Outcome, STEP_DEAD_LETTER_QUEUE,
    STEP_MAX_RECEIVES, STEP_QUEUE, Task,
};
pub use ports::{RunStore, WorkflowStore};
pub use records::{Run, RunFilter, SkipReason, StepRun, StoredWorkflow};
pub use state::{IllegalTransition, RunStatus, StepStatus};
