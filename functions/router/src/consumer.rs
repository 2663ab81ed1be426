//! The message consumer: takes messages from the priority band queues and hands them to
//! the dispatcher; archives what reaches the dead-letter queues.
//!
//! In Lambda, SQS delivers a batch from one queue (an event source mapping per band and
//! per dead-letter queue); the answer lists the records to retry
//! (`ReportBatchItemFailures`). On a FIFO queue, once a record of a group is not finished,
//! the group's later records in the batch are not processed: they are made visible again
//! at once and reported as failures, so order holds and they come back right behind it.
//! The event queue (deliveries to subscribers) is consumed the same way, and its
//! dead-letter queue archived with the bands'. Locally, a few consumer tasks poll the band
//! queues, most urgent first, then the event queue, and one task archives the dead-letter
//! queues.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use tdev_domain::agents::AgentInvoker;
use tdev_domain::events::{EVENT_DEAD_LETTER_QUEUE, EVENT_QUEUE, EventSink};
use tdev_domain::messaging::{Dispatcher, Disposition, MessagingStore};
use tdev_domain::ports::MessageQueue;
use tdev_domain::queue::Delivery;
use tokio::sync::watch;

/// How long a received message stays hidden while it is processed, locally.
const LOCAL_VISIBILITY: Duration = Duration::from_secs(60);

/// What one delivery came to.
enum Handled {
    /// Done with: acknowledged, dead-lettered, archived or re-sent.
    Finished,
    /// To be retried (its visibility already set).
    Retry,
}

/// Processes one delivery from `queue`: a band queue's through the dispatcher, a
/// dead-letter queue's into the archive.
async fn handle<S, Q, I>(dispatcher: &Dispatcher<S, Q, I>, queue: &str, delivery: &Delivery) -> Handled
where
    S: MessagingStore,
    Q: MessageQueue,
    I: AgentInvoker + EventSink,
{
    if delivery.reclaimed {
        // The dispatcher also records why for a band's message (it can read the envelope).
        tracing::info!(
            queue,
            message_id = %delivery.message_id,
            receive_count = delivery.receive_count,
            "delivered again: the previous process stopped while handling it (reclaimed at start-up)"
        );
    }
    let bands = &dispatcher.messenger().config().bands;
    if queue == EVENT_DEAD_LETTER_QUEUE || bands.bands().iter().any(|band| band.dead_letter_queue == queue) {
        return match dispatcher.archive(queue, delivery).await {
            Ok(()) => {
                tdev_http::metrics::count("MessagesDeadLettered", 1);
                Handled::Finished
            }
            Err(e) => {
                tracing::error!(error = %e, queue, message_id = %delivery.message_id, "could not archive a dead letter");
                Handled::Retry
            }
        };
    }
    let disposition = if queue == EVENT_QUEUE {
        dispatcher.deliver_event(delivery).await
    } else {
        dispatcher.process(queue, delivery).await
    };
    let finished = matches!(disposition, Disposition::Done | Disposition::DeadLetter { .. })
        || matches!(disposition, Disposition::Hold(_) if delivery.receive_count + 1 >= dispatcher.messenger().config().max_receives);
    match dispatcher.settle(queue, delivery, disposition).await {
        Ok(()) if finished => Handled::Finished,
        Ok(()) => Handled::Retry,
        Err(e) => {
            tracing::warn!(error = %e, queue, message_id = %delivery.message_id, "could not settle a message; it will come back");
            Handled::Retry
        }
    }
}

/// Processes deliveries of one queue, groups in parallel and each group in order; after
/// a delivery of a group is not finished, the group's later ones are released unprocessed.
/// Returns the message ids not finished.
async fn handle_all<S, Q, I>(
    dispatcher: &Dispatcher<S, Q, I>,
    queue: &str,
    deliveries: Vec<Delivery>,
) -> Vec<String>
where
    S: MessagingStore,
    Q: MessageQueue,
    I: AgentInvoker + EventSink,
{
    let mut groups: Vec<(String, Vec<Delivery>)> = Vec::new();
    for delivery in deliveries {
        match groups.iter_mut().find(|(group, _)| *group == delivery.group) {
            Some((_, members)) => members.push(delivery),
            None => groups.push((delivery.group.clone(), vec![delivery])),
        }
    }
    let per_group = groups.into_iter().map(|(_, members)| async move {
        let mut unfinished = Vec::new();
        for delivery in members {
            if unfinished.is_empty() {
                if let Handled::Retry = handle(dispatcher, queue, &delivery).await {
                    unfinished.push(delivery.message_id.clone());
                }
            } else {
                // Behind a retried message of its group: back at once, still behind it.
                let released = dispatcher.messenger().queue().retry_after(queue, &delivery.receipt, Duration::ZERO);
                if let Err(e) = released.await {
                    tracing::debug!(error = %e, "could not release a message; it comes back after its visibility timeout");
                }
                unfinished.push(delivery.message_id.clone());
            }
        }
        unfinished
    });
    futures::future::join_all(per_group).await.into_iter().flatten().collect()
}

