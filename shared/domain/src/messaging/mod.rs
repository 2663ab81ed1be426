//! Messaging: what a message is, how it travels (the signed, optionally encrypted
//! envelope on priority band queues), how it is routed to an agent, and what happens to
//! the ones that cannot be delivered.
//!
//! The model: [`Message`] and its request (`message.rs`), the priority [`Bands`], the
//! per-agent [`Breaker`], [`routing`](candidates) among agents, [`DeadLetter`]s, and the
//! [`envelope`] (public: the specification producers follow). `ports.rs` declares what
//! messaging needs from the world, `keys.rs` caches the envelope keys, `service.rs` is
//! what the API asks ([`Messenger`]) and `worker.rs` what a queue delivery asks
//! ([`Dispatcher`], whose module docs say what happens to a delivery).

mod bands;
mod breaker;
mod dead_letters;
pub mod envelope;
mod keys;
mod message;
mod ports;
mod routing;
mod service;
mod worker;

pub use bands::{Band, Bands, BandsError, SINGLE_QUEUE};
pub use breaker::{Breaker, BreakerSettings, BreakerState};
pub use dead_letters::{DeadLetter, DeadLetterFilter, DeadLetterState, FailureNote, QueuedMessage};
pub use message::{MAX_ENVELOPE_BYTES, Message, PRIORITY, Recipient, SEND_MESSAGE, SendMessageRequest};
pub use ports::{AgentLoadStore, Claim, DeadLetterStore, IdempotencyStore, MessagingStore};
pub use routing::{NoRoute, candidates};
pub use service::{
    Accepted, DEFAULT_ENVELOPE_SECRET, MessagingConfig, MessagingError, Messenger, RedriveRequest, Redriven,
};
pub use worker::{Dispatcher, Disposition};
