//! The auth function: API keys and token exchange over HTTP, and the Lambda authorizer
//! that checks every request before any function runs.

pub mod authorizer;
pub mod config;
mod routes;

pub use routes::{ApiDoc, AuthStore, router};
