//! What events need from the world: the event log, the subscriptions, and the sink that
//! delivers an event to a subscriber.

use std::future::Future;
use std::time::Duration;

use super::model::{Event, EventFilter, EventPage, Subscription, SubscriptionTarget};
use crate::agents::InvokeError;
use crate::ports::StoreError;

/// The append-only event log.
pub trait EventStore: Send + Sync + 'static {
    fn append_event(&self, event: &Event) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Matching events, oldest first (by `at`, then `id`), at most `filter.limit`. Without
    /// `since`, the 7 days before `until` (or now); nothing later than the end of tomorrow
    /// (UTC) is listed.
    fn list_events(
        &self,
        filter: &EventFilter,
    ) -> impl Future<Output = Result<Vec<Event>, StoreError>> + Send;

    /// At most `limit` events appended after `cursor`, in the order appended, each with
    /// the cursor that resumes after it; `None`: from now on (no event, the cursor of
    /// now). A cursor is opaque to callers and stays valid as long as its event is kept;
    /// one this store never gave is `NotFound`.
    fn events_after(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<EventPage, StoreError>> + Send;
}

/// Event subscriptions.
pub trait SubscriptionStore: Send + Sync + 'static {
    /// `Conflict` if the id is taken.
    fn insert_subscription(
        &self,
        subscription: &Subscription,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every subscription, by id.
    fn list_subscriptions(&self) -> impl Future<Output = Result<Vec<Subscription>, StoreError>> + Send;

    /// `NotFound` if there is none.
    fn delete_subscription(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Delivers an event to a subscriber: a webhook or an SQS queue.
pub trait EventSink: Send + Sync + 'static {
    fn deliver(
        &self,
        target: &SubscriptionTarget,
        event: &Event,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), InvokeError>> + Send;
}
