//! Workflow runs: the run and step state machines the durable engine moves through.
//!
//! Every move is checked here and written with a conditional write (on the record's
//! `version`), so concurrent workers never lose an update and a redelivered message can
//! never move a record twice. A step has no record until it is first queued: "no record"
//! is `Waiting`, and creating the record is the conditional write that makes a dependent
//! ready exactly once, however many parents finish at the same moment.
//!
//! Two areas share workflows: `workflow` is the definition language (format, model,
//! parser, graph, planner: pure, no ports, no clock), and `runs` is the area that stores
//! and runs them, shaped as every area is. They stay apart because the language is used
//! without running anything (`POST /v1/workflows:validate`, the deploy spec's formats,
//! the benchmarks), and because a run only needs a validated workflow, not how one is
//! written: `runs` imports `workflow`, never the other way.
//!
//! Here: the records and their state machines (`records.rs`, `state.rs`), what runs need
//! from the world (`ports.rs`), the [`Engine`] and what the API asks of it
//! (`service.rs`), what a step task asks of it (`worker.rs`, whose module docs say how
//! a task moves a run and what happens to a lost attempt), and calling a step's target
//! (`execute.rs`).
//!
//! Squads are run by the same engine, on the same queue and store: one engine, not two.
//! `squads` (the area below) is their language and tally, pure; here are their stored
//! versions (`squads.rs`), their tasks' records (`task_records.rs`), what the API asks of
//! tasks (`task_service.rs`), what an assignment's delivery asks (`task_worker.rs`, which
//! moves broadcasts and races, a broadcast counting its votes on the task's record in
//! `task_votes.rs`; `task_split.rs` and `task_lead.rs` move the other two
//! modes; `task_state.rs` is what the three share), and a workflow step that gives a
//! squad its task (`squad_step.rs`). A task is moved exactly as a run is: conditional
//! creates and writes, one message per unit of work, lost attempts noticed through
//! visibility.

mod execute;
mod ports;
mod records;
mod service;
mod squad_step;
mod squads;
mod state;
mod task_lead;
mod task_records;
mod task_service;
mod task_split;
mod task_state;
mod task_votes;
mod task_worker;
mod worker;

pub use ports::{DefinitionKind, DefinitionStore, EngineStore, RunStore, TaskStore};
pub use records::{Run, RunFilter, SkipReason, StepRun, StoredDefinition};
pub use service::{
    DEFAULT_VISIBILITY_MARGIN, Engine, EngineError, STEP_DEAD_LETTER_QUEUE, STEP_MAX_RECEIVES, STEP_QUEUE,
    Task,
};
pub use state::{IllegalTransition, RunStatus, StepStatus};
pub use task_lead::MAX_SUBTASKS;
pub use task_records::{
    Assignment, AssignmentKind, AssignmentStatus, ParentStep, Replacement, RoundOutcome, Seat, SeatVote,
    SquadTask, TaskFilter, TaskStatus, TaskView,
};
pub use task_service::MAX_TASK_INPUT_BYTES;
pub use task_worker::{MAX_TASK_RESULT_BYTES, WATCH_EVERY};
