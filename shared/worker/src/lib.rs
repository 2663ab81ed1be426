//! Inbound glue for queue workers. An area's queue side implements
//! [`QueueWorker`](tdev_domain::queue::QueueWorker) (process one delivery, settle it);
//! this crate runs it as a Lambda on SQS batches ([`lambda::serve`], each batch through
//! [`lambda::handle_batch`]) or from the local stack's consumer loop ([`local::consume`]),
//! both through [`run_batch`], the one FIFO partial-batch rule.
//!
//! The rule: a batch's FIFO groups run in parallel, each group's deliveries in order. Once
//! a delivery of a group is not finished, the group's later deliveries in the batch are
//! not processed: they are released at once (visible again) and reported unfinished. The
//! queue keeps a group's order while the unfinished one is hidden, so they come back right
//! behind it rather than after their own visibility timeout. A delivery that appears twice
//! in one batch is handled once.

pub mod lambda;
pub mod local;

use std::collections::HashSet;
use std::time::Duration;

use tdev_domain::ports::MessageQueue;
use tdev_domain::queue::{Delivery, Handled, QueueWorker};

/// Runs `deliveries`, received from `queue_name` on `queue`, through `worker` by the FIFO
/// rule (see the crate doc). Returns the message ids not finished, to retry.
pub async fn run_batch<W: QueueWorker, Q: MessageQueue>(
    worker: &W,
    queue: &Q,
    queue_name: &str,
    deliveries: Vec<Delivery>,
) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut groups: Vec<(String, Vec<Delivery>)> = Vec::new();
    for delivery in deliveries.into_iter().filter(|d| seen.insert(d.message_id.clone())) {
        match groups.iter_mut().find(|(group, _)| *group == delivery.group) {
            Some((_, members)) => members.push(delivery),
            None => groups.push((delivery.group.clone(), vec![delivery])),
        }
    }
    let per_group = groups.into_iter().map(|(_, members)| async move {
        let mut unfinished = Vec::new();
        for delivery in members {
            if unfinished.is_empty() {
                let handled = worker.handle(queue_name, &delivery).await;
                if handled == Handled::Archived {
                    tdev_runtime::metrics::count("MessagesDeadLettered", 1);
                }
                if !handled.finished() {
                    unfinished.push(delivery.message_id);
                }
            } else {
                // Behind an unfinished delivery of its group: back at once, still behind it.
                if let Err(e) = queue.retry_after(queue_name, &delivery.receipt, Duration::ZERO).await {
                    tracing::debug!(error = %e, "could not release a delivery; it comes back after its visibility timeout");
                }
                unfinished.push(delivery.message_id);
            }
        }
        unfinished
    });
    futures::future::join_all(per_group).await.into_iter().flatten().collect()
}
