//! What every T-Developer process starts with, HTTP function, queue worker or the local
//! stack alike: JSON logs ([`telemetry`]), CloudWatch EMF metrics ([`metrics`]) and
//! settings from the environment ([`env`] for one variable, [`settings`] for an area's).
//! No AWS SDK, no HTTP.

pub mod env;
pub mod metrics;
pub mod settings;
pub mod telemetry;
