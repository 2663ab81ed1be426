//! Message queues on SQS FIFO: [`SqsQueues`] implements [`MessageQueue`] and passes the
//! same conformance suite as the embedded queue.
//!
//! # Mapping
//!
//! Each logical queue (`steps`, `steps-dlq`, …) is one FIFO queue, named by its URL. A
//! queue's dead-letter queue is another configured logical queue; SQS's `RedrivePolicy`
//! moves a message there after `maxReceiveCount` receives.
//!
//! - send: SendMessage with `MessageGroupId` = the group, `MessageDeduplicationId` = the
//!   dedup id, and message attributes `tdev-priority` (Number) plus every attribute
//!   (String). SQS takes a deduplication id of at most 128 characters out of
//!   `A-Za-z0-9` and ASCII punctuation; any other id is sent as the hex SHA-256 of its
//!   UTF-8 bytes (64 characters), which keeps deduplication exact, and comes back as that
//!   hash in [`Delivery::dedup_id`]. Groups, bodies and attributes are sent as they are
//!   and SQS's limits apply: a group of at most 128 such characters, at most 10 message
//!   attributes (`tdev-priority` takes one, dead-lettering four more) with non-empty
//!   values.
//! - receive: ReceiveMessage for at most 10 messages (one call; fewer than `max` may come
//!   even when more are waiting), with the visibility rounded up to whole seconds and
//!   capped at 12 hours, no long polling. SQS FIFO has no priorities: the priority travels
//!   as an attribute (5 when absent, for messages other producers put on the queue) and
//!   order is send order within a group.
//! - ack: DeleteMessage. retry_after: ChangeMessageVisibility (whole seconds, rounded
//!   up, at most 12 hours).
//! - dead_letter: SendMessage to the dead-letter queue, then DeleteMessage.
//!
//! # Dead-letter attributes
//!
//! A message [`dead_letter`](MessageQueue::dead_letter)ed by us carries every attribute of
//! [`dead_letter_attributes`]. One moved by SQS's redrive policy carries none, so a
//! receive from a dead-letter queue fills in [`MAX_RECEIVES_EXCEEDED`] as the reason, the
//! logical source queue (from the `DeadLetterQueueSourceArn` system attribute, else the
//! only queue that uses this dead-letter queue; absent when neither tells) and SQS's
//! `ApproximateReceiveCount`, which counts the receives from both queues, this one
//! included (as does the delivery's `receive_count`). When it was moved is unknown, so
//! `tdev-dead-lettered-at` stays absent.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};
use jiff::Timestamp;
use sha2::{Digest, Sha256};
use tdev_domain::ports::{MessageQueue, StoreError};
use tdev_domain::queue::{
    DeadLetterSpec, Delivery, MAX_RECEIVES_EXCEEDED, NewMessage, Priority, QueueSpec, dead_letter_attributes,
};

/// The message attribute carrying [`NewMessage::priority`]; reserved.
pub const PRIORITY_ATTRIBUTE: &str = "tdev-priority";

/// SQS's limits: visibility timeouts, deduplication ids, message attributes.
const MAX_VISIBILITY_SECONDS: u64 = 43_200;
const MAX_DEDUP_ID_LEN: usize = 128;
const MAX_MESSAGE_ATTRIBUTES: usize = 10;
const MAX_BATCH: usize = 10;

/// What [`SqsQueues::ensure`] gives a new queue; receives always set their own visibility.
const DEFAULT_VISIBILITY_SECONDS: u32 = 30;
/// 14 days, SQS's longest retention: a dead letter should wait for an operator.
const RETENTION_SECONDS: u32 = 14 * 24 * 60 * 60;

/// One configured queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsQueue {
    pub url: String,
    /// The logical name of its dead-letter queue, which must be configured too.
    pub dead_letter: Option<String>,
}

/// Every configured SQS FIFO queue, by logical name. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct SqsQueues {
    client: aws_sdk_sqs::Client,
    queues: Arc<Queues>,
}

#[derive(Debug)]
struct Queues {
    by_name: HashMap<String, SqsQueue>,
    /// Dead-letter queue → the queues that use it, to name a redriven message's source.
    sources: HashMap<String, BTreeSet<String>>,
}

fn config_error(detail: String) -> StoreError {
    StoreError::unavailable(std::io::Error::other(detail))
}

