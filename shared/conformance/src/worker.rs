//! The one FIFO partial-batch rule (`tdev_worker::run_batch`), checked on a real queue:
//! groups in parallel, each in order; once a delivery of a group is not finished, the
//! group's later deliveries are not processed but released at once, so they come back
//! right behind it, not after their visibility timeout.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tdev_domain::ports::MessageQueue;
use tdev_domain::queue::{Delivery, Handled, NewMessage, Polling, Priority, QueueWorker};

/// Longer than the whole check: a delivery that waited out its visibility timeout would
/// make the check fail by its deadline.
const HIDDEN: Duration = Duration::from_secs(120);
const DEADLINE: Duration = Duration::from_secs(30);

/// A worker that fails `a2` on its first delivery (retried at once) and finishes the rest.
struct Recorder<Q> {
    queue: Q,
    name: String,
    handled: Mutex<Vec<String>>,
    failed_once: Mutex<bool>,
}

impl<Q: MessageQueue + Clone> QueueWorker for Recorder<Q> {
    async fn handle(&self, queue: &str, delivery: &Delivery) -> Handled {
        assert_eq!(queue, self.name, "the queue it came from");
        self.handled.lock().expect("lock").push(delivery.body.clone());
        let fail =
            delivery.body == "a2" && !std::mem::replace(&mut *self.failed_once.lock().expect("lock"), true);
        if fail {
            self.queue.retry_after(queue, &delivery.receipt, Duration::ZERO).await.expect("retry");
            Handled::Retry
        } else {
            self.queue.ack(queue, &delivery.receipt).await.expect("ack");
            Handled::Finished
        }
    }

    fn polling(&self) -> Vec<Polling> {
        vec![Polling { queues: vec![self.name.clone()], batch: 10, visibility: HIDDEN }]
    }
}

/// Runs the rule over `queue` (FIFO, starting empty): group `a` (a1, a2, a3, where a2
/// fails once) and group `b` (b1, b2).
pub async fn fifo_batch_rule<Q: MessageQueue + Clone>(q: &Q, queue: &str) {
    for (group, body) in [("a", "a1"), ("b", "b1"), ("a", "a2"), ("b", "b2"), ("a", "a3")] {
        let message = NewMessage {
            group: group.into(),
            dedup_id: format!("rule-{body}"),
            body: body.into(),
            priority: Priority::DEFAULT,
            attributes: BTreeMap::new(),
        };
        q.send(queue, message).await.expect("send");
    }
    let worker = Recorder {
        queue: q.clone(),
        name: queue.to_owned(),
        handled: Mutex::new(Vec::new()),
        failed_once: Mutex::new(false),
    };
    let first = q.receive(queue, 10, HIDDEN).await.expect("receive");
    assert_eq!(first.len(), 5, "all five in one batch: {first:?}");
    let ids: HashMap<String, String> = first.iter().map(|d| (d.message_id.clone(), d.body.clone())).collect();
    let mut unfinished: Vec<String> = tdev_worker::run_batch(&worker, q, queue, first).await;
    unfinished.sort_by_key(|id| ids[id].clone());
    let unfinished: Vec<&str> = unfinished.iter().map(|id| ids[id].as_str()).collect();
    assert_eq!(unfinished, ["a2", "a3"], "a2 failed; a3, behind it, was not processed");
    let handled = worker.handled.lock().expect("lock").clone();
    let order = |group: char| handled.iter().filter(|b| b.starts_with(group)).cloned().collect::<Vec<_>>();
    assert_eq!(order('a'), ["a1", "a2"], "group a stops at its failure");
    assert_eq!(order('b'), ["b1", "b2"], "group b is not held up by group a");

    // a2 and a3 come back at once, in order: a3 was released, not left hidden.
    let started = Instant::now();
    let mut again = Vec::new();
    while again.len() < 2 {
        assert!(started.elapsed() < DEADLINE, "a2 and a3 came back at once, not after {HIDDEN:?}: {again:?}");
        let batch = q.receive(queue, 10, HIDDEN).await.expect("receive");
        again.extend(batch.iter().map(|d| d.body.clone()));
        assert!(tdev_worker::run_batch(&worker, q, queue, batch).await.is_empty(), "now all finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(again, ["a2", "a3"], "in their group's order");
    let handled = worker.handled.lock().expect("lock").clone();
    let a: Vec<&String> = handled.iter().filter(|b| b.starts_with('a')).collect();
    assert_eq!(a, ["a1", "a2", "a2", "a3"], "each of group a in order, a3 only after a2 finished");
    assert!(q.receive(queue, 10, HIDDEN).await.expect("receive").is_empty(), "nothing left");
}
