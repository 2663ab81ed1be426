//! The event log: what the API asks of events. It records an event and fans it out to the
//! subscriptions that want it, lists events, and administers subscriptions.
//!
//! Recording never fails the work an event describes: an event that cannot be appended is
//! logged and lost, one whose fan-out cannot be queued is logged and only recorded.
//!
//! # Fan-out
//!
//! When any subscription's pattern matches an event's type, one fan-out task is queued on
//! [`EVENT_QUEUE`], whatever the number of subscriptions. The event queue's consumer (the
//! messaging dispatcher, which settles its deliveries as it settles messages: retries with
//! backoff, failure notes, dead letters archived with the others) queues from it one
//! delivery per matching subscription ([`EventLog::queue_deliveries`]), each in the
//! subscription's own FIFO group, and delivers each through the `EventSink`: at least
//! once, in the order recorded, each subscriber at its own pace.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiff::Timestamp;

use super::model::{Event, EventFilter, EventPage, NewSubscription, Subscription, glob_match};
use super::ports::{EventStore, SubscriptionStore};
use crate::clock::Clock;
use crate::ports::{MessageQueue, StoreError};
use crate::queue::{NewMessage, Priority};
use crate::validation::ValidationErrors;

/// The queue event deliveries to subscribers travel on (one FIFO group per subscription).
pub const EVENT_QUEUE: &str = "events";
/// Its dead-letter queue, archived like the band queues' ones.
pub const EVENT_DEAD_LETTER_QUEUE: &str = "events-dlq";
/// How long the subscriptions are used before they are read again: a new subscription
/// gets events within this long.
const SUBSCRIPTION_CACHE: Duration = Duration::from_secs(5);

/// An event on the event queue: on its way to one subscriber, or (without a
/// subscription) to be fanned out to every subscription that matches it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct EventTask {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) subscription: Option<String>,
    pub(crate) event: Event,
}

