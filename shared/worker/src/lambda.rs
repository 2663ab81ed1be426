//! A Lambda SQS batch, answered with the records to retry (`ReportBatchItemFailures`).
//! Every record of a batch comes from one queue (an event source mapping per queue); the
//! queue is named from the record's `eventSourceARN`.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use lambda_runtime::{LambdaEvent, service_fn};
use tdev_aws::SqsQueues;
use tdev_domain::ports::StoreError;
use tdev_domain::queue::{Delivery, QueueWorker};

/// Runs `worker` as an SQS-triggered Lambda on `queues`: every batch through
/// [`handle_batch`], until the runtime stops.
pub async fn serve<W: QueueWorker>(worker: W, queues: SqsQueues) -> Result<(), lambda_runtime::Error> {
    let shared = Arc::new((worker, queues));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let shared = shared.clone();
        async move {
            let (worker, queues) = &*shared;
            Ok::<_, lambda_runtime::Error>(handle_batch(worker, queues, event.payload).await)
        }
    }))
    .await
}

/// Handles one Lambda SQS batch by the FIFO rule ([`crate::run_batch`]). A record that
/// cannot be read, or comes from a queue `queues` does not know, is reported as a failure
/// and left to the queue's redrive policy, which dead-letters it.
pub async fn handle_batch<W: QueueWorker>(
    worker: &W,
    queues: &SqsQueues,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut failed: Vec<String> = Vec::new();
    let mut by_queue: Vec<(String, Vec<Delivery>)> = Vec::new();
    for record in event.records {
        match read(&record, queues) {
            Some((queue, delivery)) => match by_queue.iter_mut().find(|(q, _)| *q == queue) {
                Some((_, deliveries)) => deliveries.push(delivery),
                None => by_queue.push((queue, vec![delivery])),
            },
            None => failed.push(record.message_id.unwrap_or_default()),
        }
    }
    for (queue, deliveries) in by_queue {
        failed.extend(crate::run_batch(worker, queues, &queue, deliveries).await);
    }
    batch_failures(failed)
}

fn read(record: &SqsMessage, queues: &SqsQueues) -> Option<(String, Delivery)> {
    let arn = record.event_source_arn.as_deref().unwrap_or_default();
    let Some(queue) = queues.name_of_arn(arn) else {
        tracing::error!(arn, "a record from an unknown queue");
        return None;
    };
    match delivery_of(record) {
        Ok(delivery) => Some((queue.to_owned(), delivery)),
        Err(e) => {
            tracing::error!(error = %e, "unreadable SQS record");
            None
        }
    }
}

/// A record of a Lambda SQS event as a [`Delivery`], read exactly as a received message is.
pub fn delivery_of(record: &SqsMessage) -> Result<Delivery, StoreError> {
    let system = record
        .attributes
        .iter()
        .map(|(name, value)| (MessageSystemAttributeName::from(name.as_str()), value.clone()))
        .collect();
    let mut message_attributes = HashMap::new();
    for (name, value) in &record.message_attributes {
        let data_type = value.data_type.clone().unwrap_or_else(|| "String".into());
        let attribute = MessageAttributeValue::builder()
            .data_type(data_type)
            .set_string_value(value.string_value.clone())
            .build()
            .map_err(|e| StoreError::Corrupt(format!("message attribute {name:?}: {e}")))?;
        message_attributes.insert(name.clone(), attribute);
    }
    let message = Message::builder()
        .set_message_id(record.message_id.clone())
        .set_receipt_handle(record.receipt_handle.clone())
        .set_body(record.body.clone())
        .set_attributes(Some(system))
        .set_message_attributes(Some(message_attributes))
        .build();
    tdev_aws::delivery_of_message(message)
}

/// The answer that retries the records with these message ids; the others are deleted.
pub fn batch_failures(message_ids: impl IntoIterator<Item = String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = message_ids
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}
