//! What is stored about squad tasks and their assignments.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::squads::{Role, Tally};

/// One task given to a squad: who holds each seat, each round's tally, the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SquadTask {
    pub id: String,
    pub squad_id: String,
    pub squad_version: String,
    pub status: TaskStatus,
    /// The round under way (from 1); only a broadcast has more than one.
    pub round: u32,
    /// Who holds each seat now, in member order (a capability member takes `count` seats).
    pub seats: Vec<Seat>,
    /// Every replacement, in order, with why.
    pub replacements: Vec<Replacement>,
    /// `split`: items handed out so far (items `0..handed_out` have an assignment).
    #[serde(default)]
    pub handed_out: u32,
    /// `split`: items finished (succeeded, or failed for good).
    #[serde(default)]
    pub finished: u32,
    /// `split`: which items are finished, a bit each, so that counting one is done once
    /// however often it is looked at. Every item below `finished_base` (a multiple of 64)
    /// is finished; item `i` above it is bit `(i - finished_base) % 64` of word
    /// `(i - finished_base) / 64`. Words all finished are dropped from the front, so the
    /// record holds the items around those under way, not all of them. Bookkeeping,
    /// left out of the API's schema: a word may exceed what an int64 holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(ignore)]
    pub finished_items: Vec<u64>,
    /// `split`: every item below this is finished (a multiple of 64).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub finished_base: u32,
    /// `split`: assignments in flight per seat, and handed out per seat in all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_flight: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assigned: Vec<u32>,
    /// `broadcast`: the round whose every answer is handed out (0: none yet), so that the
    /// pass after an answer need not look for a seat still without one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub round_handed_out: u32,
    /// `broadcast`: this round's answers counted so far, a vote each, so that the pass
    /// after an answer reads this record and not every assignment. Bookkeeping, left out
    /// of the API's schema (each answer is on its assignment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(ignore)]
    pub votes: Vec<SeatVote>,
    /// Each finished round: its tally and how it ended.
    pub rounds: Vec<RoundOutcome>,
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// The tally that produced the result.
    pub tally: Option<Tally>,
    /// Why it failed, timed out or was cancelled.
    pub error: Option<String>,
    /// The workflow step this task runs for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentStep>,
    pub created_at: Timestamp,
    pub deadline: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// Bumped by every write; a write must name the version it read.
    pub version: u64,
}

/// A task as the API shows it: its record, what it was started with, and every
/// assignment made so far, by id (round, seat, generation).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TaskView {
    #[serde(flatten)]
    pub task: SquadTask,
    /// What the task was started with.
    #[schema(value_type = Object)]
    pub input: Map<String, Value>,
    pub assignments: Vec<Assignment>,
}

/// A workflow step that runs a squad task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ParentStep {
    pub run_id: String,
    pub step_id: String,
    /// The step's attempt this task is.
    pub attempt: u32,
}

impl ParentStep {
    /// The id of the parent's task: the same for every worker that starts it, so that
    /// starting it twice makes one task.
    pub fn task_id(&self) -> String {
        let name = format!("{}/{}/{}", self.run_id, self.step_id, self.attempt);
        let digest = <sha2::Sha256 as sha2::Digest>::digest(name.as_bytes());
        hex::encode(&digest[..16])
    }
}

/// A seat of the squad in one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Seat {
    /// Its position: member order, a capability member's seats one after another.
    pub slot: u32,
    /// The agent that holds it now.
    pub agent: String,
    pub role: Role,
    pub weight: u32,
    /// What a replacement must offer (the member's capability, else the first agent's
    /// capabilities).
    pub capabilities: Vec<String>,
    /// 0, then one more for each replacement.
    pub generation: u32,
}

/// One answer of a broadcast's round as its task's record counts it: the seat (and the
/// generation of its agent) that gave it, a digest of the compared value (none: it failed
/// or has no compared value) and when it arrived (microseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatVote {
    pub slot: u32,
    pub generation: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub at: u64,
}

/// A member replaced by another agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Replacement {
    pub slot: u32,
    pub replaced: String,
    pub by: String,
    pub reason: String,
    pub at: Timestamp,
}

/// How a round ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoundOutcome {
    pub round: u32,
    /// `reached`, or `impossible` with the reason (the next round, if any, goes on).
    pub outcome: String,
    pub tally: Tally,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = SquadTaskStatus)]
pub enum TaskStatus {
    Running,
    Succeeded,
    /// The aggregation could not be reached (the reason is in `error`).
    Failed,
    Cancelled,
    /// The squad's deadline passed.
    TimedOut,
}

impl TaskStatus {
    pub fn is_terminal(self) -> bool {
        self != TaskStatus::Running
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::TimedOut => "timed_out",
        }
    }
}

/// What an assignment asks of its agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentKind {
    /// Answer the task (broadcast, race), or one item of it (split).
    Answer,
    /// Judge the answers (a validator).
    Judge,
    /// The lead: return a plan of subtasks.
    Plan,
    /// A worker: one subtask of the lead's plan.
    Subtask,
    /// The lead: synthesize the subtasks' results.
    Synthesize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssignmentStatus {
    /// On the queue: for its first attempt, or a retry after backoff.
    Queued,
    /// A worker is calling the agent.
    Running,
    Succeeded,
    /// Failed after its retries (a replacement, if any, is another assignment).
    Failed,
    /// Not started, or its answer no longer counts: the task ended, or the race was won.
    Cancelled,
}

