//! A Lambda SQS batch on real SQS records (moto): each record is read as a received
//! message is and handed to the worker with its queue's name; a record that cannot be read,
//! or comes from a queue the function does not know, is reported for retry (the queue's
//! redrive policy dead-letters it), never dropped and never handled.

#[path = "../../aws/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};
use support::{moto_config, unique};
use tdev_aws::SqsQueues;
use tdev_domain::ports::MessageQueue;
use tdev_domain::queue::QueueSpec;
use tdev_domain::queue::{Delivery, Handled, NewMessage, Polling, Priority, QueueWorker};

struct Acker {
    queues: SqsQueues,
    seen: Mutex<Vec<(String, String)>>,
}

impl QueueWorker for Acker {
    async fn handle(&self, queue: &str, delivery: &Delivery) -> Handled {
        self.seen.lock().unwrap().push((queue.to_owned(), delivery.body.clone()));
        self.queues.ack(queue, &delivery.receipt).await.expect("ack");
        Handled::Finished
    }

    fn polling(&self) -> Vec<Polling> {
        Vec::new()
    }
}

fn record(arn: &str, delivery: &Delivery, priority: &str) -> Value {
    json!({
        "messageId": delivery.message_id,
        "receiptHandle": delivery.receipt,
        "body": delivery.body,
        "attributes": {
            "ApproximateReceiveCount": delivery.receive_count.to_string(),
            "SentTimestamp": delivery.sent_at.as_millisecond().to_string(),
            "MessageGroupId": delivery.group,
            "MessageDeduplicationId": delivery.dedup_id,
        },
        "messageAttributes": {tdev_aws::PRIORITY_ATTRIBUTE: {"stringValue": priority, "dataType": "Number"}},
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": "us-east-1",
    })
}

#[tokio::test]
async fn records_are_handled_with_their_queue_and_unreadable_or_unknown_ones_retried() {
    let queues = SqsQueues::ensure(
        &moto_config(),
        &unique("lambda"),
        [QueueSpec::with_dead_letter("work", "work-dlq", 3)],
    )
    .await
    .expect("queues");
    for (group, body) in [("a", "one"), ("b", "two"), ("c", "three"), ("d", "four")] {
        let message = NewMessage {
            group: group.into(),
            dedup_id: body.into(),
            body: body.into(),
            priority: Priority::new(3).unwrap(),
            attributes: BTreeMap::new(),
        };
        queues.send("work", message).await.expect("send");
    }
    let received = queues.receive("work", 10, Duration::from_secs(60)).await.expect("receive");
    assert_eq!(received.len(), 4);
    let url = queues.url("work").expect("work");
    let arn = format!("arn:aws:sqs:us-east-1:123456789012:{}", url.rsplit('/').next().unwrap());
    let by_body = |body: &str| received.iter().find(|d| d.body == body).expect(body);
    let event = json!({"Records": [
        record(&arn, by_body("one"), "3"),
        record(&arn, by_body("two"), "not a number"),
        record("arn:aws:sqs:us-east-1:123456789012:somebody-elses.fifo", by_body("three"), "3"),
        record(&arn, by_body("four"), "3"),
    ]});
    let event = serde_json::from_value(event).expect("an SQS event");
    let worker = Acker { queues: queues.clone(), seen: Mutex::new(Vec::new()) };

    let response = tdev_worker::lambda::handle_batch(&worker, &queues, event).await;

    let mut retried: Vec<&str> =
        response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    retried.sort();
    let mut expected = vec![by_body("two").message_id.as_str(), by_body("three").message_id.as_str()];
    expected.sort();
    assert_eq!(retried, expected, "the unreadable and the unknown queue's records are retried");
    let seen = worker.seen.lock().unwrap().clone();
    assert_eq!(seen, [("work".to_owned(), "one".to_owned()), ("work".to_owned(), "four".to_owned())]);
}
