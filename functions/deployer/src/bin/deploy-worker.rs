//! The deploy worker: an SQS-triggered Lambda on the deploy queue, answering with the
//! records to retry (`ReportBatchItemFailures`).

use tdev_deployer::config::WorkerConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tdev_runtime::telemetry::init();
    let deployments = tdev_deployer::on_aws(WorkerConfig::from_env()?.deploy).await?;
    let queues = deployments.queue().clone();
    tdev_worker::lambda::serve(deployments, queues).await
}