fn client(config: &SdkConfig) -> aws_sdk_sqs::Client {
    // As in `AwsStore::new`: the client panics on a config without a behavior version.
    if config.behavior_version().is_some() {
        aws_sdk_sqs::Client::new(config)
    } else {
        aws_sdk_sqs::Client::new(&config.to_builder().behavior_version(BehaviorVersion::latest()).build())
    }
}

impl SqsQueues {
    /// The queues at known URLs (production: the SAM template's outputs). Fails if a
    /// dead-letter queue is not configured itself, or a queue is its own.
    pub fn new(
        config: &SdkConfig,
        queues: impl IntoIterator<Item = (String, SqsQueue)>,
    ) -> Result<Self, StoreError> {
        Self::with_client(client(config), queues)
    }

    fn with_client(
        client: aws_sdk_sqs::Client,
        queues: impl IntoIterator<Item = (String, SqsQueue)>,
    ) -> Result<Self, StoreError> {
        let by_name: HashMap<String, SqsQueue> = queues.into_iter().collect();
        let mut sources: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (name, queue) in &by_name {
            let Some(dead_letter) = &queue.dead_letter else { continue };
            if dead_letter == name {
                return Err(config_error(format!("queue {name:?} cannot be its own dead-letter queue")));
            }
            if !by_name.contains_key(dead_letter) {
                return Err(config_error(format!(
                    "queue {name:?} names dead-letter queue {dead_letter:?}, which is not configured"
                )));
            }
            sources.entry(dead_letter.clone()).or_default().insert(name.clone());
        }
        Ok(Self { client, queues: Arc::new(Queues { by_name, sources }) })
    }

    /// The queues `names`, each at `TDEV_QUEUE_<NAME>_URL` with its dead-letter queue's
    /// logical name (if any) in `TDEV_QUEUE_<NAME>_DLQ`, where `<NAME>` is the logical name
    /// upper-cased with `-` as `_` (`steps-dlq` → `TDEV_QUEUE_STEPS_DLQ_URL`). A
    /// dead-letter queue must be among `names` too.
    pub fn from_env(config: &SdkConfig, names: &[&str]) -> Result<Self, StoreError> {
        let mut queues = Vec::with_capacity(names.len());
        for name in names {
            let var =
                |suffix: &str| format!("TDEV_QUEUE_{}_{suffix}", name.to_ascii_uppercase().replace('-', "_"));
            let url_var = var("URL");
            let url = std::env::var(&url_var)
                .map_err(|_| config_error(format!("{url_var} is not set: give queue {name:?}'s URL")))?;
            let dead_letter = std::env::var(var("DLQ")).ok().filter(|dlq| !dlq.is_empty());
            queues.push(((*name).to_owned(), SqsQueue { url, dead_letter }));
        }
        Self::new(config, queues)
    }

    /// Creates (or finds, if they exist with the same attributes) FIFO queues named
    /// `<prefix>-<name>.fifo` for moto and local use: dead-letter queues first, then the
    /// queues that use them, with a `RedrivePolicy`. SQS names take at most 80 characters
    /// of `A-Za-z0-9_-` (with `.fifo`).
    pub async fn ensure(
        config: &SdkConfig,
        prefix: &str,
        specs: impl IntoIterator<Item = QueueSpec>,
    ) -> Result<Self, StoreError> {
        let client = client(config);
        let mut pending: BTreeMap<String, Option<DeadLetterSpec>> = BTreeMap::new();
        for spec in specs {
            if let Some(dead_letter) = &spec.dead_letter {
                pending.entry(dead_letter.queue.clone()).or_insert(None);
            }
            pending.insert(spec.name, spec.dead_letter);
        }
        let mut created: HashMap<String, SqsQueue> = HashMap::new();
        let mut arns: HashMap<String, String> = HashMap::new();
        while !pending.is_empty() {
            // Queues whose dead-letter queue exists (or that have none) can be created now.
            let ready: Vec<String> = pending
                .iter()
                .filter(|(_, dead_letter)| {
                    dead_letter.as_ref().is_none_or(|d| created.contains_key(&d.queue))
                })
                .map(|(name, _)| name.clone())
                .collect();
            if ready.is_empty() {
                let names: Vec<&String> = pending.keys().collect();
                return Err(config_error(format!("dead-letter queues form a cycle among {names:?}")));
            }
            let needed_arns: BTreeSet<String> =
                pending.values().flatten().map(|dead_letter| dead_letter.queue.clone()).collect();
            for name in ready {
                let dead_letter = pending.remove(&name).flatten();
                let redrive = match &dead_letter {
                    Some(d) => {
                        let arn = arns.get(&d.queue).ok_or_else(|| {
                            config_error(format!("no ARN for dead-letter queue {:?}", d.queue))
                        })?;
                        Some(format!(
                            r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":{}}}"#,
                            d.max_receive_count
                        ))
                    }
                    None => None,
                };
                let url = create_fifo_queue(&client, &format!("{prefix}-{name}.fifo"), redrive).await?;
                if needed_arns.contains(&name) {
                    arns.insert(name.clone(), queue_arn(&client, &url).await?);
                }
                created.insert(name, SqsQueue { url, dead_letter: dead_letter.map(|d| d.queue) });
            }
        }
        Self::with_client(client, created)
    }

