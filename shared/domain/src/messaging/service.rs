//! The messaging services: [`Messenger`] accepts messages (the API) and administers dead
//! letters; [`Dispatcher`] consumes the band queues — it opens each envelope, drops
//! duplicates, routes, and calls the agent — and archives what reaches the dead-letter
//! queues.
//!
//! # What happens to a delivery
//!
//! 1. The envelope is opened: a body that is malformed, tampered, stale, signed with an
//!    unknown key or undecryptable is dead-lettered at once with [`Rejection::code`].
//! 2. Its idempotency key is claimed (a conditional put, leased for the attempt): a key
//!    already done means a duplicate, acknowledged without effect; a key another consumer
//!    holds means "later".
//! 3. It is routed ([`super::routing::candidates`]); no agent → dead-lettered with the
//!    [`NoRoute::code`].
//! 4. The first candidate whose circuit breaker admits it and that has a free slot
//!    (`max_concurrency`) gets it. A slot is leased for the attempt timeout and
//!    [`SLOT_LEASE_MARGIN`] more and given back when the agent answers: a consumer that
//!    dies holding one holds it only until the lease runs out. When no candidate gets
//!    it, the message is *held*: made visible again when the breaker may let a probe
//!    through. Held messages are not dead-lettered early: one whose next receive would
//!    be its last is re-sent to its band queue (with a fresh deduplication id; its
//!    idempotency key is unchanged) and the old copy deleted, which resets its receive
//!    count.
//! 5. The agent is called with the message, its idempotency key included
//!    ([`IDEMPOTENCY_KEY_FIELD`]; an HTTP agent also gets it as the `Idempotency-Key`
//!    header), the same on every delivery of the message. A consumer that dies after the
//!    agent answered and before the key is marked done leaves the key claimed until its
//!    lease (the attempt timeout and 30 s) ends; the message's redelivery then calls the
//!    agent again with the same key, and only an agent that deduplicates by it has one
//!    effect (see `docs/messaging.md`).
//! 6. The agent answers: done (the key is marked done for a day). Unavailable: the
//!    breaker counts a failure, and the message is retried with backoff (1, 2, 4, … s, at
//!    most a minute) until its `max_receives`-th receive, then dead-lettered
//!    (`max_receive_count_exceeded`). Refused: dead-lettered (`agent_rejected`).
//!
//! A delivery the local stack took back at start-up from a process that stopped
//! ([`Delivery::reclaimed`]) is processed as any other, after a `message.attempt_lost`
//! event and a failure note saying which delivery was lost (its receive counted).
//!
//! Each dead letter goes to its band's dead-letter queue, from which the dispatcher
//! archives it in the store ([`Dispatcher::archive`]) with its reason, its attempts and
//! the first and last failure; from there it is listed, redriven or purged.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::breaker::Admission;
use super::dead_letters::QueuedMessage;
use super::envelope::{self, CompatKeys, Keyring, Opener, Rejection};
use super::ports::{Claim, MessagingStore};
use super::routing::{self, NoRoute};
use super::{Bands, Breaker, BreakerSettings, DeadLetter, DeadLetterFilter, DeadLetterState, Message};
use super::{Recipient, SendMessageRequest};
use crate::agents::{Agent, AgentInvoker, AgentStatus, IDEMPOTENCY_KEY_FIELD, InvokeError};
use crate::clock::Clock;
use crate::events::{Event, EventFilter, EventSink, NewSubscription, Subscription, glob_match};
use crate::ports::{MessageQueue, SecretStore, StoreError};
use crate::queue::{Delivery, MAX_RECEIVES_EXCEEDED, NewMessage, Priority, dead_letter_attributes};
use crate::validation::ValidationErrors;

/// The queue event deliveries to subscribers travel on (one FIFO group per subscription).
pub const EVENT_QUEUE: &str = "events";
/// Its dead-letter queue, archived like the band queues' ones.
pub const EVENT_DEAD_LETTER_QUEUE: &str = "events-dlq";
/// How long the subscriptions are used before they are read again: a new subscription
/// gets events within this long.
const SUBSCRIPTION_CACHE: Duration = Duration::from_secs(5);

/// An event on the event queue: on its way to one subscriber, or (without a
/// subscription) to be fanned out to every subscription that matches it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct EventDelivery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subscription: Option<String>,
    event: Event,
}

/// The FIFO group of fan-out tasks: events reach the subscriptions in the order recorded.
const FAN_OUT_GROUP: &str = "fan-out";

/// How messaging behaves; every field has a setting (see `docs/messaging.md`).
#[derive(Debug, Clone)]
pub struct MessagingConfig {
    pub bands: Bands,
    /// The secret holding the envelope keys (its versions are the key ids).
    pub envelope_secret: String,
    /// The secret holding existing producers' passphrase: compatibility mode is on when set.
    pub compat_secret: Option<String>,
    /// Encrypt payloads (Fernet) when sealing.
    pub encrypt: bool,
    pub freshness: Duration,
    /// The receive on which the dispatcher gives up and dead-letters a failing message.
    pub max_receives: u32,
    pub breaker: BreakerSettings,
    /// The most one call to an agent may take.
    pub attempt_timeout: Duration,
    /// How long a done idempotency key is remembered.
    pub keep_done: Duration,
    /// How long loaded keys are used before they are read again.
    pub key_cache: Duration,
}

/// The secret the local stack and the tests keep envelope keys in.
pub const DEFAULT_ENVELOPE_SECRET: &str = "tdev/envelope-key";

