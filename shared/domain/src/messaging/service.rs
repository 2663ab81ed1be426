//! [`Messenger`]: what the API asks of messaging. It accepts messages (every request
//! checked, routed as far as the API can know, sealed and queued on its priority band,
//! all checked before any is sent), rotates the envelope key, and administers dead
//! letters: lists them, redrives them (each exactly once, see [`Messenger::redrive`])
//! and purges them. What happens to a message once queued is the worker's
//! (`worker.rs`).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;

use super::envelope::{self, Opener};
use super::keys::{KeyError, Keys, random_secret};
use super::ports::MessagingStore;
use super::routing::{self, NoRoute};
use super::{
    Bands, BreakerSettings, DeadLetter, DeadLetterFilter, DeadLetterState, Message, SendMessageRequest,
};
use crate::clock::Clock;
use crate::events::EventLog;
use crate::ports::{MessageQueue, StoreError};
use crate::queue::{NewMessage, Priority};
use crate::validation::ValidationErrors;

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
            attempt_timeout: crate::agents::DEFAULT_ATTEMPT_TIMEOUT,
            keep_done: Duration::from_secs(24 * 3600),
            key_cache: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    #[error("invalid request: {0}")]
    Invalid(#[from] ValidationErrors),
    /// A message addressed to an agent that does not exist; `path` is its `to_agent`.
    #[error("{path}: no agent with id {id:?}")]
    UnknownAgent { path: String, id: String },
    /// `path` is where the id was given: `$.path.id`, or `$.ids[3]` of a redrive.
    #[error("no dead letter {id:?}")]
    DeadLetterNotFound { path: String, id: String },
    #[error("misconfigured: {0}")]
    Misconfigured(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<KeyError> for MessagingError {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::Misconfigured(detail) => MessagingError::Misconfigured(detail),
            KeyError::Store(e) => MessagingError::Store(e),
        }
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

/// Accepts messages and administers dead letters; records events in its [`EventLog`].
pub struct Messenger<S, Q> {
    pub(super) store: S,
    pub(super) queue: Q,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) config: MessagingConfig,
    pub(super) keys: Keys<S>,
    pub(super) events: EventLog<S>,
}

impl<S: MessagingStore, Q: MessageQueue> Messenger<S, Q> {
    pub fn new(store: S, queue: Q, clock: Arc<dyn Clock>, config: MessagingConfig) -> Self {
        let keys = Keys::new(
            store.clone(),
            config.envelope_secret.clone(),
            config.compat_secret.clone(),
            config.key_cache,
            config.freshness,
        );
        let events = EventLog::new(store.clone(), clock.clone());
        Self { store, queue, clock, config, keys, events }
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

    /// The event log: events listed, subscriptions administered.
    pub fn events(&self) -> &EventLog<S> {
        &self.events
    }

    /// Records an event (and fans it out); a failure is logged, never fails the work it
    /// describes.
    pub(super) async fn event(&self, kind: &str, subject: &str, data: serde_json::Value) {
        self.events.record(&self.queue, kind, subject, data).await;
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
        self.keys.forget();
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

    pub async fn dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, MessagingError> {
        Ok(self.store.list_dead_letters(filter).await?)
    }

    pub async fn dead_letter(&self, id: &str) -> Result<DeadLetter, MessagingError> {
        self.store
            .get_dead_letter(id)
            .await?
            .ok_or_else(|| MessagingError::DeadLetterNotFound { path: "$.path.id".into(), id: id.into() })
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
        let (to_queue, dedup_id, priority) = match &dead_letter.state {
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
                    priority,
                };
                dead_letter.version += 1;
                match self.store.update_dead_letter(&dead_letter).await {
                    Ok(()) => {}
                    // Someone else is redriving it.
                    Err(StoreError::Conflict(_)) => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
                (to_queue, dedup_id, priority)
            }
        };
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
