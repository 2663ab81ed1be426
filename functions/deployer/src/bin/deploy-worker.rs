//! The deploy worker: an SQS-triggered Lambda on the deploy queue, answering with the
//! records to retry (`ReportBatchItemFailures`).

use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use tdev_aws::{AwsStore, SqsQueues};
use tdev_deployer::config::WorkerConfig;
use tdev_domain::SystemClock;
use tdev_domain::deploy::{DEPLOY_DEAD_LETTER_QUEUE, DEPLOY_QUEUE, Deployments};
use tdev_invoke::{Invoker, default_http_client};
use tdev_targets::AwsTargets;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tdev_runtime::telemetry::init();
    let config = WorkerConfig::from_env()?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let store = AwsStore::with_table_from_env(&sdk)?;
    let queues = SqsQueues::from_env(&sdk, &[DEPLOY_QUEUE, DEPLOY_DEAD_LETTER_QUEUE])?;
    let invoker = Invoker::new(default_http_client()?, Some(&sdk));
    let deployments = Arc::new(Deployments::new(
        store,
        queues,
        AwsTargets::new(&sdk),
        invoker,
        Arc::new(SystemClock),
        config.deploy,
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let deployments = deployments.clone();
        async move {
            let queues = deployments.queue();
            Ok::<_, lambda_runtime::Error>(
                tdev_worker::lambda::handle_batch(&*deployments, queues, event.payload).await,
            )
        }
    }))
    .await
}
