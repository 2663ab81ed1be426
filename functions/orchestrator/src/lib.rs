//! The orchestrator function: workflow definitions and runs under `/v1`, and the step
//! worker that moves runs forward from the step queue (an SQS-triggered Lambda, or
//! in-process consumers in the local stack).

pub mod config;
mod routes;

pub use routes::{ApiDoc, OrchestratorStore, router};