    /// The logical name of the configured queue with this ARN (a Lambda SQS record's
    /// `eventSourceARN`): the one whose URL ends with the ARN's queue name.
    pub fn name_of_arn(&self, arn: &str) -> Option<&str> {
        let queue_name = arn.rsplit(':').next()?;
        self.queues
            .by_name
            .iter()
            .find(|(_, queue)| url_queue_name(&queue.url) == queue_name)
            .map(|(name, _)| name.as_str())
    }

    /// The configured queue `name`'s URL.
    pub fn url(&self, name: &str) -> Option<&str> {
        self.queues.by_name.get(name).map(|queue| queue.url.as_str())
    }

    fn queue(&self, name: &str) -> Result<&SqsQueue, StoreError> {
        self.queues.by_name.get(name).ok_or_else(|| config_error(format!("no queue named {name:?}")))
    }

    /// The logical queue a message SQS moved to dead-letter queue `dlq` came from: the one
    /// `source_arn` names, else the only queue using `dlq`.
    fn redrive_source(&self, dlq: &str, source_arn: Option<&str>) -> Option<String> {
        if let Some(physical) = source_arn.and_then(|arn| arn.rsplit(':').next()) {
            // An ARN and a URL both end with the queue's name.
            let logical =
                self.queues.by_name.iter().find(|(_, queue)| url_queue_name(&queue.url) == physical);
            return Some(logical.map_or(physical, |(name, _)| name.as_str()).to_owned());
        }
        let sources = self.queues.sources.get(dlq)?;
        if sources.len() == 1 { sources.first().cloned() } else { None }
    }

    async fn send_to(&self, url: &str, message: &NewMessage) -> Result<String, StoreError> {
        if message.attributes.contains_key(PRIORITY_ATTRIBUTE) {
            return Err(config_error(format!("message attribute {PRIORITY_ATTRIBUTE:?} is reserved")));
        }
        if message.attributes.len() >= MAX_MESSAGE_ATTRIBUTES {
            return Err(config_error(format!(
                "SQS carries at most {MAX_MESSAGE_ATTRIBUTES} message attributes, one of them \
                 {PRIORITY_ATTRIBUTE:?}; this message has {}",
                message.attributes.len()
            )));
        }
        // SQS refuses an empty value; moto does not, so say it here for both.
        if let Some((name, _)) = message.attributes.iter().find(|(_, value)| value.is_empty()) {
            return Err(config_error(format!("SQS refuses message attribute {name:?}: its value is empty")));
        }
        let mut request = self
            .client
            .send_message()
            .queue_url(url)
            .message_group_id(&message.group)
            .message_deduplication_id(sqs_dedup_id(&message.dedup_id))
            .message_body(&message.body)
            .message_attributes(PRIORITY_ATTRIBUTE, attribute("Number", message.priority.to_string())?);
        for (name, value) in &message.attributes {
            request = request.message_attributes(name, attribute("String", value.clone())?);
        }
        let output = request.send().await.map_err(StoreError::unavailable)?;
        output.message_id.ok_or_else(|| StoreError::Corrupt("SendMessage returned no message id".into()))
    }

    async fn delete(&self, url: &str, receipt: &str) -> Result<(), StoreError> {
        match self.client.delete_message().queue_url(url).receipt_handle(receipt).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error().is_some_and(|e| e.is_receipt_handle_is_invalid() || expired(e)) =>
            {
                Err(StoreError::NotFound)
            }
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }
}

