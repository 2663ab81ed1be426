//! Domain events: an append-only record of what happened (a message accepted, routed,
//! delivered, failed, dead-lettered; later runs and deployments), listed by type and time.

mod model;
mod ports;
mod service;

pub use model::{Event, EventFilter, NewSubscription, Subscription, SubscriptionTarget, glob_match};
pub use ports::{EventSink, EventStore, SubscriptionStore};
pub(crate) use service::EventTask;
pub use service::{EVENT_DEAD_LETTER_QUEUE, EVENT_QUEUE, EventError, EventLog};
