//! The step worker: takes step tasks from the queue and hands them to the engine.
//!
//! In Lambda, SQS delivers a batch; the answer lists the records to be retried
//! (`ReportBatchItemFailures`). On a FIFO queue, once a record of a group fails, the
//! group's later records in the batch are failed too, unprocessed, so order holds.
//! Locally, a few consumer tasks poll the embedded queue.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use tdev_domain::agents::{AgentInvoker, AgentStore};
use tdev_domain::events::EventStore;
use tdev_domain::ports::MessageQueue;
use tdev_domain::runs::{Engine, Outcome, RunStore, STEP_QUEUE, WorkflowStore};
use tokio::sync::watch;

/// Handles one SQS batch, groups in parallel and each group in order.
pub async fn handle_batch<S, Q, I>(engine: &Engine<S, Q, I>, event: SqsEvent) -> SqsBatchResponse
where
    S: RunStore + WorkflowStore + AgentStore + EventStore,
    Q: MessageQueue,
    I: AgentInvoker,
{
    tdev_aws::fifo_batch(event, |delivery| async move {
        let outcome = engine.process(&delivery).await;
        let finished = !matches!(outcome, Outcome::RetryAfter(_));
        match engine.settle(&delivery, outcome).await {
            Ok(()) => finished,
            Err(e) => {
                tracing::warn!(error = %e, "could not settle a task; it will come back");
                false
            }
        }
    })
    .await
}

/// Runs `workers` consumers of the step queue until `shutdown` turns true.
pub async fn consume<S, Q, I>(engine: Arc<Engine<S, Q, I>>, workers: usize, shutdown: watch::Receiver<bool>)
where
    S: RunStore + WorkflowStore + AgentStore + EventStore,
    Q: MessageQueue,
    I: AgentInvoker,
{
    let consumers = (0..workers.max(1)).map(|_| {
        let engine = engine.clone();
        let mut shutdown = shutdown.clone();
        async move {
            while !*shutdown.borrow() {
                let batch = match engine.queue().receive(STEP_QUEUE, 10, Duration::from_secs(30)).await {
                    Ok(batch) => batch,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not receive step tasks");
                        Vec::new()
                    }
                };
                if batch.is_empty() {
                    // Idle: look again shortly, or stop at once when told to.
                    let _ = tokio::time::timeout(Duration::from_millis(20), shutdown.changed()).await;
                    continue;
                }
                let mut seen = HashSet::new();
                let work = batch.into_iter().filter(|d| seen.insert(d.message_id.clone())).map(|delivery| {
                    let engine = engine.clone();
                    async move {
                        let outcome = engine.process(&delivery).await;
                        if let Err(e) = engine.settle(&delivery, outcome).await {
                            tracing::warn!(error = %e, "could not settle a task; it will come back");
                        }
                    }
                });
                futures::future::join_all(work).await;
            }
        }
    });
    futures::future::join_all(consumers).await;
}
