//! The step worker: an SQS-triggered Lambda on the step queue, answering with the records
//! to retry (`ReportBatchItemFailures`).

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use tdev_aws::{AwsStore, SqsQueues};
use tdev_domain::SystemClock;
use tdev_domain::runs::{Engine, STEP_DEAD_LETTER_QUEUE, STEP_QUEUE};
use tdev_invoke::{Invoker, default_http_client};
use tdev_orchestrator::config::WorkerConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tdev_runtime::telemetry::init();
    let config = WorkerConfig::from_env()?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let store = AwsStore::with_table_from_env(&sdk)?;
    let queues = SqsQueues::from_env(&sdk, &[STEP_QUEUE, STEP_DEAD_LETTER_QUEUE])?;
    let invoker = Invoker::new(default_http_client()?, Some(&sdk));
    let engine = Engine::new(store, queues, invoker, Arc::new(SystemClock), config.limits)
        .with_attempt_timeout(config.attempt_timeout);
    let engine = Arc::new(engine);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let engine = engine.clone();
        async move {
            let queues = engine.queue();
            Ok::<_, lambda_runtime::Error>(
                tdev_worker::lambda::handle_batch(&*engine, queues, event.payload).await,
            )
        }
    }))
    .await
}