impl AssignmentStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, AssignmentStatus::Succeeded | AssignmentStatus::Failed | AssignmentStatus::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AssignmentStatus::Queued => "queued",
            AssignmentStatus::Running => "running",
            AssignmentStatus::Succeeded => "succeeded",
            AssignmentStatus::Failed => "failed",
            AssignmentStatus::Cancelled => "cancelled",
        }
    }
}

/// One call (with its retries) of one agent for one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Assignment {
    /// Unique within the task, and the order they were made in when sorted:
    /// `r01-s0003-g0` (round, seat, generation), `i000042` (a split item), `plan`,
    /// `sub0003`, `synth`, `judge-s0002-r01`.
    pub id: String,
    pub kind: AssignmentKind,
    pub round: u32,
    pub slot: u32,
    /// `split`: the item's index; `lead_plans`: the subtask's.
    pub item: Option<u32>,
    /// The agent called.
    pub agent: String,
    pub status: AssignmentStatus,
    /// Attempts started so far.
    pub attempts: u32,
    pub queued_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// The agent's reply.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    pub error: Option<String>,
    /// What the reply counts as in the tally: the value at the squad's `compare` pointer
    /// (absent when the reply has none, which counts as a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub vote: Option<Value>,
    /// The reply was recorded after the task had ended: kept, not counted.
    #[serde(default)]
    pub late: bool,
    pub version: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Which tasks to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub squad_id: Option<String>,
    pub status: Option<TaskStatus>,
}

impl TaskFilter {
    pub fn matches(&self, task: &SquadTask) -> bool {
        self.squad_id.as_ref().is_none_or(|id| *id == task.squad_id)
            && self.status.is_none_or(|status| status == task.status)
    }
}

impl SquadTask {
    /// A new task of `squad`, running its first round, with nothing done yet.
    pub fn new(
        id: String,
        squad: &crate::squads::Squad,
        seats: Vec<Seat>,
        parent: Option<ParentStep>,
        now: Timestamp,
        deadline: Timestamp,
    ) -> Self {
        SquadTask {
            id,
            squad_id: squad.id.clone(),
            squad_version: squad.version.clone(),
            status: TaskStatus::Running,
            round: 1,
            seats,
            replacements: Vec::new(),
            handed_out: 0,
            finished: 0,
            finished_items: Vec::new(),
            finished_base: 0,
            in_flight: Vec::new(),
            assigned: Vec::new(),
            round_handed_out: 0,
            votes: Vec::new(),
            rounds: Vec::new(),
            result: None,
            tally: None,
            error: None,
            parent,
            created_at: now,
            deadline,
            finished_at: None,
            version: 1,
        }
    }

    /// Whether `split` item `item` is counted as finished.
    pub fn item_finished(&self, item: u32) -> bool {
        let Some(offset) = item.checked_sub(self.finished_base) else { return true };
        let (word, bit) = ((offset / 64) as usize, offset % 64);
        self.finished_items.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    /// Counts `split` item `item` as finished; `false` if it already was.
    pub fn finish_item(&mut self, item: u32) -> bool {
        if self.item_finished(item) {
            return false;
        }
        let offset = item - self.finished_base;
        let (word, bit) = ((offset / 64) as usize, offset % 64);
        if self.finished_items.len() <= word {
            self.finished_items.resize(word + 1, 0);
        }
        self.finished_items[word] |= 1 << bit;
        self.finished += 1;
        let full = self.finished_items.iter().take_while(|w| **w == u64::MAX).count();
        if full > 0 {
            self.finished_items.drain(..full);
            self.finished_base += 64 * full as u32;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn split_task() -> SquadTask {
        let squad = crate::squads::load(
            r#"{"id": "s", "version": "1", "members": [{"agent": "a"}],
                "distribution": {"mode": "split", "over": "items"}}"#,
            crate::workflow::Format::Json,
        )
        .expect("a valid squad")
        .squad;
        SquadTask::new("t".into(), &squad, Vec::new(), None, Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH)
    }

    proptest! {
        /// Items finished in any order, some twice: each is counted once, exactly those
        /// are finished, and the record keeps no word that is all finished.
        #[test]
        fn finished_items_are_counted_once_and_compacted(
            order in proptest::collection::vec(0u32..600, 0..1200),
        ) {
            let mut task = split_task();
            let mut expected = std::collections::BTreeSet::new();
            for item in &order {
                prop_assert_eq!(task.finish_item(*item), expected.insert(*item));
            }
            prop_assert_eq!(task.finished as usize, expected.len());
            for item in 0..700 {
                prop_assert_eq!(task.item_finished(item), expected.contains(&item), "item {}", item);
            }
            prop_assert!(task.finished_items.first().is_none_or(|w| *w != u64::MAX));
            prop_assert_eq!(task.finished_base % 64, 0);
            // And the same after a trip through the stored form.
            let stored: SquadTask = serde_json::from_str(&serde_json::to_string(&task).unwrap()).unwrap();
            prop_assert_eq!(stored, task);
        }
    }

    #[test]
    fn items_finished_in_order_leave_a_small_record() {
        let mut task = split_task();
        for item in 0..10_000 {
            assert!(task.finish_item(item));
        }
        assert_eq!((task.finished, task.finished_base), (10_000, 9_984));
        assert_eq!(task.finished_items.len(), 1, "only the last, partly finished word is kept");
        assert!(task.item_finished(0) && task.item_finished(9_999) && !task.item_finished(10_000));
    }
}
