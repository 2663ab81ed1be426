//! The deploy worker: takes deployment tasks from the deploy queue and hands them to the
//! pipeline. In Lambda, SQS delivers a batch (`ReportBatchItemFailures` answers the records
//! to retry); locally, consumer tasks poll the queue.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use tdev_domain::agents::{AgentInvoker, AgentStore};
use tdev_domain::deploy::{AgentDeployer, DEPLOY_QUEUE, DeploymentStore, Deployments};
use tdev_domain::ports::MessageQueue;
use tdev_domain::queue::Delivery;
use tdev_domain::runs::Outcome;
use tokio::sync::watch;

/// How much longer than the work budget a received task stays hidden, locally: the
/// pipeline hands a task back once its budget is spent, after the step under way.
const LOCAL_VISIBILITY_MARGIN: Duration = Duration::from_secs(20);

/// Processes and settles one task; true when it is finished with.
async fn handle<S, Q, D, I>(deployments: &Deployments<S, Q, D, I>, delivery: &Delivery) -> bool
where
    S: DeploymentStore + AgentStore,
    Q: MessageQueue,
    D: AgentDeployer,
    I: AgentInvoker,
{
    let outcome = deployments.process(delivery).await;
    let finished = !matches!(outcome, Outcome::RetryAfter(_));
    match deployments.settle(delivery, outcome).await {
        Ok(()) => finished,
        Err(e) => {
            tracing::warn!(error = %e, "could not settle a deploy task; it will come back");
            false
        }
    }
}

/// Handles one SQS batch.
pub async fn handle_batch<S, Q, D, I>(
    deployments: &Deployments<S, Q, D, I>,
    event: SqsEvent,
) -> SqsBatchResponse
where
    S: DeploymentStore + AgentStore,
    Q: MessageQueue,
    D: AgentDeployer,
    I: AgentInvoker,
{
    tdev_aws::fifo_batch(event, |delivery| async move { handle(deployments, &delivery).await }).await
}

/// Runs `workers` consumers of the deploy queue until `shutdown` turns true.
pub async fn consume<S, Q, D, I>(
    deployments: Arc<Deployments<S, Q, D, I>>,
    workers: usize,
    shutdown: watch::Receiver<bool>,
) where
    S: DeploymentStore + AgentStore,
    Q: MessageQueue,
    D: AgentDeployer,
    I: AgentInvoker,
{
    let visibility = deployments.config().work_budget + LOCAL_VISIBILITY_MARGIN;
    let consumers = (0..workers.max(1)).map(|_| {
        let deployments = deployments.clone();
        let mut shutdown = shutdown.clone();
        async move {
            while !*shutdown.borrow() {
                let batch = match deployments.queue().receive(DEPLOY_QUEUE, 1, visibility).await {
                    Ok(batch) => batch,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not receive deploy tasks");
                        Vec::new()
                    }
                };
                if batch.is_empty() {
                    let _ = tokio::time::timeout(Duration::from_millis(50), shutdown.changed()).await;
                }
                for delivery in batch {
                    handle(&deployments, &delivery).await;
                }
            }
        }
    });
    futures::future::join_all(consumers).await;
}
