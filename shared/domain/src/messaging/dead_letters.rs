//! Dead letters: messages that could not be delivered, kept with why until an operator
//! redrives or purges them. The dead-letter queues are drained into this archive (so
//! nothing expires with SQS's 14-day retention), and a redrive sends the message back to
//! its source queue exactly once.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::queue::Priority;

/// A dead letter's message, as it was on the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueuedMessage {
    pub group: String,
    pub dedup_id: String,
    /// The envelope, as sent.
    pub body: String,
    #[schema(value_type = u8)]
    pub priority: Priority,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeadLetterState {
    /// Waiting for an operator.
    Dead,
    /// Being sent back (a redrive that was cut off is finished by the next one, with the
    /// same deduplication id, so the message is sent once).
    Redriving {
        to_queue: String,
        dedup_id: String,
        #[schema(value_type = u8)]
        priority: Priority,
    },
    /// Sent back.
    Redriven { to_queue: String, message_id: String, at: Timestamp },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// The queue message's id.
    pub id: String,
    /// The queue it failed on (logical name).
    pub source_queue: String,
    /// A reason code: `signature_invalid`, `no_agent`, `max_receive_count_exceeded`, …
    pub reason: String,
    /// A human-readable detail, never a secret.
    pub detail: Option<String>,
    /// Deliveries tried.
    pub attempts: u32,
    pub first_failure_at: Option<Timestamp>,
    pub last_failure_at: Option<Timestamp>,
    pub dead_lettered_at: Timestamp,
    pub message: QueuedMessage,
    #[serde(flatten)]
    pub state: DeadLetterState,
    /// Each stored change adds one.
    pub version: u64,
}

/// Which dead letters to list (every given condition holds), oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    pub source_queue: Option<String>,
    pub reason: Option<String>,
    /// `dead`, `redriving` or `redriven`.
    pub state: Option<String>,
    pub limit: usize,
}

impl DeadLetterState {
    pub fn name(&self) -> &'static str {
        match self {
            DeadLetterState::Dead => "dead",
            DeadLetterState::Redriving { .. } => "redriving",
            DeadLetterState::Redriven { .. } => "redriven",
        }
    }
}

impl DeadLetterFilter {
    pub fn matches(&self, dead_letter: &DeadLetter) -> bool {
        self.source_queue.as_ref().is_none_or(|q| *q == dead_letter.source_queue)
            && self.reason.as_ref().is_none_or(|r| *r == dead_letter.reason)
            && self.state.as_ref().is_none_or(|s| s == dead_letter.state.name())
    }
}

/// Failed deliveries of one message so far: the consumer notes each, and the archive
/// takes them into the dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureNote {
    pub attempts: u32,
    pub first_at: Timestamp,
    pub last_at: Timestamp,
    pub last_reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redriving_priority_is_stored_as_its_level_and_read_back_as_a_priority() {
        let state = DeadLetterState::Redriving {
            to_queue: "steps".into(),
            dedup_id: "redrive-a-1".into(),
            priority: Priority::HIGHEST,
        };
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"state": "redriving", "to_queue": "steps", "dedup_id": "redrive-a-1", "priority": 1})
        );
        assert_eq!(serde_json::from_value::<DeadLetterState>(json).unwrap(), state);
        let out_of_range =
            serde_json::json!({"state": "redriving", "to_queue": "q", "dedup_id": "d", "priority": 11});
        assert!(serde_json::from_value::<DeadLetterState>(out_of_range).is_err());
    }
}
