//! The legal moves of runs and steps.

use serde::{Deserialize, Serialize};

/// A run: `running` until every step has ended, then how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    /// Every step succeeded or was skipped by a condition.
    Succeeded,
    /// A step failed (under `stop`, at once; under `continue`, once nothing more can run).
    Failed,
    /// Cancelled through the API: nothing new starts.
    Cancelled,
    /// The run's `timeout` passed.
    TimedOut,
}

/// A step within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Some dependency has not ended yet (a step without a record is waiting).
    Waiting,
    /// Ready: its task is on the queue, for its first attempt or a retry after backoff.
    Queued,
    /// A worker is running an attempt.
    Running,
    Succeeded,
    /// Its last attempt failed, and no attempts are left.
    Failed,
    /// Not run: a dependency failed under `continue`, or a condition chose the other branch.
    Skipped,
    /// Not run, or not finished: the run was cancelled, failed or timed out.
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot move {what} from {from} to {to}")]
pub struct IllegalTransition {
    pub what: &'static str,
    pub from: &'static str,
    pub to: &'static str,
}

impl RunStatus {
    pub fn is_terminal(self) -> bool {
        self != RunStatus::Running
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::TimedOut => "timed_out",
        }
    }

    /// A run only ever leaves `running`, once.
    pub fn check(self, to: RunStatus) -> Result<RunStatus, IllegalTransition> {
        if self == RunStatus::Running && to != RunStatus::Running {
            Ok(to)
        } else {
            Err(IllegalTransition { what: "run", from: self.as_str(), to: to.as_str() })
        }
    }
}

impl StepStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded | StepStatus::Failed | StepStatus::Skipped | StepStatus::Cancelled
        )
    }

    /// Whether dependents may treat this step as done and go on (under `continue`, a
    /// failed dependency skips them instead).
    pub fn lets_dependents_run(self) -> bool {
        matches!(self, StepStatus::Succeeded)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Waiting => "waiting",
            StepStatus::Queued => "queued",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }

    /// The legal moves:
    /// - `waiting → queued | skipped | cancelled`
    /// - `queued → running | cancelled`
    /// - `running → succeeded | failed | queued` (an attempt failed, a retry is due)
    ///   `| running` (a worker died mid-attempt; the redelivered task starts a new one)
    ///   `| cancelled`
    /// - nothing leaves a terminal state.
    pub fn check(self, to: StepStatus) -> Result<StepStatus, IllegalTransition> {
        use StepStatus::*;
        let legal = matches!(
            (self, to),
            (Waiting, Queued | Skipped | Cancelled)
                | (Queued, Running | Cancelled)
                | (Running, Succeeded | Failed | Queued | Running | Cancelled)
        );
        if legal {
            Ok(to)
        } else {
            Err(IllegalTransition { what: "step", from: self.as_str(), to: to.as_str() })
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const STEPS: [StepStatus; 7] = [
        StepStatus::Waiting,
        StepStatus::Queued,
        StepStatus::Running,
        StepStatus::Succeeded,
        StepStatus::Failed,
        StepStatus::Skipped,
        StepStatus::Cancelled,
    ];
    const RUNS: [RunStatus; 5] = [
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::TimedOut,
    ];

    #[test]
    fn terminal_steps_never_move_and_every_step_can_end() {
        for from in STEPS {
            let moves: Vec<StepStatus> = STEPS.into_iter().filter(|to| from.check(*to).is_ok()).collect();
            assert_eq!(from.is_terminal(), moves.is_empty(), "{from:?} → {moves:?}");
            if !from.is_terminal() {
                assert!(moves.contains(&StepStatus::Cancelled), "{from:?} can be cancelled");
            }
        }
    }

    #[test]
    fn a_run_ends_once() {
        for to in RUNS {
            assert_eq!(RunStatus::Running.check(to).is_ok(), to != RunStatus::Running);
            for from in RUNS.into_iter().filter(|r| r.is_terminal()) {
                assert!(from.check(to).is_err(), "{from:?} → {to:?}");
            }
        }
    }

    proptest! {
        /// Following only legal moves from `waiting`, a step reaches `succeeded` only
        /// through `running`, and after any terminal state nothing more happens.
        #[test]
        fn legal_walks_respect_the_lifecycle(choices in proptest::collection::vec(0usize..7, 0..40)) {
            let mut state = StepStatus::Waiting;
            let mut ran = false;
            for choice in choices {
                let to = STEPS[choice];
                match state.check(to) {
                    Ok(next) => {
                        prop_assert!(!state.is_terminal());
                        if next == StepStatus::Succeeded || next == StepStatus::Failed {
                            prop_assert_eq!(state, StepStatus::Running);
                        }
                        ran |= next == StepStatus::Running;
                        state = next;
                    }
                    Err(_) => prop_assert!(state.is_terminal() || !matches!((state, to),
                        (StepStatus::Waiting, StepStatus::Queued | StepStatus::Skipped | StepStatus::Cancelled)
                        | (StepStatus::Queued, StepStatus::Running | StepStatus::Cancelled))),
                }
            }
            if state == StepStatus::Succeeded {
                prop_assert!(ran);
            }
        }
    }
}
