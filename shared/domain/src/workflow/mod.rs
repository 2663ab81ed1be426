//! Workflows: teams describe multi-agent work as a DAG of steps, in JSON or YAML.
//!
//! [`parse`] turns a document into a [`Workflow`] (every field checked, every error
//! reported at once with its place, and with field errors the cycles of the graph as far
//! as it could be read); [`ValidatedWorkflow::new`] checks the graph for
//! cycles (every strongly connected component reported once, with a concrete cycle);
//! [`plan()`] computes levels, the critical path and what could be simplified. [`validate`]
//! does all three for `POST /v1/workflows:validate`; [`load`] parses a document once into
//! a [`Loaded`] workflow and its canonical JSON, which is what the engine stores and
//! [`load_definition`] reads back. Formats (JSON, YAML) stay here. The format is in
//! docs/workflows.md.
//!
//! Pure: no I/O, no clock.

pub mod condition;
mod graph;
mod model;
mod parse;
mod path;
mod plan;
mod report;
mod tree;

#[cfg(test)]
mod tests;

pub use graph::{Cycle, CycleEdge, CycleErrors, EdgeKinds, ValidatedWorkflow};
pub use model::{
    AgentReference, Edge, EdgeReason, ErrorHandling, ResolvedTarget, RetryPolicy, Seconds, ServiceTarget,
    Step, StepId, StepIndex, StepKind, StepType, TargetSource, Workflow,
};
pub use parse::{
    CYCLE_PATH, Format, LimitExceeded, LimitKind, Limits, ParseError, ParseErrors, parse, parse_json,
    parse_yaml,
};
pub use plan::{
    CriticalPath, DurationSource, EarlierStart, ImpliedBy, MAX_VIA_STEPS, Parallelism, PathStep, Plan,
    REDUNDANCY_BUDGET_BASE, REDUNDANCY_BUDGET_PER_ELEMENT, RedundantDependency, plan,
};
pub use report::{
    AgentPath, Loaded, Notice, ReportError, StepPath, ValidationReport, WorkflowError, WorkflowSummary, load,
    load_definition, load_off_runtime, untargeted, untargeted_message, validate, validate_off_runtime,
};
