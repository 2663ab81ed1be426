//! What every function's HTTP surface shares: errors as problem+json, JSON bodies with
//! field paths, the authentication guard and rate limits, request ids and request metrics.
//!
//! A function builds its `/v1` routes, wraps them in [`guard::layer`], and hands the
//! result to [`app::finish`], which adds the layers every response passes through.

pub mod app;
pub mod docs;
pub mod document;
pub mod guard;
pub mod json;
pub mod metrics;
pub mod problem;
pub mod query;
pub mod request_id;

pub use guard::Caller;
pub use json::ApiJson;
pub use problem::{ApiError, Problem};
pub use query::ApiQuery;