/// Handles one Lambda SQS batch. `queue_of` names the queue of a record's
/// `eventSourceARN` (every record of a batch comes from one queue).
pub async fn handle_batch<S, Q, I>(
    dispatcher: &Dispatcher<S, Q, I>,
    queue_of: impl Fn(&str) -> Option<String>,
    event: SqsEvent,
) -> SqsBatchResponse
where
    S: MessagingStore,
    Q: MessageQueue,
    I: AgentInvoker + EventSink,
{
    let mut failed: Vec<String> = Vec::new();
    let mut by_queue: Vec<(String, Vec<Delivery>)> = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        match read(&record, &queue_of) {
            Some((queue, delivery)) => match by_queue.iter_mut().find(|(q, _)| *q == queue) {
                Some((_, deliveries)) => deliveries.push(delivery),
                None => by_queue.push((queue, vec![delivery])),
            },
            // Unreadable, or from a queue we do not know: the redrive policy takes it.
            None => failed.push(id),
        }
    }
    for (queue, deliveries) in by_queue {
        failed.extend(handle_all(dispatcher, &queue, deliveries).await);
    }
    tdev_aws::batch_failures(failed)
}

fn read(record: &SqsMessage, queue_of: &impl Fn(&str) -> Option<String>) -> Option<(String, Delivery)> {
    let arn = record.event_source_arn.as_deref().unwrap_or_default();
    let Some(queue) = queue_of(arn) else {
        tracing::error!(arn, "a record from an unknown queue");
        return None;
    };
    match tdev_aws::delivery_from_event(record) {
        Ok(delivery) => Some((queue, delivery)),
        Err(e) => {
            tracing::error!(error = %e, "unreadable SQS record");
            None
        }
    }
}

/// Runs `workers` consumers of the band queues, and one archiver of the dead-letter
/// queues, until `shutdown` turns true.
pub async fn consume<S, Q, I>(
    dispatcher: Arc<Dispatcher<S, Q, I>>,
    workers: usize,
    shutdown: watch::Receiver<bool>,
) where
    S: MessagingStore,
    Q: MessageQueue,
    I: AgentInvoker + EventSink,
{
    let bands = dispatcher.messenger().config().bands.clone();
    let consumers = (0..workers.max(1)).map(|_| {
        let dispatcher = dispatcher.clone();
        // The band queues, most urgent first, then event deliveries.
        let queues: Vec<String> =
            bands.bands().iter().map(|band| band.queue.clone()).chain([EVENT_QUEUE.to_owned()]).collect();
        poll(dispatcher, queues, shutdown.clone())
    });
    let dead_letter_queues = bands
        .bands()
        .iter()
        .map(|band| band.dead_letter_queue.clone())
        .chain([EVENT_DEAD_LETTER_QUEUE.to_owned()])
        .collect();
    let archiver = poll(dispatcher.clone(), dead_letter_queues, shutdown.clone());
    futures::future::join(futures::future::join_all(consumers), archiver).await;
}

/// Polls `queues` in order, taking from the first that has messages (so the urgent band
/// goes first), until `shutdown` turns true.
async fn poll<S, Q, I>(
    dispatcher: Arc<Dispatcher<S, Q, I>>,
    queues: Vec<String>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: MessagingStore,
    Q: MessageQueue,
    I: AgentInvoker + EventSink,
{
    while !*shutdown.borrow() {
        let mut worked = false;
        for queue in &queues {
            let batch = match dispatcher.messenger().queue().receive(queue, 10, LOCAL_VISIBILITY).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, queue, "could not receive messages");
                    Vec::new()
                }
            };
            if !batch.is_empty() {
                handle_all(&dispatcher, queue, batch).await;
                worked = true;
                break;
            }
        }
        if !worked {
            // Idle: look again shortly, or stop at once when told to.
            let _ = tokio::time::timeout(Duration::from_millis(20), shutdown.changed()).await;
        }
    }
}
