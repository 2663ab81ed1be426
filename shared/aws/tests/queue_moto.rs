//! The queue conformance suite on SQS FIFO, against moto speaking the real SQS wire
//! protocol. `infra/test.sh` starts moto and sets `TDEV_TEST_MOTO_URL`.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{moto_config, unique};
use tdev_aws::{SqsQueues, sqs_dedup_id};
use tdev_domain::ports::{MessageQueue, StoreError};
use tdev_domain::queue::QueueSpec;
use tdev_domain::queue::{Delivery, NewMessage, Priority, dead_letter_attributes};

async fn work_queues(purpose: &str) -> SqsQueues {
    SqsQueues::ensure(
        &moto_config(),
        &unique(purpose),
        [QueueSpec::with_dead_letter("work", "work-dlq", tdev_conformance::queue::MAX_RECEIVES)],
    )
    .await
    .expect("create the queues")
}

fn message(group: &str, dedup_id: &str, body: &str) -> NewMessage {
    NewMessage {
        group: group.into(),
        dedup_id: dedup_id.into(),
        body: body.into(),
        priority: Priority::new(2).unwrap(),
        attributes: BTreeMap::from([("kind".to_owned(), "test".to_owned())]),
    }
}

async fn drain(q: &SqsQueues, queue: &str) -> Vec<Delivery> {
    let mut all = Vec::new();
    loop {
        let batch = q.receive(queue, 10, Duration::from_secs(60)).await.expect("receive");
        if batch.is_empty() {
            return all;
        }
        for delivery in &batch {
            q.ack(queue, &delivery.receipt).await.expect("ack");
        }
        all.extend(batch);
    }
}

#[tokio::test]
async fn sqs_queues_pass_the_queue_conformance_suite_on_moto() {
    let queues = work_queues("conformance").await;
    tdev_conformance::queue::run_all(&queues, "work", "work-dlq").await;
}

#[tokio::test]
async fn the_fifo_batch_rule_holds_on_sqs() {
    let queues = work_queues("batch-rule").await;
    tdev_conformance::worker::fifo_batch_rule(&queues, "work").await;
}

#[tokio::test]
async fn a_long_or_odd_dedup_id_still_deduplicates() {
    let q = work_queues("dedup").await;
    let odd = format!("a step id with spaces, ünïcode and more {}", "x".repeat(200));
    q.send("work", message("g", &odd, "first")).await.expect("send");
    q.send("work", message("g", &odd, "second")).await.expect("send duplicate");
    q.send("work", message("g", &format!("{odd}!"), "third")).await.expect("send other");
    let delivered = drain(&q, "work").await;
    let bodies: Vec<&str> = delivered.iter().map(|d| d.body.as_str()).collect();
    assert_eq!(bodies, ["first", "third"]);
    assert_eq!(delivered[0].dedup_id, sqs_dedup_id(&odd), "sent as its SHA-256");
    assert_eq!((delivered[0].priority.level(), delivered[0].group.as_str()), (2, "g"));
    assert_eq!(delivered[0].attributes, BTreeMap::from([("kind".to_owned(), "test".to_owned())]));
}

#[tokio::test]
async fn an_unknown_queue_is_an_error() {
    let q = work_queues("unknown").await;
    let unknown = |result: Result<(), StoreError>, what: &str| {
        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{what}: {result:?}");
    };
    unknown(q.send("nope", message("g", "d", "b")).await.map(drop), "send");
    unknown(q.receive("nope", 1, Duration::from_secs(1)).await.map(drop), "receive");
    unknown(q.ack("nope", "r").await, "ack");
    unknown(q.retry_after("nope", "r", Duration::ZERO).await, "retry_after");

    q.send("work", message("g", "d", "b")).await.expect("send");
    let delivery = q.receive("work", 1, Duration::from_secs(60)).await.expect("receive").remove(0);
    unknown(q.dead_letter("nope", &delivery, "why").await, "dead_letter");
    // A dead-letter queue has no dead-letter queue of its own.
    unknown(q.dead_letter("work-dlq", &delivery, "why").await, "dead_letter without a DLQ");
    q.ack("work", &delivery.receipt).await.expect("the message stayed put");
}

#[tokio::test]
async fn a_bad_receipt_is_not_found() {
    let q = work_queues("receipt").await;
    assert!(matches!(q.ack("work", "not-a-receipt").await, Err(StoreError::NotFound)));
    assert!(matches!(
        q.retry_after("work", "not-a-receipt", Duration::ZERO).await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn a_message_from_another_producer_reads_with_default_priority() {
    let q = work_queues("foreign").await;
    let client = aws_sdk_sqs::Client::new(&moto_config());
    client
        .send_message()
        .queue_url(q.url("work").unwrap())
        .message_group_id("g")
        .message_deduplication_id("foreign")
        .message_body("{}")
        .send()
        .await
        .unwrap();
    let delivered = drain(&q, "work").await;
    assert_eq!(delivered.len(), 1);
    assert_eq!((delivered[0].priority, delivered[0].receive_count), (Priority::DEFAULT, 1));
    assert!(delivered[0].attributes.is_empty());
}

#[tokio::test]
async fn a_redriven_message_names_its_source_and_count() {
    let q = work_queues("redrive").await;
    q.send("work", message("p", "poison", "poison")).await.expect("send");
    for _ in 0..tdev_conformance::queue::MAX_RECEIVES {
        let batch = q.receive("work", 1, Duration::from_secs(60)).await.expect("receive");
        q.retry_after("work", &batch[0].receipt, Duration::ZERO).await.expect("fail it");
    }
    assert!(q.receive("work", 10, Duration::from_secs(60)).await.expect("receive").is_empty());
    let dead = drain(&q, "work-dlq").await;
    assert_eq!(dead.len(), 1);
    let attributes = &dead[0].attributes;
    assert_eq!(attributes.get(dead_letter_attributes::SOURCE_QUEUE).map(String::as_str), Some("work"));
    // SQS counts the receives from both queues.
    let count: u32 = attributes[dead_letter_attributes::RECEIVE_COUNT].parse().unwrap();
    assert!(count >= tdev_conformance::queue::MAX_RECEIVES, "{attributes:?}");
    assert_eq!(dead[0].priority.level(), 2, "the priority travels along");
}

#[tokio::test]
async fn ensure_is_idempotent() {
    let prefix = unique("idempotent");
    let specs = || [QueueSpec::with_dead_letter("work", "work-dlq", 3), QueueSpec::new("other")];
    let first = SqsQueues::ensure(&moto_config(), &prefix, specs()).await.expect("create");
    let again = SqsQueues::ensure(&moto_config(), &prefix, specs()).await.expect("create again");
    for name in ["work", "work-dlq", "other"] {
        assert_eq!(first.url(name), again.url(name));
        assert!(first.url(name).is_some_and(|url| url.ends_with(&format!("{prefix}-{name}.fifo"))));
    }
}
