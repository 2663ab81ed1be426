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
use tdev_domain::ports::{AgentInvoker, AgentStore, MessageQueue, RunStore, WorkflowStore};
use tdev_domain::runs::{Engine, Outcome, STEP_QUEUE};
use tokio::sync::watch;

/// Handles one SQS batch, groups in parallel and each group in order.
pub async fn handle_batch<S, Q, I>(engine: &Engine<S, Q, I>, event: SqsEvent) -> SqsBatchResponse
where
    S: RunStore + WorkflowStore + AgentStore,
    Q: MessageQueue,
    I: AgentInvoker,
{
    let mut groups: Vec<(String, Vec<aws_lambda_events::sqs::SqsMessage>)> = Vec::new();
    for record in event.records {
        let group = record.attributes.get("MessageGroupId").cloned().unwrap_or_default();
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, records)) => records.push(record),
            None => groups.push((group, vec![record])),
        }
    }
    let per_group = groups.into_iter().map(|(_, records)| async move {
        let mut failed = Vec::new();
        for record in records {
            let id = record.message_id.clone().unwrap_or_default();
            if !failed.is_empty() || !handle_record(engine, &record).await {
                failed.push(id);
            }
        }
        failed
    });
    let failed: Vec<String> = futures::future::join_all(per_group).await.into_iter().flatten().collect();
    tdev_aws::batch_failures(failed)
}

/// True when the record is finished with (done or dead-lettered); false to retry it.
async fn handle_record<S, Q, I>(engine: &Engine<S, Q, I>, record: &aws_lambda_events::sqs::SqsMessage) -> bool
where
    S: RunStore + WorkflowStore + AgentStore,
    Q: MessageQueue,
    I: AgentInvoker,
{
    let delivery = match tdev_aws::delivery_from_event(record) {
        Ok(delivery) => delivery,
        Err(e) => {
            // Unreadable: leave it to the queue's redrive policy, which dead-letters it.
            tracing::error!(error = %e, "unreadable SQS record");
            return false;
        }
    };
    let outcome = engine.process(&delivery).await;
    let finished = !matches!(outcome, Outcome::RetryAfter(_));
    match engine.settle(&delivery, outcome).await {
        Ok(()) => finished,
        Err(e) => {
            tracing::warn!(error = %e, "could not settle a task; it will come back");
            false
        }
    }
}

/// Runs `workers` consumers of the step queue until `shutdown` turns true.
pub async fn consume<S, Q, I>(engine: Arc<Engine<S, Q, I>>, workers: usize, shutdown: watch::Receiver<bool>)
where
    S: RunStore + WorkflowStore + AgentStore,
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
