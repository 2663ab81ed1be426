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

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tdev_runtime::telemetry::init();
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let store = AwsStore::with_table_from_env(&sdk)?;
    let queues = SqsQueues::from_env(&sdk, &[STEP_QUEUE, STEP_DEAD_LETTER_QUEUE])?;
    let invoker = Invoker::new(default_http_client()?, Some(&sdk));
    // An attempt must end before the Lambda does: the template sets this below the
    // function's timeout.
    let attempt = tdev_runtime::env::var_in("TDEV_ATTEMPT_TIMEOUT_SECONDS", 50u64, 1..=900)?;
    let limits = tdev_http::config::workflow_limits_from_env()?;
    let engine = Engine::new(store, queues, invoker, Arc::new(SystemClock), limits)
        .with_attempt_timeout(std::time::Duration::from_secs(attempt));
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
