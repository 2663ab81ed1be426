//! The pure domain of T-Developer: types and rules with no AWS SDK and no I/O.
//!
//! Adapters (`tdev-embedded`, `tdev-aws`) implement the [`ports`]; functions compose
//! them with the services here.

pub mod agents;
pub mod auth;
pub mod bounded;
pub mod clock;
pub mod deploy;
pub mod events;
pub mod health;
pub mod messaging;
pub mod ports;
pub mod queue;
pub mod runs;
pub mod strict;
pub mod validation;
pub mod workflow;
pub mod yaml;

pub use clock::{Clock, ManualClock, SystemClock};
