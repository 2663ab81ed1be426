//! Dead letters: messages that could not be delivered, kept with why until an operator
//! redrives or purges them. The dead-letter queues are drained into this archive (so
//! nothing expires with SQS's 14-day retention), and a redrive sends the message back to
//! its source queue exactly once.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::queue::{Delivery, MAX_RECEIVES_EXCEEDED, Priority, dead_letter_attributes};

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

impl DeadLetter {
    /// The band queue a delivery from `dead_letter_queue` was dead-lettered from: as the
    /// queue wrote it on the message, else `band_queue` (the band of that dead-letter
    /// queue), else the dead-letter queue's name less `-dlq`.
    pub fn source_queue_of(
        delivery: &Delivery,
        dead_letter_queue: &str,
        band_queue: Option<String>,
    ) -> String {
        delivery
            .attributes
            .get(dead_letter_attributes::SOURCE_QUEUE)
            .cloned()
            .or(band_queue)
            .unwrap_or_else(|| dead_letter_queue.trim_end_matches("-dlq").to_owned())
    }

    /// The archive's record of a delivery taken from a dead-letter queue: the reason, the
    /// receive count and the time the queue wrote on it (a message SQS moved after too
    /// many receives has none: [`MAX_RECEIVES_EXCEEDED`], its receive count, `now`), the
    /// failures noted while it was tried, and the message as it was sent.
    pub fn of_delivery(
        delivery: &Delivery,
        source_queue: String,
        note: Option<FailureNote>,
        now: Timestamp,
    ) -> DeadLetter {
        let attribute = |name: &str| delivery.attributes.get(name);
        let attempts = attribute(dead_letter_attributes::RECEIVE_COUNT)
            .and_then(|count| count.parse().ok())
            .unwrap_or(delivery.receive_count);
        DeadLetter {
            id: delivery.message_id.clone(),
            source_queue,
            reason: attribute(dead_letter_attributes::REASON)
                .cloned()
                .unwrap_or_else(|| MAX_RECEIVES_EXCEEDED.into()),
            detail: note.as_ref().map(|n| n.last_reason.clone()),
            attempts: note.as_ref().map_or(attempts, |n| n.attempts.max(attempts)),
            first_failure_at: note.as_ref().map(|n| n.first_at),
            last_failure_at: note.as_ref().map(|n| n.last_at),
            dead_lettered_at: attribute(dead_letter_attributes::DEAD_LETTERED_AT)
                .and_then(|at| at.parse().ok())
                .unwrap_or(now),
            message: QueuedMessage {
                group: delivery.group.clone(),
                dedup_id: delivery.dedup_id.clone(),
                body: delivery.body.clone(),
                priority: delivery.priority,
                attributes: delivery
                    .attributes
                    .iter()
                    .filter(|(name, _)| !is_dead_letter_attribute(name))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect(),
            },
            state: DeadLetterState::Dead,
            version: 1,
        }
    }
}

/// The attributes a queue writes on a message it dead-letters, which are not the message's.
fn is_dead_letter_attribute(name: &str) -> bool {
    [
        dead_letter_attributes::REASON,
        dead_letter_attributes::SOURCE_QUEUE,
        dead_letter_attributes::RECEIVE_COUNT,
        dead_letter_attributes::DEAD_LETTERED_AT,
    ]
    .contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(attributes: &[(&str, &str)], receive_count: u32) -> Delivery {
        Delivery {
            message_id: "m-1".into(),
            receipt: "r".into(),
            group: "g".into(),
            dedup_id: "d".into(),
            body: "{}".into(),
            priority: Priority::HIGHEST,
            attributes: attributes.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            receive_count,
            sent_at: Timestamp::UNIX_EPOCH,
            reclaimed: false,
        }
    }

    #[test]
    fn a_dead_letter_is_recorded_from_what_its_queue_wrote_on_it() {
        let at: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let sent = delivery(&[("trace", "t-1")], 3);
        let moved = sent.dead_lettered("high", "agent_rejected", at);
        let on_dlq = Delivery { attributes: moved.attributes, receive_count: 1, ..sent };
        let source = DeadLetter::source_queue_of(&on_dlq, "high-dlq", Some("other".into()));
        assert_eq!(source, "high", "the queue it came from, as written on it");
        let note = FailureNote { attempts: 5, first_at: at, last_at: at, last_reason: "HTTP 500".into() };
        let dead = DeadLetter::of_delivery(&on_dlq, source, Some(note), Timestamp::UNIX_EPOCH);
        assert_eq!((dead.reason.as_str(), dead.attempts, dead.dead_lettered_at), ("agent_rejected", 5, at));
        assert_eq!(dead.detail.as_deref(), Some("HTTP 500"));
        assert_eq!(dead.first_failure_at, Some(at));
        assert_eq!(dead.message.priority, Priority::HIGHEST);
        // The queue's attributes are not the message's.
        assert_eq!(dead.message.attributes, BTreeMap::from([("trace".to_owned(), "t-1".to_owned())]));
        assert_eq!(dead.state, DeadLetterState::Dead);
    }

    #[test]
    fn a_message_sqs_moved_after_too_many_receives_has_that_reason_and_its_receive_count() {
        let now: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let on_dlq = delivery(&[], 7);
        assert_eq!(DeadLetter::source_queue_of(&on_dlq, "low-dlq", Some("low".into())), "low");
        assert_eq!(DeadLetter::source_queue_of(&on_dlq, "steps-dlq", None), "steps");
        let dead = DeadLetter::of_delivery(&on_dlq, "low".into(), None, now);
        assert_eq!(
            (dead.reason.as_str(), dead.attempts, dead.dead_lettered_at),
            (MAX_RECEIVES_EXCEEDED, 7, now)
        );
        assert_eq!((dead.detail, dead.first_failure_at), (None, None));
    }

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