impl Default for MessagingConfig {
    fn default() -> Self {
        Self {
            bands: Bands::default(),
            envelope_secret: DEFAULT_ENVELOPE_SECRET.into(),
            compat_secret: None,
            encrypt: true,
            freshness: envelope::DEFAULT_FRESHNESS,
            max_receives: 5,
            breaker: BreakerSettings::default(),
            attempt_timeout: Duration::from_secs(50),
            keep_done: Duration::from_secs(24 * 3600),
            key_cache: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    #[error("invalid request: {0}")]
    Invalid(#[from] ValidationErrors),
    /// A message addressed to an agent that does not exist.
    /// A message addressed to an agent that does not exist; `path` is its `to_agent`.
    #[error("{path}: no agent with id {id:?}")]
    UnknownAgent { path: String, id: String },
    /// `path` is where the id was given: `$.path.id`, or `$.ids[3]` of a redrive.
    #[error("no dead letter {id:?}")]
    DeadLetterNotFound { path: String, id: String },
    #[error("no subscription {0:?}")]
    SubscriptionNotFound(String),
    #[error("misconfigured: {0}")]
    Misconfigured(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The envelope keys, read from the secret store and cached.
struct Keys<S> {
    store: S,
    secret: String,
    compat_secret: Option<String>,
    ttl: Duration,
    cached: RwLock<Option<(Arc<Opener>, Timestamp)>>,
    reload: tokio::sync::Mutex<()>,
    freshness: Duration,
}

/// Refetching for an unknown key id happens at most this often.
const MIN_REFETCH: Duration = Duration::from_secs(5);

impl<S: SecretStore> Keys<S> {
    fn cached(&self) -> Option<(Arc<Opener>, Timestamp)> {
        self.cached.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The opener (which holds the keyring), fresh enough, and knowing `kid` if given.
    async fn opener(&self, now: Timestamp, kid: Option<&str>) -> Result<Arc<Opener>, MessagingError> {
        let age = |at: Timestamp| Duration::try_from(now.duration_since(at)).unwrap_or(Duration::ZERO);
        let before = self.cached();
        if let Some((opener, at)) = &before {
            // `kid` is given when the cached keys did not know it.
            if age(*at) < self.ttl && (kid.is_none() || age(*at) < MIN_REFETCH) {
                return Ok(opener.clone());
            }
        }
        let _one_at_a_time = self.reload.lock().await;
        if let Some((opener, at)) = self.cached()
            && before.as_ref().is_none_or(|(_, earlier)| at > *earlier)
        {
            return Ok(opener);
        }
        let versions = self.store.secret_versions(&self.secret).await.map_err(|e| match e {
            StoreError::NotFound => MessagingError::Misconfigured(format!("no secret {:?}", self.secret)),
            e => MessagingError::Store(e),
        })?;
        let compat = match &self.compat_secret {
            None => None,
            Some(name) => {
                let value = self.store.secret_versions(name).await?.current.value;
                Some(compat_keys(&value)?)
            }
        };
        let opener =
            Arc::new(Opener { keys: Keyring::from_secret(&versions), compat, freshness: self.freshness });
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = Some((opener.clone(), now));
        Ok(opener)
    }
}

/// The compatibility secret: `{"passphrase": "...", "signing_key": "..."}` (the signing
/// key defaults to the passphrase), or the bare passphrase.
fn compat_keys(value: &str) -> Result<CompatKeys, MessagingError> {
    #[derive(serde::Deserialize)]
    struct Secret {
        passphrase: String,
        signing_key: Option<String>,
    }
    if value.trim_start().starts_with('{') {
        let secret: Secret = serde_json::from_str(value).map_err(|e| {
            MessagingError::Misconfigured(format!("the compatibility secret is not as documented: {e}"))
        })?;
        let signing_key = secret.signing_key.unwrap_or_else(|| secret.passphrase.clone());
        Ok(CompatKeys::new(secret.passphrase, signing_key))
    } else {
        Ok(CompatKeys::new(value, value))
    }
}

/// The message accepted for one request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub id: String,
    #[schema(value_type = u8)]
    pub priority: Priority,
    /// The band queue it went to.
    pub queue: String,
}

/// What a redrive did with one dead letter.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Redriven {
    pub id: String,
    /// The new queue message's id.
    pub message_id: String,
    pub queue: String,
}

/// Which dead letters to redrive, and how.
#[derive(Debug, Clone, Default)]
pub struct RedriveRequest {
    /// These ids; or, when `None`, every dead letter `filter` matches (in state `dead`).
    pub ids: Option<Vec<String>>,
    pub filter: DeadLetterFilter,
    /// Send at this priority instead of the message's own.
    pub priority: Option<Priority>,
}

/// A message's key in the failure notes: the queue and its deduplication id, which a
/// dead-lettered message keeps on every backend.
fn failure_key(queue: &str, dedup_id: &str) -> String {
    format!("{queue}/{dedup_id}")
}

/// Accepts messages, administers dead letters, lists events.
pub struct Messenger<S, Q> {
    store: S,
    queue: Q,
    clock: Arc<dyn Clock>,
    config: MessagingConfig,
    keys: Keys<S>,
    subscriptions: RwLock<Option<(Arc<Vec<Subscription>>, Timestamp)>>,
}

impl<S: MessagingStore, Q: MessageQueue> Messenger<S, Q> {
    pub fn new(store: S, queue: Q, clock: Arc<dyn Clock>, config: MessagingConfig) -> Self {
        let keys = Keys {
            store: store.clone(),
            secret: config.envelope_secret.clone(),
            compat_secret: config.compat_secret.clone(),
            ttl: config.key_cache,
            cached: RwLock::new(None),
            reload: tokio::sync::Mutex::new(()),
            freshness: config.freshness,
        };
        Self { store, queue, clock, config, keys, subscriptions: RwLock::new(None) }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn queue(&self) -> &Q {
        &self.queue
    }

    pub fn config(&self) -> &MessagingConfig {
        &self.config
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Creates the envelope key secret with a random key if it does not exist (the local
    /// stack's first start; the SAM template creates it on AWS). True if it created it.
    pub async fn bootstrap(&self) -> Result<bool, MessagingError> {
        match self.store.secret_versions(&self.config.envelope_secret).await {
            Ok(_) => Ok(false),
            Err(StoreError::NotFound) => {
                self.store.put_secret(&self.config.envelope_secret, &random_secret()).await?;
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Makes a new envelope key current; the old one keeps opening messages.
    pub async fn rotate_key(&self) -> Result<String, MessagingError> {
        let version = self.store.put_secret(&self.config.envelope_secret, &random_secret()).await?;
        *self.keys.cached.write().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(version)
    }

    /// Validates, routes (as far as the API can know), seals and enqueues messages: all
    /// are checked before any is sent. `at` is the JSON path of each request (`$` for a
    /// single message, `$.messages[i]` for a batch).
    pub async fn send(
        &self,
        requests: Vec<(String, SendMessageRequest)>,
        sender: Option<String>,
    ) -> Result<Vec<Accepted>, MessagingError> {
        let now = self.clock.now();
        let mut errors = ValidationErrors::new();
        let mut messages = Vec::with_capacity(requests.len());
        for (at, request) in requests {
            let id = uuid::Uuid::new_v4().to_string();
            match request.validate(&at, id, sender.clone(), now) {
                Ok(message) => messages.push((at, message)),
                Err(e) => e.errors().iter().for_each(|e| errors.add(e.path.clone(), e.message.clone())),
            }
        }
        if !errors.is_empty() {
            return Err(errors.into());
        }
        let agents = self.store.list_agents().await?;
        let mut unknown = None;
        for (at, message) in &messages {
            match routing::candidates(&message.to, &agents, |_| 0) {
                Ok(_) => {}
                Err(NoRoute::UnknownAgent(id)) if unknown.is_none() => {
                    unknown = Some(MessagingError::UnknownAgent { path: format!("{at}.to_agent"), id });
                }
                Err(NoRoute::UnknownAgent(_)) => {}
                Err(no_route @ NoRoute::Inactive(_)) => {
                    errors.add(format!("{at}.to_agent"), no_route.to_string())
                }
                Err(no_route @ NoRoute::NoCapableAgent(_)) => {
                    errors.add(format!("{at}.capability"), no_route.to_string())
                }
            }
        }
        if let Some(unknown) = unknown {
            return Err(unknown);
        }
        errors.into_result(())?;
        let opener = self.keys.opener(now, None).await?;
        let mut accepted = Vec::with_capacity(messages.len());
        for (_, message) in messages {
            let queue = self.config.bands.band(message.priority).queue.clone();
            let body = envelope::seal(&message, &opener.keys, self.config.encrypt);
            let mut attributes = std::collections::BTreeMap::new();
            attributes.insert("tdev-type".to_owned(), message.kind.clone());
            self.queue
                .send(
                    &queue,
                    NewMessage {
                        group: message.group.clone(),
                        dedup_id: message.idempotency_key.clone(),
                        body,
                        priority: message.priority,
                        attributes,
                    },
                )
                .await?;
            self.event(
                "message.accepted",
                &message.id,
                json!({
                    "type": message.kind, "to": message.to, "priority": message.priority,
                    "group": message.group, "queue": queue,
                }),
            )
            .await;
            accepted.push(Accepted { id: message.id, priority: message.priority, queue });
        }
        Ok(accepted)
    }

    /// Appends an event; a failure is logged, never fails the work it describes.
    async fn event(&self, kind: &str, subject: &str, data: serde_json::Value) {
        let event = Event::new(kind, subject, self.clock.now(), data);
        if let Err(e) = self.store.append_event(&event).await {
            tracing::warn!(error = %e, kind, subject, "could not record an event");
            return;
        }
        self.fan_out(&event).await;
    }

    /// Queues one fan-out task for the event when any subscription may want it: the
    /// consumer then queues a delivery for each matching subscription (see
    /// [`Dispatcher::deliver_event`]). One send per event, however many subscriptions
    /// there are: a request that records many events does not pay for each subscriber.
    async fn fan_out(&self, event: &Event) {
        let subscriptions = match self.current_subscriptions().await {
            Ok(subscriptions) => subscriptions,
            Err(e) => {
                tracing::warn!(error = %e, event = %event.id, "could not read subscriptions; the event is only recorded");
                return;
            }
        };
        if !subscriptions.iter().any(|s| glob_match(&s.pattern, &event.kind)) {
            return;
        }
        let body = EventDelivery { subscription: None, event: event.clone() };
        let message = NewMessage {
            group: FAN_OUT_GROUP.into(),
            dedup_id: format!("fan-out.{}", event.id),
            body: serde_json::to_string(&body).unwrap_or_default(),
            priority: Priority::DEFAULT,
            attributes: Default::default(),
        };
        if let Err(e) = self.queue.send(EVENT_QUEUE, message).await {
            tracing::warn!(error = %e, event = %event.id, "could not queue an event's fan-out");
        }
    }

    /// Queues the event for each subscription whose pattern matches it, in its own FIFO
    /// group; a send that fails makes the whole fan-out retried (the deliveries already
    /// queued are deduplicated by their ids).
    async fn queue_deliveries(&self, event: &Event) -> Result<(), StoreError> {
        let subscriptions = self.current_subscriptions().await?;
        for subscription in subscriptions.iter().filter(|s| glob_match(&s.pattern, &event.kind)) {
            let body = EventDelivery { subscription: Some(subscription.id.clone()), event: event.clone() };
            let message = NewMessage {
                group: subscription.id.clone(),
                dedup_id: format!("{}.{}", subscription.id, event.id),
                body: serde_json::to_string(&body).unwrap_or_default(),
                priority: Priority::DEFAULT,
                attributes: Default::default(),
            };
            self.queue.send(EVENT_QUEUE, message).await?;
        }
        Ok(())
    }

    async fn current_subscriptions(&self) -> Result<Arc<Vec<Subscription>>, StoreError> {
        let now = self.clock.now();
        let cached = self.subscriptions.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((subscriptions, at)) = cached
            && until(at, now) < SUBSCRIPTION_CACHE
        {
            return Ok(subscriptions);
        }
        let subscriptions = Arc::new(self.store.list_subscriptions().await?);
        *self.subscriptions.write().unwrap_or_else(|e| e.into_inner()) = Some((subscriptions.clone(), now));
        Ok(subscriptions)
    }

    pub async fn subscribe(&self, request: NewSubscription) -> Result<Subscription, MessagingError> {
        let subscription = request.validate(uuid::Uuid::new_v4().simple().to_string(), self.clock.now())?;
        self.store.insert_subscription(&subscription).await?;
        *self.subscriptions.write().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(subscription)
    }

    pub async fn subscriptions(&self) -> Result<Vec<Subscription>, MessagingError> {
        Ok(self.store.list_subscriptions().await?)
    }

    pub async fn unsubscribe(&self, id: &str) -> Result<(), MessagingError> {
        match self.store.delete_subscription(id).await {
            Ok(()) => {
                *self.subscriptions.write().unwrap_or_else(|e| e.into_inner()) = None;
                Ok(())
            }
            Err(StoreError::NotFound) => Err(MessagingError::SubscriptionNotFound(id.into())),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<Event>, MessagingError> {
        Ok(self.store.list_events(filter).await?)
    }

    pub async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, MessagingError> {
        Ok(self.store.list_dead_letters(filter).await?)
    }

    pub async fn dead_letter(&self, id: &str) -> Result<DeadLetter, MessagingError> {
        self.store
            .get_dead_letter(id)
            .await?
            .ok_or_else(|| MessagingError::DeadLetterNotFound { path: "$.path.id".into(), id: id.into() })
    }

    /// Archives a delivery from a dead-letter queue: once, whatever the redeliveries.
    pub async fn archive(&self, dead_letter_queue: &str, delivery: &Delivery) -> Result<(), MessagingError> {
        let attribute = |name: &str| delivery.attributes.get(name).cloned();
        let source_queue = attribute(dead_letter_attributes::SOURCE_QUEUE)
            .or_else(|| self.config.bands.by_queue(dead_letter_queue).map(|band| band.queue.clone()))
            .unwrap_or_else(|| dead_letter_queue.trim_end_matches("-dlq").to_owned());
        let reason =
            attribute(dead_letter_attributes::REASON).unwrap_or_else(|| MAX_RECEIVES_EXCEEDED.into());
        let note = self.store.failures(&failure_key(&source_queue, &delivery.dedup_id)).await?;
        let now = self.clock.now();
        let attempts = attribute(dead_letter_attributes::RECEIVE_COUNT)
            .and_then(|count| count.parse().ok())
            .unwrap_or(delivery.receive_count);
        let dead_letter = DeadLetter {
            id: delivery.message_id.clone(),
            source_queue,
            reason: reason.clone(),
            detail: note.as_ref().map(|n| n.last_reason.clone()),
            attempts: note.as_ref().map_or(attempts, |n| n.attempts.max(attempts)),
            first_failure_at: note.as_ref().map(|n| n.first_at),
            last_failure_at: note.as_ref().map(|n| n.last_at),
            dead_lettered_at: attribute(dead_letter_attributes::DEAD_LETTERED_AT)
                .and_then(|at| at.parse().ok())
                .unwrap_or(now),
            message: QueuedMessage {
                group: delivery.group.clone(),
                dedup_id: delivery.dedup_id.clone(),
                body: delivery.body.clone(),
                priority: delivery.priority,
                attributes: delivery
                    .attributes
                    .iter()
                    .filter(|(name, _)| !is_dead_letter_attribute(name))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect(),
            },
            state: DeadLetterState::Dead,
            version: 1,
        };
        match self.store.put_dead_letter(&dead_letter).await {
            Ok(()) => {
                tracing::error!(id = %dead_letter.id, reason = %reason, queue = %dead_letter.source_queue, "message dead-lettered");
                self.event("message.dead_lettered", &dead_letter.id, json!({
                    "reason": reason, "detail": dead_letter.detail, "source_queue": dead_letter.source_queue,
                    "attempts": dead_letter.attempts,
                }))
                .await;
                Ok(())
            }
            Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Sends dead letters back, each exactly once: the record moves to `redriving`
    /// (naming the deduplication id of the re-send) before the send and to `redriven`
    /// after, both conditional writes, so a redrive cut off in between is finished by the
    /// next one with the same deduplication id. A message whose envelope still verifies is
    /// re-sealed with the current key and a fresh time (else its freshness would kill it
    /// again); one that does not is sent back as it was, and will be dead-lettered again
    /// unless what was wrong (a key, say) has been fixed.
    pub async fn redrive(&self, request: RedriveRequest) -> Result<Vec<Redriven>, MessagingError> {
        let targets = match request.ids {
            Some(ids) => {
                let mut found = Vec::with_capacity(ids.len());
                for (i, id) in ids.into_iter().enumerate() {
                    let dead_letter = self.dead_letter(&id).await.map_err(|e| match e {
                        MessagingError::DeadLetterNotFound { id, .. } => {
                            MessagingError::DeadLetterNotFound { path: format!("$.ids[{i}]"), id }
                        }
                        other => other,
                    })?;
                    found.push(dead_letter);
                }
                found
            }
            None => {
                let filter = DeadLetterFilter { state: Some("dead".into()), ..request.filter };
                self.store.list_dead_letters(&filter).await?
            }
        };
        let mut done = Vec::new();
        for dead_letter in targets {
            if let Some(redriven) = self.redrive_one(dead_letter, request.priority).await? {
                done.push(redriven);
            }
        }
        Ok(done)
    }

    async fn redrive_one(
        &self,
        mut dead_letter: DeadLetter,
        priority: Option<Priority>,
    ) -> Result<Option<Redriven>, MessagingError> {
        let (to_queue, dedup_id, level) = match &dead_letter.state {
            DeadLetterState::Redriven { .. } => return Ok(None),
            DeadLetterState::Redriving { to_queue, dedup_id, priority } => {
                (to_queue.clone(), dedup_id.clone(), *priority)
            }
            DeadLetterState::Dead => {
                let priority = priority.unwrap_or(dead_letter.message.priority);
                let to_queue = match self.config.bands.by_queue(&dead_letter.source_queue) {
                    Some(_) => self.config.bands.band(priority).queue.clone(),
                    None => dead_letter.source_queue.clone(),
                };
                let dedup_id = format!("redrive-{}-{}", dead_letter.id, dead_letter.version);
                dead_letter.state = DeadLetterState::Redriving {
                    to_queue: to_queue.clone(),
                    dedup_id: dedup_id.clone(),
                    priority: priority.level(),
                };
                dead_letter.version += 1;
                match self.store.update_dead_letter(&dead_letter).await {
                    Ok(()) => {}
                    // Someone else is redriving it.
                    Err(StoreError::Conflict(_)) => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
                (to_queue, dedup_id, priority.level())
            }
        };
        let priority = Priority::new(level).unwrap_or_default();
        let now = self.clock.now();
        let opener = self.keys.opener(now, None).await?;
        let lenient = Opener { freshness: Duration::from_secs(100 * 365 * 24 * 3600), ..(*opener).clone() };
        let body = match lenient.open(&dead_letter.message.body, now) {
            Ok(opened) => {
                let message = Message { priority, created_at: now, ..opened.message };
                envelope::seal(&message, &opener.keys, self.config.encrypt)
            }
            Err(_) => dead_letter.message.body.clone(),
        };
        let message_id = self
            .queue
            .send(
                &to_queue,
                NewMessage {
                    group: dead_letter.message.group.clone(),
                    dedup_id: dedup_id.clone(),
                    body,
                    priority,
                    attributes: dead_letter.message.attributes.clone(),
                },
            )
            .await?;
        dead_letter.state =
            DeadLetterState::Redriven { to_queue: to_queue.clone(), message_id: message_id.clone(), at: now };
        dead_letter.version += 1;
        match self.store.update_dead_letter(&dead_letter).await {
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.event("message.redriven", &dead_letter.id, json!({"queue": to_queue, "message_id": message_id}))
            .await;
        Ok(Some(Redriven { id: dead_letter.id, message_id, queue: to_queue }))
    }

    /// Deletes dead letters for good; returns the ids that existed.
    pub async fn purge(&self, ids: &[String]) -> Result<Vec<String>, MessagingError> {
        let mut purged = Vec::new();
        for id in ids {
            match self.store.delete_dead_letter(id).await {
                Ok(()) => {
                    self.event("message.purged", id, json!({})).await;
                    purged.push(id.clone());
                }
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(purged)
    }
}

fn is_dead_letter_attribute(name: &str) -> bool {
    [
        dead_letter_attributes::REASON,
        dead_letter_attributes::SOURCE_QUEUE,
        dead_letter_attributes::RECEIVE_COUNT,
        dead_letter_attributes::DEAD_LETTERED_AT,
    ]
    .contains(&name)
}

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    hex::encode(bytes)
}

/// What to do with a delivery from a band queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done (or a duplicate): delete it.
    Done,
    /// It failed and may succeed later: visible again after this long.
    RetryAfter(Duration),
    /// It must wait (the agent's breaker is open, or it is at its concurrency): visible
    /// again after this long, without using up its receives.
    Hold(Duration),
    /// It can never be delivered.
    DeadLetter { reason: String, detail: String },
}

/// Consumes the band queues and archives their dead letters.
pub struct Dispatcher<S, Q, I> {
    messenger: Arc<Messenger<S, Q>>,
    invoker: I,
}

/// What an agent receives for a message: the same on every delivery of it.
fn payload(message: &Message) -> serde_json::Value {
    let mut payload = json!({
        "id": message.id, "type": message.kind, "payload": message.payload,
        "metadata": message.metadata, "sender": message.sender, "priority": message.priority,
        "group": message.group, "created_at": message.created_at,
    });
    payload[IDEMPOTENCY_KEY_FIELD] = json!(message.idempotency_key);
    payload
}

fn until(now: Timestamp, then: Timestamp) -> Duration {
    Duration::try_from(then.duration_since(now)).unwrap_or(Duration::ZERO)
}

fn after(now: Timestamp, duration: Duration) -> Timestamp {
    now.saturating_add(SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)).unwrap_or(now)
}

/// Retry delays: 1, 2, 4, … seconds, at most a minute.
fn backoff(receive_count: u32) -> Duration {
    Duration::from_secs(1u64 << receive_count.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// A held message is visible again after this long at most, so it notices a breaker
/// closing through another consumer's probe.
const MAX_HOLD: Duration = Duration::from_secs(30);
/// When every candidate is at its concurrency limit, look again after this long.
const BUSY_HOLD: Duration = Duration::from_secs(1);
/// A slot's lease is the attempt timeout and this much more: the call is bounded by the
/// timeout, and the margin covers the writes around it and clocks a little apart.
pub const SLOT_LEASE_MARGIN: Duration = Duration::from_secs(10);
/// An idempotency key's claim is leased for the attempt timeout and this much more: it
/// spans the routing, the call and the settling, and must not run out before them.
const CLAIM_LEASE_MARGIN: Duration = Duration::from_secs(30);

impl<S: MessagingStore, Q: MessageQueue, I: AgentInvoker + EventSink> Dispatcher<S, Q, I> {
    /// Delivers one event to its subscriber: done, retried with backoff while the
    /// subscriber is unavailable, dead-lettered when it refuses or its receives run out.
    /// An event for a subscription since deleted is dropped.
    pub async fn deliver_event(&self, delivery: &Delivery) -> Disposition {
        let body: EventDelivery = match serde_json::from_str(&delivery.body) {
            Ok(body) => body,
            Err(e) => return Disposition::DeadLetter { reason: "malformed".into(), detail: e.to_string() },
        };
        let Some(subscription_id) = body.subscription else {
            return match self.messenger.queue_deliveries(&body.event).await {
                Ok(()) => Disposition::Done,
                Err(e) if delivery.receive_count >= self.config().max_receives => Disposition::DeadLetter {
                    reason: MAX_RECEIVES_EXCEEDED.into(),
                    detail: format!("fan-out: {e}"),
                },
                Err(e) => {
                    tracing::warn!(error = %e, event = %body.event.id, "could not fan an event out");
                    Disposition::RetryAfter(backoff(delivery.receive_count))
                }
            };
        };
        let subscriptions = match self.messenger.current_subscriptions().await {
            Ok(subscriptions) => subscriptions,
            Err(e) => {
                tracing::warn!(error = %e, "could not read subscriptions");
                return Disposition::RetryAfter(backoff(delivery.receive_count));
            }
        };
        let Some(subscription) = subscriptions.iter().find(|s| s.id == subscription_id) else {
            tracing::info!(subscription = %subscription_id, "an event for a deleted subscription dropped");
            return Disposition::Done;
        };
        match self.invoker.deliver(&subscription.target, &body.event, self.config().attempt_timeout).await {
            Ok(()) => Disposition::Done,
            Err(e) => {
                let detail = format!("subscription {}: {e}", subscription.id);
                if !e.is_retryable() {
                    Disposition::DeadLetter { reason: "subscriber_rejected".into(), detail }
                } else if delivery.receive_count >= self.config().max_receives {
                    Disposition::DeadLetter { reason: MAX_RECEIVES_EXCEEDED.into(), detail }
                } else {
                    let key = failure_key(EVENT_QUEUE, &delivery.dedup_id);
                    let noted = self.store().note_failure(&key, &detail, self.messenger.clock.now()).await;
                    if let Err(e) = noted {
                        tracing::warn!(error = %e, "could not note a failure");
                    }
                    Disposition::RetryAfter(backoff(delivery.receive_count))
                }
            }
        }
    }
}

impl<S: MessagingStore, Q: MessageQueue, I: AgentInvoker> Dispatcher<S, Q, I> {
    pub fn new(messenger: Arc<Messenger<S, Q>>, invoker: I) -> Self {
        Self { messenger, invoker }
    }

    pub fn messenger(&self) -> &Arc<Messenger<S, Q>> {
        &self.messenger
    }

    fn config(&self) -> &MessagingConfig {
        &self.messenger.config
    }

    fn store(&self) -> &S {
        &self.messenger.store
    }

    /// Processes one delivery from a band queue; [`Dispatcher::settle`] applies the result.
    pub async fn process(&self, queue: &str, delivery: &Delivery) -> Disposition {
        match self.try_process(queue, delivery).await {
            Ok(disposition) => disposition,
            Err(e) => {
                tracing::warn!(error = %e, message_id = %delivery.message_id, "could not process a message; it will be retried");
                Disposition::RetryAfter(backoff(delivery.receive_count))
            }
        }
    }

    async fn try_process(&self, queue: &str, delivery: &Delivery) -> Result<Disposition, MessagingError> {
        let now = self.messenger.clock.now();
        let opener = self.messenger.keys.opener(now, None).await?;
        let opened = match opener.open(&delivery.body, now) {
            Err(Rejection::UnknownKey(kid)) => {
                // Perhaps the key was rotated since the keys were read.
                self.messenger.keys.opener(now, Some(&kid)).await?.open(&delivery.body, now)
            }
            other => other,
        };
        let message = match opened {
            Ok(opened) => opened.message,
            Err(rejection) => {
                return Ok(Disposition::DeadLetter {
                    reason: rejection.code().into(),
                    detail: rejection.to_string(),
                });
            }
        };
        if delivery.reclaimed {
            self.reclaimed(queue, &message, delivery).await;
        }
        let key = format!("message/{}", message.idempotency_key);
        let holder = uuid::Uuid::new_v4().to_string();
        let lease = after(now, self.config().attempt_timeout + CLAIM_LEASE_MARGIN);
        match self.store().claim(&key, &holder, now, lease).await? {
            Claim::Acquired => {}
            Claim::Done => {
                tracing::info!(message_id = %message.id, "duplicate message dropped");
                self.messenger
                    .event(
                        "message.duplicate",
                        &message.id,
                        json!({"idempotency_key": message.idempotency_key}),
                    )
                    .await;
                return Ok(Disposition::Done);
            }
            Claim::Busy { until: then } => return Ok(Disposition::Hold(until(now, then).max(BUSY_HOLD))),
        }
        let result = self.deliver(queue, &message, delivery, &holder, now).await;
        let keep = match &result {
            Ok(Disposition::Done) => Some(after(now, self.config().keep_done)),
            _ => None,
        };
        let settled = match keep {
            Some(keep_until) => self.store().complete(&key, &holder, keep_until).await,
            None => self.store().release(&key, &holder).await,
        };
        if let Err(e) = settled {
            tracing::warn!(error = %e, key, "could not settle an idempotency key");
        }
        result
    }

    /// Says why a message is delivered again: the local stack restarted while delivering
    /// it, and took it back at start-up. Its event and the failure noted for it (which a
    /// dead letter shows) say which delivery was lost.
    async fn reclaimed(&self, queue: &str, message: &Message, delivery: &Delivery) {
        let lost = delivery.receive_count.saturating_sub(1);
        let reason = format!(
            "message `{}`: delivery {lost} lost with the previous process; delivering again",
            message.id
        );
        tracing::warn!(message_id = %message.id, queue, attempt = lost, "{reason}");
        self.messenger
            .event(
                "message.attempt_lost",
                &message.id,
                json!({"attempt": lost, "cause": "restart", "reason": reason}),
            )
            .await;
        let key = failure_key(queue, &delivery.dedup_id);
        if let Err(e) = self.store().note_failure(&key, &reason, self.messenger.clock.now()).await {
            tracing::warn!(error = %e, "could not note a failure");
        }
    }

    /// Routes the message and calls the chosen agent; `holder` (the attempt's) holds the
    /// agent's slot for the call.
    async fn deliver(
        &self,
        queue: &str,
        message: &Message,
        delivery: &Delivery,
        holder: &str,
        now: Timestamp,
    ) -> Result<Disposition, MessagingError> {
        let agents = match &message.to {
            Recipient::Agent(id) => self.store().get_agent(id).await?.into_iter().collect(),
            Recipient::Capability(_) => self.store().list_agents().await?,
        };
        let mut load = std::collections::HashMap::new();
        if matches!(message.to, Recipient::Capability(_)) {
            for agent in agents.iter().filter(|a| a.status == AgentStatus::Active) {
                load.insert(agent.id.clone(), self.store().in_flight(&agent.id, now).await?);
            }
        }
        let candidates =
            match routing::candidates(&message.to, &agents, |a| load.get(&a.id).copied().unwrap_or(0)) {
                Ok(candidates) => candidates,
                Err(no_route) => {
                    return Ok(Disposition::DeadLetter {
                        reason: no_route.code().into(),
                        detail: no_route.to_string(),
                    });
                }
            };
        let mut hold = MAX_HOLD;
        for agent in candidates {
            let breaker = self.store().get_breaker(&agent.id).await?.unwrap_or_default();
            let probe = match breaker.admit(now, &self.config().breaker) {
                Admission::Allow => false,
                Admission::Hold { until: then } => {
                    hold = hold.min(until(now, then));
                    continue;
                }
                Admission::Probe(probing) => match self.store().put_breaker(&agent.id, &probing).await {
                    Ok(()) => {
                        tracing::info!(agent_id = %agent.id, "circuit half-open: probing");
                        true
                    }
                    Err(StoreError::Conflict(_)) => {
                        hold = hold.min(BUSY_HOLD);
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                },
            };
            let max = agent.max_concurrency.unwrap_or(u32::MAX);
            let now = self.messenger.clock.now();
            let lease = after(now, self.config().attempt_timeout + SLOT_LEASE_MARGIN);
            match self.store().acquire_slot(&agent.id, holder, max, now, lease).await {
                Ok(true) => {}
                // All taken, or too many consumers raced for one.
                Ok(false) | Err(StoreError::Conflict(_)) => {
                    hold = hold.min(BUSY_HOLD);
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            let result =
                self.invoker.invoke(&agent.target, &payload(message), self.config().attempt_timeout).await;
            if let Err(e) = self.store().release_slot(&agent.id, holder).await {
                tracing::warn!(error = %e, agent_id = %agent.id, "could not give a slot back; its lease ends it");
            }
            return Ok(self.answered(queue, agent, message, delivery, probe, result).await);
        }
        Ok(Disposition::Hold(hold.max(Duration::from_secs(1))))
    }

    /// What the agent's answer means for the message. A failed probe (`probe`: the
    /// breaker was half-open) holds the message rather than using up one of its receives:
    /// the agent is down, and messages wait for it rather than die of it.
    async fn answered(
        &self,
        queue: &str,
        agent: &Agent,
        message: &Message,
        delivery: &Delivery,
        probe: bool,
        result: Result<serde_json::Map<String, serde_json::Value>, InvokeError>,
    ) -> Disposition {
        let now = self.messenger.clock.now();
        self.record_breaker(agent, result.as_ref().map(|_| ()).map_err(|e| e.is_retryable())).await;
        match result {
            Ok(_) => {
                self.messenger
                    .event(
                        "message.delivered",
                        &message.id,
                        json!({"agent": agent.id, "attempt": delivery.receive_count}),
                    )
                    .await;
                Disposition::Done
            }
            Err(e) => {
                let detail = format!("agent {}: {e}", agent.id);
                self.messenger
                    .event(
                        "message.failed",
                        &message.id,
                        json!({"agent": agent.id, "attempt": delivery.receive_count, "error": e.to_string()}),
                    )
                    .await;
                // A dead letter's last failure is noted as it is settled.
                if !e.is_retryable() {
                    return Disposition::DeadLetter { reason: "agent_rejected".into(), detail };
                }
                if delivery.receive_count >= self.config().max_receives && !probe {
                    return Disposition::DeadLetter { reason: MAX_RECEIVES_EXCEEDED.into(), detail };
                }
                let key = failure_key(queue, &delivery.dedup_id);
                if let Err(e) = self.store().note_failure(&key, &detail, now).await {
                    tracing::warn!(error = %e, "could not note a failure");
                }
                if probe {
                    Disposition::Hold(self.config().breaker.open_for.min(MAX_HOLD))
                } else {
                    Disposition::RetryAfter(backoff(delivery.receive_count))
                }
            }
        }
    }

    /// Counts a success or (retryable: `Err(true)`) failure on the agent's breaker. A
    /// refusal says nothing about the agent's health and changes nothing.
    async fn record_breaker(&self, agent: &Agent, result: Result<(), bool>) {
        for _ in 0..5 {
            let now = self.messenger.clock.now();
            let current = match self.store().get_breaker(&agent.id).await {
                Ok(breaker) => breaker.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(error = %e, agent_id = %agent.id, "could not read a breaker");
                    return;
                }
            };
            let next: Breaker = match result {
                Ok(()) if current.state == Breaker::default().state => return,
                Ok(()) => current.on_success(now),
                Err(true) => current.on_failure(now, &self.config().breaker),
                Err(false) => return,
            };
            match self.store().put_breaker(&agent.id, &next).await {
                Ok(()) => {
                    if next.is_open() != current.is_open() {
                        let kind =
                            if next.is_open() { "agent.circuit_opened" } else { "agent.circuit_closed" };
                        tracing::warn!(agent_id = %agent.id, kind, "circuit breaker changed");
                        self.messenger.event(kind, &agent.id, json!({"breaker": next})).await;
                    }
                    return;
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, agent_id = %agent.id, "could not write a breaker");
                    return;
                }
            }
        }
    }

    /// Applies a disposition to a delivery from `queue`.
    pub async fn settle(
        &self,
        queue: &str,
        delivery: &Delivery,
        disposition: Disposition,
    ) -> Result<(), StoreError> {
        let messenger = &self.messenger;
        match disposition {
            Disposition::Done => messenger.queue.ack(queue, &delivery.receipt).await,
            Disposition::RetryAfter(delay) => {
                messenger.queue.retry_after(queue, &delivery.receipt, delay).await
            }
            Disposition::Hold(delay) if delivery.receive_count + 1 < self.config().max_receives => {
                messenger.queue.retry_after(queue, &delivery.receipt, delay).await
            }
            Disposition::Hold(_) => {
                // Its next receive would be its last: send it again, fresh, and drop this copy.
                let copy = NewMessage {
                    group: delivery.group.clone(),
                    dedup_id: format!("held-{}", uuid::Uuid::new_v4().simple()),
                    body: delivery.body.clone(),
                    priority: delivery.priority,
                    attributes: delivery.attributes.clone(),
                };
                let id = messenger.queue.send(queue, copy).await?;
                tracing::info!(message_id = %delivery.message_id, new_id = %id, "held message re-sent");
                match messenger.queue.ack(queue, &delivery.receipt).await {
                    Ok(()) | Err(StoreError::NotFound) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Disposition::DeadLetter { reason, detail } => {
                let key = failure_key(queue, &delivery.dedup_id);
                let note = messenger.store.note_failure(&key, &detail, messenger.clock.now());
                if let Err(e) = note.await {
                    tracing::warn!(error = %e, "could not note a failure");
                }
                messenger.queue.dead_letter(queue, delivery, &reason).await
            }
        }
    }

    /// Archives a delivery from a dead-letter queue and acknowledges it.
    pub async fn archive(&self, dead_letter_queue: &str, delivery: &Delivery) -> Result<(), MessagingError> {
        self.messenger.archive(dead_letter_queue, delivery).await?;
        match self.messenger.queue.ack(dead_letter_queue, &delivery.receipt).await {
            Ok(()) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
