//! Domain events: an append-only record of what happened (a message accepted, routed,
//! delivered, failed, dead-lettered; later runs and deployments), listed by type and time,
//! and delivered to the subscriptions whose pattern matches.
//!
//! `model.rs` is what an event and a subscription are, `ports.rs` what events need from
//! the world, `service.rs` the [`EventLog`] (its module docs say how an event reaches its
//! subscribers). Delivering an event from the event queue is settled as a message's
//! delivery is, so the messaging dispatcher consumes the event queue (messaging is above
//! events, and uses the log); events has no `worker.rs` of its own.

mod model;
mod ports;
mod service;

pub use model::{
    CLOUDEVENTS_JSON, DATA_CONTENT_TYPE, DEFAULT_WINDOW_DAYS, Event, EventFilter, EventPage, NewSubscription,
    SPEC_VERSION, Subscription, SubscriptionTarget, glob_match, source_of,
};
pub use ports::{EventSink, EventStore, SubscriptionStore};
pub(crate) use service::EventTask;
pub use service::{EVENT_DEAD_LETTER_QUEUE, EVENT_QUEUE, EventError, EventLog};
