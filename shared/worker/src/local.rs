//! The local stack's consumer loop: polls a worker's queues in-process, as the template's
//! event source mappings do in Lambda.

use std::sync::Arc;
use std::time::Duration;

use tdev_domain::ports::MessageQueue;
use tdev_domain::queue::{Polling, QueueWorker};
use tokio::sync::watch;

/// The longest an idle consumer waits before it looks again (sooner when the queue says a
/// message arrived, or when told to stop).
const IDLE: Duration = Duration::from_millis(20);

/// Runs `consumers` loops for each of `worker`'s [`Polling`]s until `shutdown` turns true.
pub async fn consume<W: QueueWorker, Q: MessageQueue + Clone>(
    worker: Arc<W>,
    queue: Q,
    consumers: usize,
    shutdown: watch::Receiver<bool>,
) {
    let loops = worker.polling().into_iter().flat_map(|polling| {
        let (worker, queue, shutdown) = (worker.clone(), queue.clone(), shutdown.clone());
        (0..consumers.max(1))
            .map(move |_| poll(worker.clone(), queue.clone(), polling.clone(), shutdown.clone()))
    });
    futures::future::join_all(loops).await;
}

/// Takes from the first of `polling.queues` that has messages (so the urgent band goes
/// first) and runs the batch by the FIFO rule, until `shutdown` turns true.
async fn poll<W: QueueWorker, Q: MessageQueue>(
    worker: Arc<W>,
    queue: Q,
    polling: Polling,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        let mut worked = false;
        for name in &polling.queues {
            let batch = match queue.receive(name, polling.batch, polling.visibility).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, queue = %name, "could not receive");
                    Vec::new()
                }
            };
            if !batch.is_empty() {
                crate::run_batch(worker.as_ref(), &queue, name, batch).await;
                worked = true;
                break;
            }
        }
        if !worked {
            // Until a message arrives (the embedded queue says so at once), the poll
            // interval passes, or the loop is told to stop.
            let stop = std::pin::pin!(shutdown.changed());
            let arrival = std::pin::pin!(queue.wait_for_message(IDLE));
            futures::future::select(stop, arrival).await;
        }
    }
}
