//! What is stored about runs, their steps, and workflow definitions.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{RunStatus, StepStatus};
use crate::events::Event;

/// One execution of a stored workflow version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Run {
    pub id: String,
    pub workflow_id: String,
    pub workflow_version: String,
    pub status: RunStatus,
    /// The workflow inputs the run was started with.
    #[schema(value_type = Object)]
    pub inputs: Map<String, Value>,
    pub created_at: Timestamp,
    /// When the run times out (`created_at` + the workflow's `timeout`).
    pub deadline: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Why it failed, timed out or was cancelled.
    pub error: Option<String>,
    /// Bumped by every write; a write must name the version it read.
    pub version: u64,
}

/// One step of a run. A step without a record is waiting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepRun {
    pub step_id: String,
    pub status: StepStatus,
    /// Attempts started so far.
    pub attempts: u32,
    pub queued_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    #[schema(value_type = Option<Object>)]
    pub outputs: Option<Map<String, Value>>,
    pub error: Option<String>,
    /// Why a skipped step was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<SkipReason>,
    /// A `loop` step between attempts: each item's reply once it succeeded, `null` for
    /// the items still to do. A retry calls the agent for those only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub loop_results: Option<Vec<Option<Value>>>,
    pub version: u64,
}

/// Why a step did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// A dependency failed (under `error_handling: continue`), or was skipped for that
    /// reason: this step's inputs can never exist.
    DependencyFailed,
    /// A condition chose the other branch, or every dependency was skipped that way.
    BranchNotTaken,
}

impl Run {
    /// The event that reports this record as just written: `run.started` for a new run,
    /// `run.<status>` for one that ended, none for any other change. Its subject is the
    /// run.
    pub fn event(&self, at: Timestamp) -> Option<Event> {
        let kind = match self.status {
            RunStatus::Running if self.version == 1 => "run.started".to_owned(),
            RunStatus::Running => return None,
            status => format!("run.{}", status.as_str()),
        };
        let data = serde_json::json!({
            "workflow_id": self.workflow_id, "workflow_version": self.workflow_version, "error": self.error,
        });
        Some(Event::new(&kind, &self.id, at, data))
    }
}

impl StepRun {
    /// The event that reports this record of run `run_id` as just written:
    /// `step.started` (an attempt began), `step.retrying` (queued again after a failed
    /// attempt), `step.succeeded`, `step.failed`, `step.skipped`, `step.cancelled`; none
    /// for a step made ready. Its subject is the run, so that one run's events are
    /// followed together; `data.step_id` names the step.
    pub fn event(&self, run_id: &str, at: Timestamp) -> Option<Event> {
        let kind = match self.status {
            StepStatus::Waiting => return None,
            StepStatus::Queued if self.attempts == 0 => return None,
            StepStatus::Queued => "step.retrying",
            StepStatus::Running => "step.started",
            StepStatus::Succeeded => "step.succeeded",
            StepStatus::Failed => "step.failed",
            StepStatus::Skipped => "step.skipped",
            StepStatus::Cancelled => "step.cancelled",
        };
        let data = serde_json::json!({
            "step_id": self.step_id, "attempt": self.attempts, "error": self.error, "skip_reason": self.skip_reason,
        });
        Some(Event::new(kind, run_id, at, data))
    }

    /// The record that makes a waiting step ready.
    pub fn queued(step_id: &str, now: Timestamp) -> Self {
        Self {
            step_id: step_id.to_owned(),
            status: StepStatus::Queued,
            attempts: 0,
            queued_at: Some(now),
            started_at: None,
            finished_at: None,
            outputs: None,
            error: None,
            skip_reason: None,
            loop_results: None,
            version: 1,
        }
    }

    /// The record of a step that will not run.
    pub fn skipped(step_id: &str, reason: SkipReason, now: Timestamp) -> Self {
        let error = match reason {
            SkipReason::DependencyFailed => "a dependency did not succeed",
            SkipReason::BranchNotTaken => "not on the branch its condition chose",
        };
        Self {
            status: StepStatus::Skipped,
            finished_at: Some(now),
            error: Some(error.to_owned()),
            skip_reason: Some(reason),
            ..Self::queued(step_id, now)
        }
    }
}

/// Which runs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub workflow_id: Option<String>,
    pub status: Option<RunStatus>,
}

impl RunFilter {
    pub fn matches(&self, run: &Run) -> bool {
        self.workflow_id.as_ref().is_none_or(|id| *id == run.workflow_id)
            && self.status.is_none_or(|status| status == run.status)
    }
}

/// A stored definition: one immutable version of one workflow, or of one squad.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDefinition {
    pub id: String,
    pub version: String,
    /// The document as JSON (YAML documents are stored converted), in its canonical form.
    pub definition: Value,
    /// SHA-256 of `definition`'s canonical JSON: storing the same version again is
    /// harmless only when this matches.
    pub content_hash: String,
    pub created_at: Timestamp,
}

impl StoredDefinition {
    /// A new version of `definition` (its canonical form), hashed.
    pub fn new(id: String, version: String, definition: Value, created_at: Timestamp) -> Self {
        let content_hash =
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(definition.to_string().as_bytes()));
        Self { id, version, definition, content_hash, created_at }
    }
}
