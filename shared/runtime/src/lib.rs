//! What every T-Developer process starts with, HTTP function, queue worker or the local
//! stack alike: JSON logs ([`telemetry`]), CloudWatch EMF metrics ([`metrics`]) and
//! settings from the environment ([`env`]). No AWS SDK, no HTTP.

pub mod env;
pub mod metrics;
pub mod telemetry;
