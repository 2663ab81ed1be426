//! What messaging needs from the world beyond the queue and the secrets: one effect per
//! idempotency key, each agent's load and breaker, and the dead-letter archive.

use std::future::Future;

use jiff::Timestamp;

use super::breaker::Breaker;
use super::dead_letters::{DeadLetter, DeadLetterFilter, FailureNote};
use crate::agents::AgentStore;
use crate::events::{EventStore, SubscriptionStore};
use crate::ports::{SecretStore, StoreError};

/// What [`IdempotencyStore::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the key until its lease ends: do the work, then complete or release.
    Acquired,
    /// The work was done already: do nothing.
    Done,
    /// Someone else holds the key until then: try again later.
    Busy { until: Timestamp },
}

/// One effect per idempotency key: a conditional put with an expiry.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key` for `holder` until `lease_until`: `Acquired` if there is no record, or
    /// only an unfinished one whose lease ended before `now`.
    fn claim(
        &self,
        key: &str,
        holder: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Marks the work done, remembered until `keep_until` (then the record may expire).
    /// `Conflict` if `holder` no longer holds the key.
    fn complete(
        &self,
        key: &str,
        holder: &str,
        keep_until: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives the key up, the work undone: the next claim acquires it at once. Harmless
    /// when `holder` no longer holds it.
    fn release(&self, key: &str, holder: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Per-agent load: leased slots of work in flight, and the circuit breaker. Shared by every
/// consumer.
///
/// A slot is held by one holder (a delivery attempt) until its lease ends. A lease is live
/// through its last instant; one that ran out no longer counts, so a consumer that dies
/// holding a slot holds it no longer than its lease.
pub trait AgentLoadStore: Send + Sync + 'static {
    /// Takes one of the agent's `max` slots for `holder` until `lease_until`, unless `max`
    /// slots are held by others with leases live at `now`: `Ok(false)` then. A holder
    /// with a live slot keeps it, its lease now ending at `lease_until`. A backend that
    /// decides by optimistic writes may answer `Conflict` after losing many races in a row.
    fn acquire_slot(
        &self,
        agent: &str,
        holder: &str,
        max: u32,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives `holder`'s slot back. Harmless when it holds none (given back already, or
    /// its lease ran out).
    fn release_slot(&self, agent: &str, holder: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The agent's slots whose leases are live at `now` (0 when never recorded).
    fn in_flight(&self, agent: &str, now: Timestamp) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// The agent's breaker; `None` if never stored (a closed one).
    fn get_breaker(&self, agent: &str) -> impl Future<Output = Result<Option<Breaker>, StoreError>> + Send;

    /// Stores `breaker` (its `version` already bumped) if the stored one is at
    /// `breaker.version - 1` (none stored counts as version 0); `Conflict` otherwise.
    fn put_breaker(
        &self,
        agent: &str,
        breaker: &Breaker,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The version check of [`AgentLoadStore::put_breaker`], the same on every backend.
impl Breaker {
    /// The version the stored breaker must be at for this one to be written over it: 0
    /// means none may be stored (the write is a create). Version 0 is a breaker never
    /// stored, with nothing to write it over: the write's `Conflict` at once.
    pub fn expected_stored_version(&self, agent: &str) -> Result<u64, StoreError> {
        self.version.checked_sub(1).ok_or_else(|| self.stale(agent))
    }

    /// The `Conflict` of a write of this breaker that found the stored one at another
    /// version than [`Self::expected_stored_version`].
    pub fn stale(&self, agent: &str) -> StoreError {
        StoreError::Conflict(format!(
            "the breaker of {agent} is not at version {}",
            self.version.wrapping_sub(1)
        ))
    }
}

/// The dead-letter archive, and the failure notes that feed it.
pub trait DeadLetterStore: Send + Sync + 'static {
    /// Archives a dead letter; `Conflict` if one with its id exists (each is archived once).
    fn put_dead_letter(
        &self,
        dead_letter: &DeadLetter,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_dead_letter(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<DeadLetter>, StoreError>> + Send;

    /// Oldest first (by `dead_lettered_at`, then id), at most `filter.limit`.
    fn list_dead_letters(
        &self,
        filter: &DeadLetterFilter,
    ) -> impl Future<Output = Result<Vec<DeadLetter>, StoreError>> + Send;

    /// Writes `dead_letter` (version already bumped) if the stored one is at
    /// `version - 1`; `Conflict` otherwise, `NotFound` if there is none.
    fn update_dead_letter(
        &self,
        dead_letter: &DeadLetter,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// `NotFound` if there is none.
    fn delete_dead_letter(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds one failed delivery of message `id` (first/last time, count, last reason);
    /// notes may expire after a day.
    fn note_failure(
        &self,
        id: &str,
        reason: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn failures(&self, id: &str) -> impl Future<Output = Result<Option<FailureNote>, StoreError>> + Send;
}

/// The version check of [`DeadLetterStore::update_dead_letter`], the same on every backend.
impl DeadLetter {
    /// The version the stored dead letter must be at for this one to be written over it;
    /// `None` for version 0, which was never stored and so replaces nothing.
    pub fn expected_stored_version(&self) -> Option<u64> {
        self.version.checked_sub(1)
    }

    /// The `Conflict` of an update that found the stored one at another version.
    pub fn stale(&self) -> StoreError {
        StoreError::Conflict(format!("dead letter {} changed", self.id))
    }
}

/// Every port messaging uses.
pub trait MessagingStore:
    AgentStore
    + SecretStore
    + IdempotencyStore
    + AgentLoadStore
    + DeadLetterStore
    + EventStore
    + SubscriptionStore
    + Clone
{
}
impl<T> MessagingStore for T where
    T: AgentStore
        + SecretStore
        + IdempotencyStore
        + AgentLoadStore
        + DeadLetterStore
        + EventStore
        + SubscriptionStore
        + Clone
{
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breaker_is_written_over_the_version_before_it() {
        let first = Breaker { version: 1, ..Breaker::default() };
        assert_eq!(first.expected_stored_version("a").ok(), Some(0), "version 1 is a create");
        let later = Breaker { version: 7, ..Breaker::default() };
        assert_eq!(later.expected_stored_version("a").ok(), Some(6));
        assert!(
            matches!(&later.stale("a"), StoreError::Conflict(why) if why == "the breaker of a is not at version 6")
        );
    }

    #[test]
    fn a_dead_letter_is_written_over_the_version_before_it() {
        let at = Timestamp::UNIX_EPOCH;
        let dead_letter = |version| DeadLetter {
            id: "m1".into(),
            source_queue: "steps".into(),
            reason: "malformed".into(),
            detail: None,
            attempts: 1,
            first_failure_at: None,
            last_failure_at: None,
            dead_lettered_at: at,
            message: crate::messaging::QueuedMessage {
                group: "g".into(),
                dedup_id: "d".into(),
                body: "b".into(),
                priority: crate::queue::Priority::DEFAULT,
                attributes: Default::default(),
            },
            state: crate::messaging::DeadLetterState::Dead,
            version,
        };
        assert_eq!(dead_letter(2).expected_stored_version(), Some(1));
        assert_eq!(dead_letter(0).expected_stored_version(), None, "version 0 replaces nothing");
        assert!(
            matches!(dead_letter(2).stale(), StoreError::Conflict(why) if why == "dead letter m1 changed")
        );
    }

    #[test]
    fn a_breaker_never_stored_is_written_over_nothing() {
        let result = Breaker::default().expected_stored_version("a");
        assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    }
}