/// The FIFO group of fan-out tasks: events reach the subscriptions in the order recorded.
const FAN_OUT_GROUP: &str = "fan-out";

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("invalid request: {0}")]
    Invalid(#[from] ValidationErrors),
    #[error("no subscription {0:?}")]
    SubscriptionNotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Records and lists events, and keeps the subscriptions (read again once 5 seconds old:
/// a new subscription gets events within that).
pub struct EventLog<S> {
    store: S,
    clock: Arc<dyn Clock>,
    subscriptions: RwLock<Option<(Arc<Vec<Subscription>>, Timestamp)>>,
}

impl<S: EventStore + SubscriptionStore> EventLog<S> {
    pub fn new(store: S, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock, subscriptions: RwLock::new(None) }
    }

    /// Appends an event and queues its fan-out on `queue`; a failure is logged, never
    /// fails the work the event describes.
    pub async fn record(
        &self,
        queue: &impl MessageQueue,
        kind: &str,
        subject: &str,
        data: serde_json::Value,
    ) {
        let event = Event::new(kind, subject, self.clock.now(), data);
        if let Err(e) = self.store.append_event(&event).await {
            tracing::warn!(error = %e, kind, subject, "could not record an event");
            return;
        }
        self.fan_out(queue, &event).await;
    }

    /// Queues one fan-out task for the event when any subscription may want it: the
    /// consumer then queues a delivery for each matching subscription (see
    /// `messaging::Dispatcher::deliver_event`). One send per event, however many subscriptions
    /// there are: a request that records many events does not pay for each subscriber.
    async fn fan_out(&self, queue: &impl MessageQueue, event: &Event) {
        let subscriptions = match self.current_subscriptions().await {
            Ok(subscriptions) => subscriptions,
            Err(e) => {
                tracing::warn!(error = %e, event = %event.id, "could not read subscriptions; the event is only recorded");
                return;
            }
        };
        if !subscriptions.iter().any(|s| glob_match(&s.pattern, &event.kind)) {
            return;
        }
        let body = EventTask { subscription: None, event: event.clone() };
        let message = NewMessage {
            group: FAN_OUT_GROUP.into(),
            dedup_id: format!("fan-out.{}", event.id),
            body: serde_json::to_string(&body).unwrap_or_default(),
            priority: Priority::DEFAULT,
            attributes: Default::default(),
        };
        if let Err(e) = queue.send(EVENT_QUEUE, message).await {
            tracing::warn!(error = %e, event = %event.id, "could not queue an event's fan-out");
        }
    }

    /// Queues the event for each subscription whose pattern matches it, in its own FIFO
    /// group; a send that fails makes the whole fan-out retried (the deliveries already
    /// queued are deduplicated by their ids).
    pub(crate) async fn queue_deliveries(
        &self,
        queue: &impl MessageQueue,
        event: &Event,
    ) -> Result<(), StoreError> {
        let subscriptions = self.current_subscriptions().await?;
        for subscription in subscriptions.iter().filter(|s| glob_match(&s.pattern, &event.kind)) {
            let body = EventTask { subscription: Some(subscription.id.clone()), event: event.clone() };
            let message = NewMessage {
                group: subscription.id.clone(),
                dedup_id: format!("{}.{}", subscription.id, event.id),
                body: serde_json::to_string(&body).unwrap_or_default(),
                priority: Priority::DEFAULT,
                attributes: Default::default(),
            };
            queue.send(EVENT_QUEUE, message).await?;
        }
        Ok(())
    }

    /// Every subscription, as read at most `SUBSCRIPTION_CACHE` ago.
    pub(crate) async fn current_subscriptions(&self) -> Result<Arc<Vec<Subscription>>, StoreError> {
        let now = self.clock.now();
        let cached = self.subscriptions.read().unwrap_or_else(|e| e.into_inner()).clone();
        let age = |at: Timestamp| Duration::try_from(now.duration_since(at)).unwrap_or(Duration::ZERO);
        if let Some((subscriptions, at)) = cached
            && age(at) < SUBSCRIPTION_CACHE
        {
            return Ok(subscriptions);
        }
        let subscriptions = Arc::new(self.store.list_subscriptions().await?);
        *self.subscriptions.write().unwrap_or_else(|e| e.into_inner()) = Some((subscriptions.clone(), now));
        Ok(subscriptions)
    }

    pub async fn subscribe(&self, request: NewSubscription) -> Result<Subscription, EventError> {
        let subscription = request.validate(uuid::Uuid::new_v4().simple().to_string(), self.clock.now())?;
        self.store.insert_subscription(&subscription).await?;
        *self.subscriptions.write().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(subscription)
    }

    pub async fn subscriptions(&self) -> Result<Vec<Subscription>, EventError> {
        Ok(self.store.list_subscriptions().await?)
    }

    pub async fn unsubscribe(&self, id: &str) -> Result<(), EventError> {
        match self.store.delete_subscription(id).await {
            Ok(()) => {
                *self.subscriptions.write().unwrap_or_else(|e| e.into_inner()) = None;
                Ok(())
            }
            Err(StoreError::NotFound) => Err(EventError::SubscriptionNotFound(id.into())),
            Err(e) => Err(e.into()),
        }
    }

    /// The events `filter` asks for, oldest first.
    pub async fn list(&self, filter: &EventFilter) -> Result<Vec<Event>, EventError> {
        Ok(self.store.list_events(filter).await?)
    }

    /// At most `limit` events appended after `cursor` (none: from now on), in the order
    /// appended; a cursor the log never gave is refused at `path`.
    pub async fn after(
        &self,
        cursor: Option<&str>,
        limit: usize,
        path: &str,
    ) -> Result<EventPage, EventError> {
        match self.store.events_after(cursor, limit).await {
            Err(StoreError::NotFound) => Err(EventError::Invalid(ValidationErrors::single(
                path,
                "not an event id this server gave (an event stream's `id`)",
            ))),
            page => Ok(page?),
        }
    }
}