async fn create_fifo_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    redrive_policy: Option<String>,
) -> Result<String, StoreError> {
    let mut request = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .attributes(QueueAttributeName::VisibilityTimeout, DEFAULT_VISIBILITY_SECONDS.to_string())
        .attributes(QueueAttributeName::MessageRetentionPeriod, RETENTION_SECONDS.to_string());
    if let Some(policy) = redrive_policy {
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy);
    }
    let output = request.send().await.map_err(StoreError::unavailable)?;
    output.queue_url.ok_or_else(|| StoreError::Corrupt(format!("CreateQueue {name} returned no URL")))
}

async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> Result<String, StoreError> {
    let output = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(StoreError::unavailable)?;
    output
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| StoreError::Corrupt(format!("queue {url} has no QueueArn")))
}

fn url_queue_name(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or(url)
}

fn attribute(data_type: &str, value: String) -> Result<MessageAttributeValue, StoreError> {
    MessageAttributeValue::builder()
        .data_type(data_type)
        .string_value(value)
        .build()
        .map_err(StoreError::unavailable)
}

/// `id` if SQS takes it as a deduplication id, else its hex SHA-256 (which it takes).
/// A valid id that happens to equal another id's hash would collide; ids are ours, so no.
pub fn sqs_dedup_id(id: &str) -> Cow<'_, str> {
    // `is_ascii_graphic` is exactly SQS's set: letters, digits and ASCII punctuation.
    if !id.is_empty() && id.len() <= MAX_DEDUP_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic()) {
        Cow::Borrowed(id)
    } else {
        Cow::Owned(hex::encode(Sha256::digest(id.as_bytes())))
    }
}

/// Whole seconds, rounded up, within SQS's 12 hours.
fn visibility_seconds(duration: Duration) -> i32 {
    let seconds = duration.as_secs().saturating_add(u64::from(duration.subsec_nanos() > 0));
    i32::try_from(seconds.min(MAX_VISIBILITY_SECONDS)).unwrap_or(i32::MAX)
}

/// SQS's answer to a receipt handle past its visibility timeout, which has no error type
/// of its own: `InvalidParameterValue` "… The receipt handle has expired."
fn expired(error: &impl ProvideErrorMetadata) -> bool {
    error.code() == Some("InvalidParameterValue")
        && error.message().is_some_and(|message| message.to_ascii_lowercase().contains("receipt handle"))
}

/// A received message as a [`Delivery`]. `dead_letter_queue` is given when the queue read
/// is a dead-letter queue (the queues and its logical name), to describe redriven messages.
fn delivery(message: Message, dead_letter_queue: Option<(&SqsQueues, &str)>) -> Result<Delivery, StoreError> {
    let id =
        message.message_id.ok_or_else(|| StoreError::Corrupt("received a message without an id".into()))?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("SQS message {id}: {what}"));
    let mut system = message.attributes.unwrap_or_default();
    let mut take = |name: MessageSystemAttributeName| {
        system.remove(&name).ok_or_else(|| corrupt(&format!("no {} attribute", name.as_str())))
    };
    let group = take(MessageSystemAttributeName::MessageGroupId)?;
    let dedup_id = take(MessageSystemAttributeName::MessageDeduplicationId)?;
    let receive_count_text = take(MessageSystemAttributeName::ApproximateReceiveCount)?;
    let sent = take(MessageSystemAttributeName::SentTimestamp)?;
    let source_arn = system.remove(&MessageSystemAttributeName::DeadLetterQueueSourceArn);
    let receive_count: u32 = receive_count_text
        .parse()
        .map_err(|_| corrupt(&format!("bad ApproximateReceiveCount {receive_count_text:?}")))?;
    let sent_at = sent
        .parse::<i64>()
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .ok_or_else(|| corrupt(&format!("bad SentTimestamp {sent:?}")))?;

    let mut priority = Priority::DEFAULT;
    let mut attributes = BTreeMap::new();
    for (name, value) in message.message_attributes.unwrap_or_default() {
        // String, Number and their custom subtypes have a string value; Binary has none.
        let text = value.string_value.ok_or_else(|| {
            corrupt(&format!("message attribute {name:?} of type {} is not text", value.data_type))
        })?;
        if name == PRIORITY_ATTRIBUTE {
            priority = text
                .parse::<u8>()
                .ok()
                .and_then(|level| Priority::new(level).ok())
                .ok_or_else(|| corrupt(&format!("bad {PRIORITY_ATTRIBUTE} {text:?}")))?;
        } else {
            attributes.insert(name, text);
        }
    }
    if let Some((queues, dlq)) = dead_letter_queue
        && !attributes.contains_key(dead_letter_attributes::REASON)
    {
        attributes.insert(dead_letter_attributes::REASON.into(), MAX_RECEIVES_EXCEEDED.into());
        if let Some(source) = queues.redrive_source(dlq, source_arn.as_deref()) {
            attributes.insert(dead_letter_attributes::SOURCE_QUEUE.into(), source);
        }
        attributes.insert(dead_letter_attributes::RECEIVE_COUNT.into(), receive_count.to_string());
    }
    Ok(Delivery {
        receipt: message.receipt_handle.ok_or_else(|| corrupt("no receipt handle"))?,
        group,
        dedup_id,
        body: message.body.unwrap_or_default(),
        priority,
        attributes,
        receive_count,
        sent_at,
        message_id: id,
        // SQS cannot know the consumer of a lost delivery died.
        reclaimed: false,
    })
}

