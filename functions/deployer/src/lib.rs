//! The deployer function: agent deployments under `/v1/deployments` (create, list, get,
//! events, roll back) and the version history of a deployed agent; and the deploy worker,
//! which moves deployments through the pipeline from the deploy queue (an SQS-triggered
//! Lambda, or in-process consumers in the local stack).

pub mod config;
mod routes;

pub use routes::{ApiDoc, DeployerStore, router};
