//! [`Dispatcher`]: what a queue delivery asks of messaging. It consumes the band queues —
//! it opens each envelope, drops duplicates, routes, and calls the agent — delivers the
//! event queue's events to their subscribers (see `events::EventLog`), and archives what
//! reaches the dead-letter queues.
//!
//! # What happens to a delivery
//!
//! 1. The envelope is opened: a body that is malformed, tampered, stale, signed with an
//!    unknown key or undecryptable is dead-lettered at once with [`Rejection::code`].
//! 2. Its idempotency key is claimed (a conditional put, leased for the attempt): a key
//!    already done means a duplicate, acknowledged without effect; a key another consumer
//!    holds means "later".
//! 3. It is routed ([`routing::candidates`]); no agent → dead-lettered with the
//!    [`NoRoute::code`](routing::NoRoute::code).
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

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::breaker::Admission;
use super::envelope::Rejection;
use super::ports::{Claim, MessagingStore};
use super::routing;
use super::service::{MessagingConfig, MessagingError, Messenger};
use super::{Breaker, DeadLetter, Message, Recipient};
use crate::agents::{Agent, AgentInvoker, AgentStatus, IDEMPOTENCY_KEY_FIELD, InvokeError};
use crate::events::{EVENT_DEAD_LETTER_QUEUE, EVENT_QUEUE, EventSink, EventTask};
use crate::ports::{MessageQueue, StoreError};
use crate::queue::{Delivery, Handled, MAX_RECEIVES_EXCEEDED, NewMessage, Polling, QueueWorker};

/// A message's key in the failure notes: the queue and its deduplication id, which a
/// dead-lettered message keeps on every backend.
fn failure_key(queue: &str, dedup_id: &str) -> String {
    format!("{queue}/{dedup_id}")
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
const SLOT_LEASE_MARGIN: Duration = Duration::from_secs(10);
/// An idempotency key's claim is leased for the attempt timeout and this much more: it
/// spans the routing, the call and the settling, and must not run out before them.
const CLAIM_LEASE_MARGIN: Duration = Duration::from_secs(30);

impl<S: MessagingStore, Q: MessageQueue, I: AgentInvoker + EventSink> Dispatcher<S, Q, I> {
    /// Delivers one event to its subscriber: done, retried with backoff while the
    /// subscriber is unavailable, dead-lettered when it refuses or its receives run out.
    /// An event for a subscription since deleted is dropped.
    pub async fn deliver_event(&self, delivery: &Delivery) -> Disposition {
        let body: EventTask = match serde_json::from_str(&delivery.body) {
            Ok(body) => body,
            Err(e) => return Disposition::DeadLetter { reason: "malformed".into(), detail: e.to_string() },
        };
        let Some(subscription_id) = body.subscription else {
            return match self.messenger.events.queue_deliveries(&self.messenger.queue, &body.event).await {
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
        let subscriptions = match self.messenger.events.current_subscriptions().await {
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
        self.store_dead_letter(dead_letter_queue, delivery).await?;
        match self.messenger.queue.ack(dead_letter_queue, &delivery.receipt).await {
            Ok(()) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a delivery from a dead-letter queue as a dead letter: once, whatever the
    /// redeliveries.
    async fn store_dead_letter(
        &self,
        dead_letter_queue: &str,
        delivery: &Delivery,
    ) -> Result<(), MessagingError> {
        let fallback = self.config().bands.by_queue(dead_letter_queue).map(|band| band.queue.clone());
        let source_queue = DeadLetter::source_queue_of(delivery, dead_letter_queue, fallback);
        let note = self.store().failures(&failure_key(&source_queue, &delivery.dedup_id)).await?;
        let dead_letter = DeadLetter::of_delivery(delivery, source_queue, note, self.messenger.clock.now());
        let reason = dead_letter.reason.clone();
        match self.store().put_dead_letter(&dead_letter).await {
            Ok(()) => {
                tracing::error!(id = %dead_letter.id, reason = %reason, queue = %dead_letter.source_queue, "message dead-lettered");
                self.messenger.event("message.dead_lettered", &dead_letter.id, json!({
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
}

/// How long a message received by the local stack stays hidden while it is processed.
const LOCAL_VISIBILITY: Duration = Duration::from_secs(60);

/// A band queue's message goes through [`Dispatcher::process`], an event delivery through
/// [`Dispatcher::deliver_event`], and what reaches a dead-letter queue into the archive.
impl<S: MessagingStore, Q: MessageQueue, I: AgentInvoker + EventSink> QueueWorker for Dispatcher<S, Q, I> {
    async fn handle(&self, queue: &str, delivery: &Delivery) -> Handled {
        if delivery.reclaimed {
            // The dispatcher also records why for a band's message (it can read the envelope).
            tracing::info!(
                queue,
                message_id = %delivery.message_id,
                receive_count = delivery.receive_count,
                "delivered again: the previous process stopped while handling it (reclaimed at start-up)"
            );
        }
        let config = self.messenger().config();
        if queue == EVENT_DEAD_LETTER_QUEUE
            || config.bands.bands().iter().any(|band| band.dead_letter_queue == queue)
        {
            return match self.archive(queue, delivery).await {
                Ok(()) => Handled::Archived,
                Err(e) => {
                    tracing::error!(error = %e, queue, message_id = %delivery.message_id, "could not archive a dead letter");
                    Handled::Retry
                }
            };
        }
        let disposition = if queue == EVENT_QUEUE {
            self.deliver_event(delivery).await
        } else {
            self.process(queue, delivery).await
        };
        // A held message on its last receive is dead-lettered by the queue, not retried.
        let finished = matches!(disposition, Disposition::Done | Disposition::DeadLetter { .. })
            || matches!(disposition, Disposition::Hold(_) if delivery.receive_count + 1 >= config.max_receives);
        let settled = self.settle(queue, delivery, disposition).await;
        Handled::or_retry(
            settled.map(|()| if finished { Handled::Finished } else { Handled::Retry }),
            delivery,
        )
    }

    /// The band queues, most urgent first, then event deliveries; and the dead-letter
    /// queues, archived apart so that a full one never slows delivery.
    fn polling(&self) -> Vec<Polling> {
        let bands = self.messenger().config().bands.bands();
        let queues = bands.iter().map(|band| band.queue.clone()).chain([EVENT_QUEUE.to_owned()]).collect();
        let dead_letter_queues = bands
            .iter()
            .map(|band| band.dead_letter_queue.clone())
            .chain([EVENT_DEAD_LETTER_QUEUE.to_owned()])
            .collect();
        vec![
            Polling { queues, batch: 10, visibility: LOCAL_VISIBILITY },
            Polling { queues: dead_letter_queues, batch: 10, visibility: LOCAL_VISIBILITY },
        ]
    }
}
