//! What every `MessageQueue` promises, checked on a real queue.
//!
//! The queue under test must be FIFO with a dead-letter queue `dlq` and a
//! `max_receive_count` of [`MAX_RECEIVES`]; the caller creates both.

use std::collections::BTreeMap;
use std::time::Duration;

use tdev_domain::ports::MessageQueue;
use tdev_domain::queue::{Delivery, MAX_RECEIVES_EXCEEDED, NewMessage, Priority, dead_letter_attributes};

pub const MAX_RECEIVES: u32 = 3;
const LONG: Duration = Duration::from_secs(60);

fn message(group: &str, dedup_id: &str, body: &str) -> NewMessage {
    NewMessage {
        group: group.into(),
        dedup_id: dedup_id.into(),
        body: body.into(),
        priority: Priority::DEFAULT,
        attributes: BTreeMap::from([("kind".to_owned(), "test".to_owned())]),
    }
}

/// Runs every queue check on `queue` (which must start empty) and its `dlq`.
pub async fn run_all<Q: MessageQueue>(q: &Q, queue: &str, dlq: &str) {
    fifo_per_group(q, queue).await;
    deduplication(q, queue).await;
    visibility_and_retry(q, queue).await;
    keep_hidden_while_working(q, queue).await;
    dead_letter_after_max_receives(q, queue, dlq).await;
    dead_letter_with_reason(q, queue, dlq).await;
}

async fn drain<Q: MessageQueue>(q: &Q, queue: &str) -> Vec<Delivery> {
    let mut all = Vec::new();
    loop {
        let batch = q.receive(queue, 10, LONG).await.expect("receive");
        if batch.is_empty() {
            return all;
        }
        for delivery in &batch {
            q.ack(queue, &delivery.receipt).await.expect("ack");
        }
        all.extend(batch);
    }
}

/// In order within a group; a group with a message in flight gives nothing more.
pub async fn fifo_per_group<Q: MessageQueue>(q: &Q, queue: &str) {
    for (group, body) in [("a", "a1"), ("b", "b1"), ("a", "a2"), ("a", "a3"), ("b", "b2")] {
        q.send(queue, message(group, body, body)).await.expect("send");
    }
    let first = q.receive(queue, 1, LONG).await.expect("receive");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].receive_count, 1);
    assert_eq!(first[0].attributes.get("kind").map(String::as_str), Some("test"), "attributes travel");
    let group = first[0].group.clone();
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    seen.entry(group.clone()).or_default().push(first[0].body.clone());

    // While the first is in flight, nothing more of its group comes.
    let others = q.receive(queue, 10, LONG).await.expect("receive while in flight");
    assert!(others.iter().all(|d| d.group != group), "{group} is blocked while in flight: {others:?}");
    for delivery in &others {
        seen.entry(delivery.group.clone()).or_default().push(delivery.body.clone());
        q.ack(queue, &delivery.receipt).await.expect("ack other");
    }
    q.ack(queue, &first[0].receipt).await.expect("ack first");
    for delivery in drain(q, queue).await {
        seen.entry(delivery.group).or_default().push(delivery.body);
    }
    assert_eq!(seen["a"], ["a1", "a2", "a3"]);
    assert_eq!(seen["b"], ["b1", "b2"]);
}

/// A second send with the same dedup id sends nothing.
pub async fn deduplication<Q: MessageQueue>(q: &Q, queue: &str) {
    q.send(queue, message("g", "same-id", "first")).await.expect("send");
    q.send(queue, message("g", "same-id", "second")).await.expect("send duplicate");
    q.send(queue, message("g", "other-id", "third")).await.expect("send other");
    let bodies: Vec<String> = drain(q, queue).await.into_iter().map(|d| d.body).collect();
    assert_eq!(bodies, ["first", "third"]);
}

