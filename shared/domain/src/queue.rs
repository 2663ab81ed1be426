//! Messages on FIFO queues: priority, ordering group and idempotency key.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// 1 (most urgent) to 10 (least); 5 when unsaid — the format existing producers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Priority(u8);

impl Priority {
    pub const HIGHEST: Priority = Priority(1);
    pub const DEFAULT: Priority = Priority(5);
    pub const LOWEST: Priority = Priority(10);

    pub fn new(level: u8) -> Result<Self, InvalidPriority> {
        (1..=10).contains(&level).then_some(Self(level)).ok_or(InvalidPriority(level))
    }

    pub fn level(self) -> u8 {
        self.0
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("priority must be 1 (most urgent) to 10, not {0}")]
pub struct InvalidPriority(pub u8);

impl TryFrom<u8> for Priority {
    type Error = InvalidPriority;

    fn try_from(level: u8) -> Result<Self, Self::Error> {
        Self::new(level)
    }
}

impl From<Priority> for u8 {
    fn from(priority: Priority) -> Self {
        priority.0
    }
}

/// A queue as a backend is configured with: its logical name and, when it has one, its
/// dead-letter queue (which the backend serves too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: String,
    pub dead_letter: Option<DeadLetterSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterSpec {
    /// The dead-letter queue's logical name.
    pub queue: String,
    /// Receives after which a message is moved to the dead-letter queue.
    pub max_receive_count: u32,
}

impl QueueSpec {
    pub fn new(name: &str) -> Self {
        Self { name: name.to_owned(), dead_letter: None }
    }

    pub fn with_dead_letter(name: &str, dead_letter_queue: &str, max_receive_count: u32) -> Self {
        Self {
            name: name.to_owned(),
            dead_letter: Some(DeadLetterSpec { queue: dead_letter_queue.to_owned(), max_receive_count }),
        }
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Messages of one group are delivered in order, one in flight at a time.
    pub group: String,
    /// A second send with the same id within the deduplication window (5 minutes, as on
    /// SQS) sends nothing.
    pub dedup_id: String,
    pub body: String,
    pub priority: Priority,
    /// Small string metadata travelling beside the body.
    pub attributes: BTreeMap<String, String>,
}

/// A message as received: hidden from other consumers until acknowledged, retried after
/// its visibility timeout, or moved to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub message_id: String,
    /// The handle to acknowledge, delay or dead-letter this delivery with.
    pub receipt: String,
    pub group: String,
    pub dedup_id: String,
    pub body: String,
    pub priority: Priority,
    pub attributes: BTreeMap<String, String>,
    /// 1 on the first delivery.
    pub receive_count: u32,
    pub sent_at: Timestamp,
    /// The previous receive's work was cut off: the process holding it stopped, and this
    /// one took it back at start-up (the embedded queue). On SQS nothing can know a
    /// consumer died; its delivery comes back when its visibility timeout ends, unmarked.
    pub reclaimed: bool,
}

/// Attribute names a dead-lettered message carries, on every backend.
pub mod dead_letter_attributes {
    /// Why the message was dead-lettered (a reason code, e.g. `max_receive_count`).
    pub const REASON: &str = "tdev-dead-letter-reason";
    /// The queue it came from.
    pub const SOURCE_QUEUE: &str = "tdev-source-queue";
    /// How many times it had been received.
    pub const RECEIVE_COUNT: &str = "tdev-receive-count";
    /// When it was dead-lettered (RFC 3339).
    pub const DEAD_LETTERED_AT: &str = "tdev-dead-lettered-at";
}

impl Delivery {
    /// This delivery as it is re-sent to `queue`'s dead-letter queue at `at`: the same
    /// group, id (a retry after a failed delete adds no second copy), body and priority,
    /// with [`dead_letter_attributes`] saying why, where from and how often received.
    pub fn dead_lettered(&self, queue: &str, reason: &str, at: Timestamp) -> NewMessage {
        let mut attributes = self.attributes.clone();
        attributes.insert(dead_letter_attributes::REASON.into(), reason.into());
        attributes.insert(dead_letter_attributes::SOURCE_QUEUE.into(), queue.into());
        attributes.insert(dead_letter_attributes::RECEIVE_COUNT.into(), self.receive_count.to_string());
        attributes.insert(dead_letter_attributes::DEAD_LETTERED_AT.into(), at.to_string());
        NewMessage {
            group: self.group.clone(),
            dedup_id: self.dedup_id.clone(),
            body: self.body.clone(),
            priority: self.priority,
            attributes,
        }
    }
}

/// The reason code of a message moved after too many receives.
pub const MAX_RECEIVES_EXCEEDED: &str = "max_receive_count_exceeded";

/// What one delivery came to, once its worker has settled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Finished with: acknowledged, dead-lettered or re-sent. It will not come back.
    Finished,
    /// Taken from a dead-letter queue into the archive (finished too; counted apart, as
    /// operators are alarmed on it).
    Archived,
    /// Not finished: it comes back (its visibility already set), and the later deliveries
    /// of its FIFO group must wait behind it.
    Retry,
}

impl Handled {
    pub fn finished(self) -> bool {
        !matches!(self, Handled::Retry)
    }

    /// What a settle came to, where one that failed is a retry: the queue brings the
    /// delivery back when its visibility ends.
    pub fn or_retry<E: fmt::Display>(settled: Result<Handled, E>, delivery: &Delivery) -> Handled {
        settled.unwrap_or_else(|e| {
            tracing::warn!(error = %e, message_id = %delivery.message_id, "could not settle a delivery; it will come back");
            Handled::Retry
        })
    }
}

/// What a worker decided about one task it was delivered; the queue applies it
/// ([`crate::ports::MessageQueue::settle`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: delete it.
    Done,
    /// Not yet: make it visible again after this long.
    RetryAfter(Duration),
    /// It can never be processed: move it to the dead-letter queue with this reason.
    DeadLetter(String),
}

/// How the local stack's consumer loop takes from a worker's queues; in Lambda, the
/// template's event source mappings say the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Polling {
    /// Taken from in this order: the first that has messages goes first.
    pub queues: Vec<String>,
    /// At most this many deliveries a receive.
    pub batch: usize,
    /// How long a received delivery stays hidden from other consumers.
    pub visibility: Duration,
}

/// An area's queue side: what one delivery asks of it. The engine, the deployment
/// pipeline and the message dispatcher implement it; the inbound glue (`tdev-worker`)
/// runs it from a Lambda SQS batch or a local consumer loop, with one FIFO rule for all.
pub trait QueueWorker: Send + Sync + 'static {
    /// Processes one delivery taken from `queue` and settles it (acknowledge, retry later,
    /// dead-letter or archive). Never fails: what could not be settled is a
    /// [`Handled::Retry`], and the queue brings it back.
    fn handle(&self, queue: &str, delivery: &Delivery) -> impl Future<Output = Handled> + Send;

    /// The queues the local stack polls for this worker, and how.
    fn polling(&self) -> Vec<Polling>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_are_one_to_ten_defaulting_to_five() {
        assert_eq!(Priority::default().level(), 5);
        assert!(Priority::new(0).is_err() && Priority::new(11).is_err());
        assert!(Priority::HIGHEST < Priority::DEFAULT && Priority::DEFAULT < Priority::LOWEST);
        assert_eq!(serde_json::from_str::<Priority>("3").unwrap().level(), 3);
        assert!(serde_json::from_str::<Priority>("11").is_err());
    }
}
