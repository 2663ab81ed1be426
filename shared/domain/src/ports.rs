//! What every area needs from the world: store errors, the queue, secrets and health.
//! Each area declares the rest of what it needs in its own `ports.rs` (`agents::ports`,
//! `runs::ports`, ...). Adapters in `tdev-embedded` (SQLite) and `tdev-aws` (DynamoDB,
//! SQS, Secrets Manager) implement them; both pass one conformance suite
//! (`tdev-conformance`).

use std::future::Future;
use std::time::Duration;

use crate::health::ComponentHealth;
use crate::queue::{Delivery, Handled, NewMessage, Outcome};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: the record exists, or changed under us.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    /// A stored record could not be read back: a bug or a hand-edited record.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The backend could not be reached or refused the call.
    #[error("backend unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Unavailable(Box::new(error))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersion {
    pub version_id: String,
    pub value: String,
}

/// A secret's current value and the one it replaced (Secrets Manager's `AWSCURRENT` and
/// `AWSPREVIOUS` stages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersions {
    pub current: SecretVersion,
    pub previous: Option<SecretVersion>,
}

pub trait SecretStore: Send + Sync + 'static {
    /// `NotFound` if the secret does not exist.
    fn secret_versions(&self, name: &str) -> impl Future<Output = Result<SecretVersions, StoreError>> + Send;

    /// Creates the secret, or makes `value` its new current version (the old current
    /// becomes previous). Returns the new version id.
    fn put_secret(&self, name: &str, value: &str) -> impl Future<Output = Result<String, StoreError>> + Send;
}

pub trait HealthCheck: Send + Sync + 'static {
    fn health(&self) -> impl Future<Output = Vec<ComponentHealth>> + Send;
}

/// FIFO queues with dead-letter queues: SQS FIFO on AWS, an in-process queue with the same
/// semantics in the embedded backend. Queues are named by their logical name (`steps`);
/// each backend maps names to its own queues and knows each queue's dead-letter queue and
/// `max_receive_count`.
pub trait MessageQueue: Send + Sync + 'static {
    /// Sends one message; returns its id. A duplicate `dedup_id` within the window sends
    /// nothing (and may return the first message's id or a new one, as SQS does).
    fn send(
        &self,
        queue: &str,
        message: NewMessage,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Up to `max` messages, each hidden from other receivers for `visibility`. Messages
    /// of one group come in order, and not while an earlier one of the group is in flight.
    /// A message received more than the queue's `max_receive_count` times is moved to the
    /// dead-letter queue instead (reason [`crate::queue::MAX_RECEIVES_EXCEEDED`]).
    fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> impl Future<Output = Result<Vec<Delivery>, StoreError>> + Send;

    /// Done with it: deletes the message. A stale receipt (the message was received again
    /// by someone else since) is `NotFound`.
    fn ack(&self, queue: &str, receipt: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes the message visible again after `delay` (0: at once): a retry with backoff,
    /// since FIFO queues have no per-message delay.
    fn retry_after(
        &self,
        queue: &str,
        receipt: &str,
        delay: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Still at work on it: hides the message for `duration` more, from now (work that
    /// outlasts the receive's visibility). SQS changes the visibility as for
    /// [`MessageQueue::retry_after`]; the embedded queue also remembers that the delivery
    /// is still held, so that a restart of the local stack takes it back at once, where a
    /// message handed back with `retry_after` keeps its delay.
    fn keep_hidden(
        &self,
        queue: &str,
        receipt: &str,
        duration: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.retry_after(queue, receipt, duration)
    }

    /// Returns once a message may have become visible (one was sent, or handed back at
    /// once), or after `max`: what a consumer that found its queues empty waits for. A
    /// backend that cannot tell waits `max`.
    fn wait_for_message(&self, max: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(max)
    }

    /// Moves the message to the queue's dead-letter queue with `reason` (see
    /// [`crate::queue::dead_letter_attributes`]) and deletes it from `queue`.
    fn dead_letter(
        &self,
        queue: &str,
        delivery: &Delivery,
        reason: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Applies a worker's [`Outcome`] to a delivery taken from `queue`, and says what
    /// became of it.
    fn settle(
        &self,
        queue: &str,
        delivery: &Delivery,
        outcome: Outcome,
    ) -> impl Future<Output = Result<Handled, StoreError>> + Send {
        async move {
            match outcome {
                Outcome::Done => self.ack(queue, &delivery.receipt).await.map(|()| Handled::Finished),
                Outcome::RetryAfter(delay) => {
                    self.retry_after(queue, &delivery.receipt, delay).await.map(|()| Handled::Retry)
                }
                Outcome::DeadLetter(reason) => {
                    tracing::error!(reason = %reason, queue, message_id = %delivery.message_id, "task dead-lettered");
                    self.dead_letter(queue, delivery, &reason).await.map(|()| Handled::Finished)
                }
            }
        }
    }
}

/// One value of a metric: `unit` is CloudWatch's (`Count`, `Milliseconds`, `Percent`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    pub name: &'static str,
    pub value: f64,
    pub unit: &'static str,
}

/// Where the domain's metrics go (CloudWatch Embedded Metric Format on AWS, nowhere by
/// default): `dimensions` name what the measurements are of (`[("Squad", "board")]`).
pub trait Metrics: Send + Sync + 'static {
    fn record(&self, dimensions: &[(&str, &str)], measurements: &[Measurement]);
}