/// An unacknowledged message comes back, counted; `retry_after` controls when.
pub async fn visibility_and_retry<Q: MessageQueue>(q: &Q, queue: &str) {
    q.send(queue, message("v", "visibility", "again")).await.expect("send");
    let first = q.receive(queue, 1, Duration::from_secs(1)).await.expect("receive");
    assert_eq!(first.len(), 1);
    assert!(q.receive(queue, 1, LONG).await.expect("hidden").is_empty(), "hidden while in flight");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = q.receive(queue, 1, LONG).await.expect("visible again");
    assert_eq!(second.len(), 1, "visible again after the timeout");
    assert_eq!((second[0].message_id.as_str(), second[0].receive_count), (first[0].message_id.as_str(), 2));

    q.retry_after(queue, &second[0].receipt, Duration::ZERO).await.expect("retry now");
    let third = q.receive(queue, 1, LONG).await.expect("after retry_after(0)");
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].receive_count, 3);
    q.retry_after(queue, &third[0].receipt, LONG).await.expect("retry later");
    assert!(q.receive(queue, 1, LONG).await.expect("delayed").is_empty(), "delayed by retry_after");
    // A receipt stays good while the message is hidden: done with it after all.
    q.ack(queue, &third[0].receipt).await.expect("ack a delayed message");
    assert!(q.receive(queue, 10, LONG).await.expect("empty").is_empty());
}

/// `keep_hidden` extends a delivery's visibility from now: work outlasting the receive's.
pub async fn keep_hidden_while_working<Q: MessageQueue>(q: &Q, queue: &str) {
    q.send(queue, message("k", "kept-hidden", "long work")).await.expect("send");
    let first = q.receive(queue, 1, Duration::from_secs(1)).await.expect("receive");
    assert_eq!(first.len(), 1);
    q.keep_hidden(queue, &first[0].receipt, LONG).await.expect("keep hidden");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        q.receive(queue, 1, LONG).await.expect("receive").is_empty(),
        "still hidden past the receive's 1 s"
    );
    q.keep_hidden(queue, &first[0].receipt, Duration::ZERO).await.expect("give up the hold");
    let again = q.receive(queue, 1, LONG).await.expect("receive");
    assert_eq!(again.len(), 1, "visible once its hold ends");
    assert_eq!((again[0].receive_count, again[0].reclaimed), (2, false));
    q.ack(queue, &again[0].receipt).await.expect("ack");
}

/// After `MAX_RECEIVES` receives the message goes to the dead-letter queue, with reason.
pub async fn dead_letter_after_max_receives<Q: MessageQueue>(q: &Q, queue: &str, dlq: &str) {
    q.send(queue, message("p", "poison", "poison")).await.expect("send");
    for attempt in 1..=MAX_RECEIVES {
        let batch = q.receive(queue, 1, LONG).await.expect("receive");
        assert_eq!(batch.len(), 1, "attempt {attempt}");
        q.retry_after(queue, &batch[0].receipt, Duration::ZERO).await.expect("fail it");
    }
    assert!(q.receive(queue, 10, LONG).await.expect("receive").is_empty(), "moved out of the queue");
    let dead = drain(q, dlq).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    assert_eq!(dead[0].group, "p");
    assert_eq!(
        dead[0].attributes.get(dead_letter_attributes::REASON).map(String::as_str),
        Some(MAX_RECEIVES_EXCEEDED)
    );
}

/// `dead_letter` moves a message at once, with the reason and where it came from.
pub async fn dead_letter_with_reason<Q: MessageQueue>(q: &Q, queue: &str, dlq: &str) {
    q.send(queue, message("t", "tampered", "tampered")).await.expect("send");
    let batch = q.receive(queue, 1, LONG).await.expect("receive");
    q.dead_letter(queue, &batch[0], "bad_signature").await.expect("dead-letter");
    assert!(q.receive(queue, 10, LONG).await.expect("receive").is_empty(), "gone from the queue");
    let dead = drain(q, dlq).await;
    assert_eq!(dead.len(), 1);
    let attributes = &dead[0].attributes;
    assert_eq!(attributes.get(dead_letter_attributes::REASON).map(String::as_str), Some("bad_signature"));
    assert_eq!(attributes.get(dead_letter_attributes::SOURCE_QUEUE).map(String::as_str), Some(queue));
    assert_eq!(attributes.get(dead_letter_attributes::RECEIVE_COUNT).map(String::as_str), Some("1"));
    assert_eq!(attributes.get("kind").map(String::as_str), Some("test"), "the message's own attributes stay");
}
