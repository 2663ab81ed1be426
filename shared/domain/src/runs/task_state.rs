//! What moving a squad task shares between its modes (`task_worker.rs` for broadcasts and
//! races, `task_split.rs`, `task_lead.rs`): how a task ends, what one pass of advance
//! did, a replacement applied to a task's record, and the squad's aggregation rule.

use jiff::Timestamp;
use serde_json::Value;

use super::task_records::{Replacement, Seat, SquadTask, TaskStatus};
use crate::squads::{Rule, Squad, Tally};

/// A broadcast's or a race's answer of `seat` in `round`: `r01-s0002-g0`.
pub(super) fn answer_id(round: u32, seat: &Seat) -> String {
    format!("r{round:02}-s{:04}-g{}", seat.slot, seat.generation)
}

/// When an answer arrived, for the tally's order: microseconds since the epoch (none
/// yet: last).
pub(super) fn micros(at: Option<Timestamp>) -> u64 {
    at.map_or(u64::MAX, |t| u64::try_from(t.as_microsecond()).unwrap_or(0))
}

/// How a task ends.
pub(super) struct Ending {
    pub(super) status: TaskStatus,
    pub(super) result: Option<Value>,
    pub(super) tally: Option<Tally>,
    pub(super) error: Option<String>,
}

impl Ending {
    pub(super) fn failure(status: TaskStatus, error: impl Into<String>) -> Self {
        Self { status, result: None, tally: None, error: Some(error.into()) }
    }
}

/// What one pass of advance did.
pub(super) enum Pass {
    /// The task changed (a replacement, a new round): look again.
    Again,
    Done,
}

/// The squad's aggregation as the tally takes it.
pub(super) fn rule_of(squad: &Squad) -> Rule {
    Rule {
        method: squad.method(),
        quorum: squad.aggregation.quorum.unwrap_or(0),
        compare: squad.aggregation.compare.clone(),
        tie_break: squad.aggregation.tie_break,
        tolerated_failures: squad.on_failure.tolerate,
    }
}

/// `task` with `agent` in `seat`'s place (its generation one more) and the replacement
/// recorded; its version as read.
pub(super) fn replaced(
    task: &SquadTask,
    seat: &Seat,
    agent: String,
    reason: String,
    at: Timestamp,
) -> SquadTask {
    let replacement =
        Replacement { slot: seat.slot, replaced: seat.agent.clone(), by: agent.clone(), reason, at };
    let seats = task
        .seats
        .iter()
        .map(|s| {
            if s.slot == seat.slot {
                Seat { agent: agent.clone(), generation: s.generation + 1, ..s.clone() }
            } else {
                s.clone()
            }
        })
        .collect();
    SquadTask { seats, replacements: [task.replacements.clone(), vec![replacement]].concat(), ..task.clone() }
}