impl MessageQueue for SqsQueues {
    async fn send(&self, queue: &str, message: NewMessage) -> Result<String, StoreError> {
        let url = &self.queue(queue)?.url;
        self.send_to(url, &message).await
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, StoreError> {
        let url = &self.queue(queue)?.url;
        if max == 0 {
            return Ok(Vec::new());
        }
        let output = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(i32::try_from(max.min(MAX_BATCH)).unwrap_or(1))
            .visibility_timeout(visibility_seconds(visibility))
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_system_attribute_names(MessageSystemAttributeName::MessageDeduplicationId)
            .message_system_attribute_names(MessageSystemAttributeName::DeadLetterQueueSourceArn)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        // Only a dead-letter queue holds redriven messages.
        let dead_letter_queue = self.queues.sources.contains_key(queue).then_some((self, queue));
        output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|message| delivery(message, dead_letter_queue))
            .collect()
    }

    async fn ack(&self, queue: &str, receipt: &str) -> Result<(), StoreError> {
        let url = &self.queue(queue)?.url;
        self.delete(url, receipt).await
    }

    async fn retry_after(&self, queue: &str, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        let url = &self.queue(queue)?.url;
        let result = self
            .client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(visibility_seconds(delay))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error().is_some_and(|e| {
                    e.is_receipt_handle_is_invalid() || e.is_message_not_inflight() || expired(e)
                }) =>
            {
                Err(StoreError::NotFound)
            }
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }

    async fn dead_letter(&self, queue: &str, delivery: &Delivery, reason: &str) -> Result<(), StoreError> {
        let source = self.queue(queue)?;
        let dlq_name = source
            .dead_letter
            .as_ref()
            .ok_or_else(|| config_error(format!("queue {queue:?} has no dead-letter queue")))?;
        let dlq = self.queue(dlq_name)?;
        let message = delivery.dead_lettered(queue, reason, Timestamp::now());
        // Send first, delete second: a crash in between leaves a duplicate in the
        // dead-letter queue, never a lost message. A stale receipt is `NotFound` after the
        // copy is made: the message lives on in `queue` as well.
        self.send_to(&dlq.url, &message).await?;
        self.delete(&source.url, &delivery.receipt).await
    }
}

