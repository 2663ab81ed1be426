//! The deployment state machine.
//!
//! ```text
//! deploy:    pending → validating → backing_up → deploying → preparing → versioning → verifying → deployed
//!            validating, backing_up ─(error)→ failed            (nothing on the target changed yet)
//!            deploying … verifying ─(error, timeout, failed smoke test)→ rolling_back → rolled_back
//!                                                                                    └(rollback fails)→ failed
//! rollback:  pending → backing_up → rolling_back → rolled_back   (or failed)
//! ```
//!
//! Every move is a conditional write on the record's revision, with its event in the same
//! write, so a redelivered task can never move a deployment twice.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    Pending,
    Validating,
    BackingUp,
    Deploying,
    Preparing,
    Versioning,
    Verifying,
    Deployed,
    RollingBack,
    RolledBack,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a deployment cannot go from {from:?} to {to:?}")]
pub struct IllegalTransition {
    pub from: DeploymentStatus,
    pub to: DeploymentStatus,
}

impl DeploymentStatus {
    pub const ALL: [DeploymentStatus; 11] = [
        Self::Pending,
        Self::Validating,
        Self::BackingUp,
        Self::Deploying,
        Self::Preparing,
        Self::Versioning,
        Self::Verifying,
        Self::Deployed,
        Self::RollingBack,
        Self::RolledBack,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Validating => "validating",
            Self::BackingUp => "backing_up",
            Self::Deploying => "deploying",
            Self::Preparing => "preparing",
            Self::Versioning => "versioning",
            Self::Verifying => "verifying",
            Self::Deployed => "deployed",
            Self::RollingBack => "rolling_back",
            Self::RolledBack => "rolled_back",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Nothing more happens to it.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Deployed | Self::RolledBack | Self::Failed)
    }

    /// The target may have been changed: a failure from here is rolled back.
    pub fn has_touched_target(self) -> bool {
        matches!(self, Self::Deploying | Self::Preparing | Self::Versioning | Self::Verifying)
    }

    /// Whether a deployment may move from `self` to `to`.
    pub fn can_move_to(self, to: Self) -> bool {
        use DeploymentStatus::*;
        matches!(
            (self, to),
            (Pending, Validating | BackingUp | Failed)
                | (Validating, BackingUp | Failed)
                | (BackingUp, Deploying | RollingBack | Failed)
                | (Deploying, Preparing)
                | (Preparing, Versioning)
                | (Versioning, Verifying)
                | (Verifying, Deployed)
                | (Deploying | Preparing | Versioning | Verifying, RollingBack)
                | (RollingBack, RolledBack | Failed)
        ) || (self == to && !self.is_terminal())
    }

    pub fn check(self, to: Self) -> Result<(), IllegalTransition> {
        if self.can_move_to(to) { Ok(()) } else { Err(IllegalTransition { from: self, to }) }
    }
}

impl std::fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses_go_nowhere() {
        for from in DeploymentStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in DeploymentStatus::ALL {
                assert!(!from.can_move_to(to), "{from} → {to}");
            }
        }
    }

    #[test]
    fn every_status_is_reachable_from_pending_and_reaches_an_end() {
        use std::collections::HashSet;
        let mut seen = HashSet::from([DeploymentStatus::Pending]);
        let mut frontier = vec![DeploymentStatus::Pending];
        while let Some(from) = frontier.pop() {
            for to in DeploymentStatus::ALL {
                if from.can_move_to(to) && seen.insert(to) {
                    frontier.push(to);
                }
            }
        }
        assert_eq!(seen.len(), DeploymentStatus::ALL.len());
        for from in DeploymentStatus::ALL.into_iter().filter(|s| !s.is_terminal()) {
            assert!(DeploymentStatus::ALL.iter().any(|to| *to != from && from.can_move_to(*to)), "{from}");
        }
    }

    #[test]
    fn a_failure_after_the_target_changed_must_roll_back() {
        for from in DeploymentStatus::ALL.into_iter().filter(|s| s.has_touched_target()) {
            assert!(!from.can_move_to(DeploymentStatus::Failed), "{from}");
            assert!(from.can_move_to(DeploymentStatus::RollingBack), "{from}");
        }
    }

    #[test]
    fn names_round_trip() {
        for status in DeploymentStatus::ALL {
            assert_eq!(DeploymentStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
    }
}
