//! Messaging: what a message is, how it travels (the signed, optionally encrypted
//! envelope on priority band queues), how it is routed to an agent, and what happens to
//! the ones that cannot be delivered.

pub mod bands;
pub mod breaker;
pub mod dead_letters;
pub mod envelope;
pub mod message;
mod ports;
pub mod routing;
pub mod service;

pub use bands::{Band, Bands};
pub use breaker::{Breaker, BreakerSettings, BreakerState};
pub use dead_letters::{DeadLetter, DeadLetterFilter, DeadLetterState, FailureNote};
pub use message::{Message, Recipient, SendMessageRequest};
pub use ports::{AgentLoadStore, Claim, DeadLetterStore, IdempotencyStore, MessagingStore};
pub use service::{
    Dispatcher, Disposition, EVENT_DEAD_LETTER_QUEUE, EVENT_QUEUE, MessagingConfig, MessagingError, Messenger,
};
