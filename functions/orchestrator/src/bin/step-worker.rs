//! The step worker: an SQS-triggered Lambda on the step queue, answering with the records
//! to retry (`ReportBatchItemFailures`).

use tdev_orchestrator::config::WorkerConfig;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tdev_runtime::telemetry::init();
    let config = WorkerConfig::from_env()?;
    let engine = tdev_orchestrator::on_aws(config.limits).await?.with_attempt_timeout(config.attempt_timeout);
    let engine = tdev_orchestrator::with_emf(engine, config.metrics.as_ref());
    let queues = engine.queue().clone();
    tdev_worker::lambda::serve(engine, queues).await
}
