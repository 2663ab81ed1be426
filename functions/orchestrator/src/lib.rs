//! The orchestrator function: workflow definitions and runs under `/v1`, and the step
//! worker that moves runs forward from the step queue (an SQS-triggered Lambda, or
//! in-process consumers in the local stack).

pub mod config;
mod routes;

pub use routes::{ApiDoc, OrchestratorStore, router};

use std::sync::Arc;

use aws_config::BehaviorVersion;
use tdev_aws::{AwsStore, SqsQueues};
use tdev_domain::SystemClock;
use tdev_domain::runs::{Engine, STEP_DEAD_LETTER_QUEUE, STEP_QUEUE};
use tdev_domain::workflow::Limits;
use tdev_invoke::{Invoker, default_http_client};

/// The engine as the orchestrator's Lambdas run it.
pub type AwsEngine = Engine<AwsStore, SqsQueues, Invoker>;

/// The engine on AWS, as both of the orchestrator's Lambdas (`orchestrator`,
/// `step-worker`) start it: the SDK's default configuration, the table (`TDEV_TABLE`),
/// the step queues (`TDEV_QUEUE_*`) and the invoker.
pub async fn on_aws(limits: Limits) -> anyhow::Result<AwsEngine> {
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let store = AwsStore::with_table_from_env(&sdk)?;
    let queues = SqsQueues::from_env(&sdk, &[STEP_QUEUE, STEP_DEAD_LETTER_QUEUE])?;
    let invoker = Invoker::new(default_http_client()?, Some(&sdk));
    Ok(Engine::new(store, queues, invoker, Arc::new(SystemClock), limits))
}

/// `engine` recording squad tasks' figures as EMF lines in `emf`'s namespace, if set.
pub fn with_emf(engine: AwsEngine, emf: Option<&tdev_runtime::metrics::EmfSettings>) -> AwsEngine {
    match emf {
        Some(emf) => {
            tdev_runtime::metrics::init(emf.clone());
            engine.with_metrics(Arc::new(tdev_runtime::metrics::Emf))
        }
        None => engine,
    }
}
