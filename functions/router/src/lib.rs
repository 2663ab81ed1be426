//! The router function: the agent registry under `/v1/agents`. The routing issue adds
//! messages, capability routing and dead-letter administration here.

mod routes;

pub use routes::{ApiDoc, RouterStore, router};