/// A message read outside a receive (a record of a Lambda SQS event, say) as a
/// [`Delivery`], exactly as a received one is read.
pub fn delivery_of_message(message: Message) -> Result<Delivery, StoreError> {
    delivery(message, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_dedup_ids_pass_and_others_are_hashed() {
        assert_eq!(sqs_dedup_id("run-1/step:2#a"), "run-1/step:2#a");
        let punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
        assert_eq!(sqs_dedup_id(punctuation), punctuation);
        let max = "x".repeat(128);
        assert_eq!(sqs_dedup_id(&max), max.as_str());
        for odd in ["x".repeat(129), "with space".into(), "ünïcode".into(), String::new()] {
            let hashed = sqs_dedup_id(&odd);
            assert_eq!(hashed.len(), 64, "{odd:?}");
            assert!(hashed.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(sqs_dedup_id(&hashed), hashed, "a hash is kept as it is");
        }
        assert_ne!(sqs_dedup_id("a b"), sqs_dedup_id("a  b"));
    }

    #[test]
    fn visibility_rounds_up_within_twelve_hours() {
        assert_eq!(visibility_seconds(Duration::ZERO), 0);
        assert_eq!(visibility_seconds(Duration::from_millis(1)), 1);
        assert_eq!(visibility_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(visibility_seconds(Duration::from_secs(60)), 60);
        assert_eq!(visibility_seconds(Duration::from_secs(100_000)), 43_200);
        assert_eq!(visibility_seconds(Duration::MAX), 43_200);
    }

    fn queues(entries: &[(&str, &str, Option<&str>)]) -> Result<SqsQueues, StoreError> {
        SqsQueues::new(
            &SdkConfig::builder().build(),
            entries.iter().map(|(name, url, dlq)| {
                ((*name).to_owned(), SqsQueue { url: (*url).to_owned(), dead_letter: dlq.map(str::to_owned) })
            }),
        )
    }

    #[test]
    fn a_dead_letter_queue_must_be_configured() {
        assert!(queues(&[("work", "https://q/1/work.fifo", Some("work-dlq"))]).is_err());
        assert!(queues(&[("work", "https://q/1/work.fifo", Some("work"))]).is_err());
        let ok = queues(&[
            ("work", "https://q/1/w.fifo", Some("work-dlq")),
            ("work-dlq", "https://q/1/d.fifo", None),
        ]);
        assert_eq!(
            ok.map(|q| q.url("work-dlq").map(str::to_owned)).ok().flatten().as_deref(),
            Some("https://q/1/d.fifo")
        );
    }

    #[test]
    fn queues_are_found_by_arn() {
        let queues = queues(&[
            ("messages-1", "https://sqs.eu-west-1.amazonaws.com/1/s-messages-1.fifo", Some("messages-1-dlq")),
            ("messages-1-dlq", "https://sqs.eu-west-1.amazonaws.com/1/s-messages-1-dlq.fifo", None),
        ])
        .unwrap();
        assert_eq!(
            queues.name_of_arn("arn:aws:sqs:eu-west-1:1:s-messages-1-dlq.fifo"),
            Some("messages-1-dlq")
        );
        assert_eq!(queues.name_of_arn("arn:aws:sqs:eu-west-1:1:s-messages-1.fifo"), Some("messages-1"));
        assert_eq!(queues.name_of_arn("arn:aws:sqs:eu-west-1:1:other.fifo"), None);
    }

    #[test]
    fn a_redriven_message_is_traced_to_its_source() {
        let Ok(q) = queues(&[
            ("a", "https://q/1/p-a.fifo", Some("dlq")),
            ("b", "https://q/1/p-b.fifo", Some("dlq")),
            ("c", "https://q/1/p-c.fifo", Some("dlq-c")),
            ("dlq", "https://q/1/p-dlq.fifo", None),
            ("dlq-c", "https://q/1/p-dlq-c.fifo", None),
        ]) else {
            panic!("valid configuration")
        };
        assert_eq!(q.redrive_source("dlq-c", None).as_deref(), Some("c"));
        assert_eq!(q.redrive_source("dlq", None), None, "two sources and no ARN");
        assert_eq!(q.redrive_source("dlq", Some("arn:aws:sqs:us-east-1:1:p-b.fifo")).as_deref(), Some("b"));
        assert_eq!(
            q.redrive_source("dlq", Some("arn:aws:sqs:us-east-1:1:other.fifo")).as_deref(),
            Some("other.fifo")
        );
    }

    fn received(attributes: &[(MessageSystemAttributeName, &str)]) -> Message {
        let mut message = Message::builder().message_id("m1").receipt_handle("r1").body("b");
        for (name, value) in attributes {
            message = message.attributes(name.clone(), *value);
        }
        message.build()
    }

    #[test]
    fn missing_or_bad_system_attributes_are_corrupt() {
        use MessageSystemAttributeName as N;
        let full = [
            (N::MessageGroupId, "g"),
            (N::MessageDeduplicationId, "d"),
            (N::ApproximateReceiveCount, "2"),
            (N::SentTimestamp, "1700000000000"),
        ];
        let Ok(ok) = delivery(received(&full), None) else { panic!("a full message reads") };
        assert_eq!(
            (ok.receive_count, ok.priority, ok.sent_at.as_millisecond()),
            (2, Priority::DEFAULT, 1_700_000_000_000)
        );
        for skip in 0..full.len() {
            let partial: Vec<_> =
                full.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, a)| a.clone()).collect();
            assert!(
                matches!(delivery(received(&partial), None), Err(StoreError::Corrupt(_))),
                "without {skip}"
            );
        }
        let mut bad = full.clone();
        bad[2].1 = "two";
        assert!(matches!(delivery(received(&bad), None), Err(StoreError::Corrupt(_))));
    }
}
