//! What the domain needs from the world. Adapters in `tdev-embedded` (SQLite) and
//! `tdev-aws` (DynamoDB, Secrets Manager) implement these; both pass one conformance
//! suite (`tdev-conformance`).

use std::future::Future;

use jiff::Timestamp;

use std::time::Duration;

use crate::agents::{Agent, AgentTarget};
use crate::auth::{ApiKey, ApiKeyId, RateDecision, RateLimit};
use crate::deploy::{
    AgentLock, AgentSpec, Backup, Deployment, DeploymentEvent, DeploymentFilter, Snapshot, TargetKind,
};
use crate::events::{Event, EventFilter, Subscription, SubscriptionTarget};
use crate::health::ComponentHealth;
use crate::messaging::{Breaker, DeadLetter, DeadLetterFilter, FailureNote};
use crate::queue::{Delivery, NewMessage};
use crate::runs::{Run, RunFilter, StepRun, StoredWorkflow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost: the record exists, or changed under us.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    /// A stored record could not be read back: a bug or a hand-edited record.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The backend could not be reached or refused the call.
    #[error("backend unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Unavailable(Box::new(error))
    }
}

pub trait ApiKeyStore: Send + Sync + 'static {
    /// Stores a new key; `Conflict` if the id is taken.
    fn insert_key(&self, key: &ApiKey) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A strongly consistent read: a revocation is seen by the next call.
    fn get_key(&self, id: &ApiKeyId) -> impl Future<Output = Result<Option<ApiKey>, StoreError>> + Send;

    /// Every key, oldest first.
    fn list_keys(&self) -> impl Future<Output = Result<Vec<ApiKey>, StoreError>> + Send;

    /// Marks the key revoked at `at` and returns it; revoking again keeps the first time.
    /// `NotFound` if there is no such key.
    fn revoke_key(
        &self,
        id: &ApiKeyId,
        at: Timestamp,
    ) -> impl Future<Output = Result<ApiKey, StoreError>> + Send;
}

pub trait AgentStore: Send + Sync + 'static {
    /// Registers a new agent; `Conflict` if the id is taken.
    fn insert_agent(&self, agent: &Agent) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_agent(&self, id: &str) -> impl Future<Output = Result<Option<Agent>, StoreError>> + Send;

    /// Every agent, by id.
    fn list_agents(&self) -> impl Future<Output = Result<Vec<Agent>, StoreError>> + Send;

    /// Replaces a registered agent; `NotFound` if there is no such agent.
    fn update_agent(&self, agent: &Agent) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// `NotFound` if there is no such agent.
    fn delete_agent(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

pub trait WorkflowStore: Send + Sync + 'static {
    /// Stores a version. Storing the same id and version again is harmless when the
    /// content is the same, and a `Conflict` when it differs: versions are immutable.
    fn put_workflow(&self, workflow: &StoredWorkflow) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One version, or with `version: None` the most recently stored one.
    fn get_workflow(
        &self,
        id: &str,
        version: Option<&str>,
    ) -> impl Future<Output = Result<Option<StoredWorkflow>, StoreError>> + Send;
}

/// Runs and their steps. Every update names the version it read and fails with
/// `Conflict` if the record changed since: that is what keeps concurrent workers exact.
pub trait RunStore: Send + Sync + 'static {
    /// `Conflict` if the id is taken.
    fn create_run(&self, run: &Run) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The run and every step that has a record, by step id.
    fn get_run(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<(Run, Vec<StepRun>)>, StoreError>> + Send;

    /// Newest first.
    fn list_runs(&self, filter: &RunFilter) -> impl Future<Output = Result<Vec<Run>, StoreError>> + Send;

    /// Writes `run` (whose `version` is already bumped) if the stored one is at
    /// `run.version - 1`.
    fn update_run(&self, run: &Run) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Creates a step's record; `Conflict` if it has one: exactly one caller makes a
    /// waiting step ready.
    fn create_step(
        &self,
        run_id: &str,
        step: &StepRun,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_step(
        &self,
        run_id: &str,
        step_id: &str,
    ) -> impl Future<Output = Result<Option<StepRun>, StoreError>> + Send;

    /// Writes `step` (version already bumped) if the stored one is at `step.version - 1`.
    fn update_step(
        &self,
        run_id: &str,
        step: &StepRun,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

pub trait RateLimitStore: Send + Sync + 'static {
    /// Charges one token to `client`'s bucket with [`crate::auth::acquire`], atomically
    /// against every other instance sharing the store.
    fn acquire(
        &self,
        client: &str,
        limit: &RateLimit,
        now: Timestamp,
    ) -> impl Future<Output = Result<RateDecision, StoreError>> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersion {
    pub version_id: String,
    pub value: String,
}

/// A secret's current value and the one it replaced (Secrets Manager's `AWSCURRENT` and
/// `AWSPREVIOUS` stages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersions {
    pub current: SecretVersion,
    pub previous: Option<SecretVersion>,
}

pub trait SecretStore: Send + Sync + 'static {
    /// `NotFound` if the secret does not exist.
    fn secret_versions(&self, name: &str) -> impl Future<Output = Result<SecretVersions, StoreError>> + Send;

    /// Creates the secret, or makes `value` its new current version (the old current
    /// becomes previous). Returns the new version id.
    fn put_secret(&self, name: &str, value: &str) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// Every port authentication and rate limiting use: what every function's guard needs.
pub trait AuthStore: ApiKeyStore + RateLimitStore + SecretStore + HealthCheck {}
impl<T: ApiKeyStore + RateLimitStore + SecretStore + HealthCheck> AuthStore for T {}

pub trait HealthCheck: Send + Sync + 'static {
    fn health(&self) -> impl Future<Output = Vec<ComponentHealth>> + Send;
}

/// FIFO queues with dead-letter queues: SQS FIFO on AWS, an in-process queue with the same
/// semantics in the embedded backend. Queues are named by their logical name (`steps`);
/// each backend maps names to its own queues and knows each queue's dead-letter queue and
/// `max_receive_count`.
pub trait MessageQueue: Send + Sync + 'static {
    /// Sends one message; returns its id. A duplicate `dedup_id` within the window sends
    /// nothing (and may return the first message's id or a new one, as SQS does).
    fn send(
        &self,
        queue: &str,
        message: NewMessage,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Up to `max` messages, each hidden from other receivers for `visibility`. Messages
    /// of one group come in order, and not while an earlier one of the group is in flight.
    /// A message received more than the queue's `max_receive_count` times is moved to the
    /// dead-letter queue instead (reason [`crate::queue::MAX_RECEIVES_EXCEEDED`]).
    fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> impl Future<Output = Result<Vec<Delivery>, StoreError>> + Send;

    /// Done with it: deletes the message. A stale receipt (the message was received again
    /// by someone else since) is `NotFound`.
    fn ack(&self, queue: &str, receipt: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes the message visible again after `delay` (0: at once): a retry with backoff,
    /// since FIFO queues have no per-message delay.
    fn retry_after(
        &self,
        queue: &str,
        receipt: &str,
        delay: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Still at work on it: hides the message for `duration` more, from now (work that
    /// outlasts the receive's visibility). SQS changes the visibility as for
    /// [`MessageQueue::retry_after`]; the embedded queue also remembers that the delivery
    /// is still held, so that a restart of the local stack takes it back at once, where a
    /// message handed back with `retry_after` keeps its delay.
    fn keep_hidden(
        &self,
        queue: &str,
        receipt: &str,
        duration: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.retry_after(queue, receipt, duration)
    }

    /// Moves the message to the queue's dead-letter queue with `reason` (see
    /// [`crate::queue::dead_letter_attributes`]) and deletes it from `queue`.
    fn dead_letter(
        &self,
        queue: &str,
        delivery: &Delivery,
        reason: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Why an invocation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// No answer within the timeout. Worth retrying.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The agent could not be reached, or answered that it is overloaded (HTTP 429 and
    /// 5xx, throttling). Worth retrying.
    #[error("the agent is unavailable: {0}")]
    Unavailable(String),
    /// The agent answered, and the answer is an error or not a JSON object. Retrying the
    /// same input would give the same answer.
    #[error("the agent refused the request: {0}")]
    Rejected(String),
}

impl InvokeError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, InvokeError::Rejected(_))
    }
}

/// The payload member that carries a delivery's idempotency key to the agent (a message's
/// deliveries, redeliveries included, all carry the message's key).
pub const IDEMPOTENCY_KEY_FIELD: &str = "idempotency_key";

/// Calls an agent: an HTTP endpoint, a Lambda function, a Bedrock agent or an AgentCore
/// runtime. The payload is a JSON object; so is a successful answer.
///
/// A payload whose [`IDEMPOTENCY_KEY_FIELD`] is a string is passed on with that key where
/// the target lets the agent see more than the payload: an HTTP agent gets it as the
/// `Idempotency-Key` header too, a Bedrock agent as a prompt session attribute
/// `idempotency_key` too. A key that cannot be an HTTP header value (it holds a control
/// character) is [`InvokeError::Rejected`] by an HTTP target.
pub trait AgentInvoker: Send + Sync + 'static {
    fn invoke(
        &self,
        target: &AgentTarget,
        payload: &serde_json::Value,
        timeout: Duration,
    ) -> impl Future<Output = Result<serde_json::Map<String, serde_json::Value>, InvokeError>> + Send;
}

/// What [`IdempotencyStore::claim`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds the key until its lease ends: do the work, then complete or release.
    Acquired,
    /// The work was done already: do nothing.
    Done,
    /// Someone else holds the key until then: try again later.
    Busy { until: Timestamp },
}

/// One effect per idempotency key: a conditional put with an expiry.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key` for `holder` until `lease_until`: `Acquired` if there is no record, or
    /// only an unfinished one whose lease ended before `now`.
    fn claim(
        &self,
        key: &str,
        holder: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Marks the work done, remembered until `keep_until` (then the record may expire).
    /// `Conflict` if `holder` no longer holds the key.
    fn complete(
        &self,
        key: &str,
        holder: &str,
        keep_until: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives the key up, the work undone: the next claim acquires it at once. Harmless
    /// when `holder` no longer holds it.
    fn release(&self, key: &str, holder: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Per-agent load: leased slots of work in flight, and the circuit breaker. Shared by every
/// consumer.
///
/// A slot is held by one holder (a delivery attempt) until its lease ends. A lease is live
/// through its last instant; one that ran out no longer counts, so a consumer that dies
/// holding a slot holds it no longer than its lease.
pub trait AgentLoadStore: Send + Sync + 'static {
    /// Takes one of the agent's `max` slots for `holder` until `lease_until`, unless `max`
    /// slots are held by others with leases live at `now`: `Ok(false)` then. A holder
    /// with a live slot keeps it, its lease now ending at `lease_until`. A backend that
    /// decides by optimistic writes may answer `Conflict` after losing many races in a row.
    fn acquire_slot(
        &self,
        agent: &str,
        holder: &str,
        max: u32,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives `holder`'s slot back. Harmless when it holds none (given back already, or
    /// its lease ran out).
    fn release_slot(&self, agent: &str, holder: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The agent's slots whose leases are live at `now` (0 when never recorded).
    fn in_flight(&self, agent: &str, now: Timestamp) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// The agent's breaker; `None` if never stored (a closed one).
    fn get_breaker(&self, agent: &str) -> impl Future<Output = Result<Option<Breaker>, StoreError>> + Send;

    /// Stores `breaker` (its `version` already bumped) if the stored one is at
    /// `breaker.version - 1` (none stored counts as version 0); `Conflict` otherwise.
    fn put_breaker(
        &self,
        agent: &str,
        breaker: &Breaker,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The dead-letter archive, and the failure notes that feed it.
pub trait DeadLetterStore: Send + Sync + 'static {
    /// Archives a dead letter; `Conflict` if one with its id exists (each is archived once).
    fn put_dead_letter(
        &self,
        dead_letter: &DeadLetter,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_dead_letter(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<DeadLetter>, StoreError>> + Send;

    /// Oldest first (by `dead_lettered_at`, then id), at most `filter.limit`.
    fn list_dead_letters(
        &self,
        filter: &DeadLetterFilter,
    ) -> impl Future<Output = Result<Vec<DeadLetter>, StoreError>> + Send;

    /// Writes `dead_letter` (version already bumped) if the stored one is at
    /// `version - 1`; `Conflict` otherwise, `NotFound` if there is none.
    fn update_dead_letter(
        &self,
        dead_letter: &DeadLetter,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// `NotFound` if there is none.
    fn delete_dead_letter(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds one failed delivery of message `id` (first/last time, count, last reason);
    /// notes may expire after a day.
    fn note_failure(
        &self,
        id: &str,
        reason: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn failures(&self, id: &str) -> impl Future<Output = Result<Option<FailureNote>, StoreError>> + Send;
}

/// The append-only event log.
pub trait EventStore: Send + Sync + 'static {
    fn append_event(&self, event: &Event) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Matching events, oldest first (by `at`, then `id`), at most `filter.limit`. Without
    /// `since`, the 7 days before `until` (or now); nothing later than the end of tomorrow
    /// (UTC) is listed.
    fn list_events(
        &self,
        filter: &EventFilter,
    ) -> impl Future<Output = Result<Vec<Event>, StoreError>> + Send;
}

/// Event subscriptions.
pub trait SubscriptionStore: Send + Sync + 'static {
    /// `Conflict` if the id is taken.
    fn insert_subscription(
        &self,
        subscription: &Subscription,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every subscription, by id.
    fn list_subscriptions(&self) -> impl Future<Output = Result<Vec<Subscription>, StoreError>> + Send;

    /// `NotFound` if there is none.
    fn delete_subscription(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Delivers an event to a subscriber: a webhook or an SQS queue.
pub trait EventSink: Send + Sync + 'static {
    fn deliver(
        &self,
        target: &SubscriptionTarget,
        event: &Event,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), InvokeError>> + Send;
}

/// Deployments, their audit trail, their backups, and the per-agent deployment lock.
/// Every change of a deployment is a conditional write on its `revision` made together
/// with its event: the record and its trail never disagree.
pub trait DeploymentStore: Send + Sync + 'static {
    /// Stores a new deployment (revision 1) with its first event and, with `lock_until`,
    /// takes the agent's lock for it — all or nothing. `Conflict` if the id is taken or
    /// another deployment holds the agent's lock past `now`.
    fn create_deployment(
        &self,
        deployment: &Deployment,
        event: &DeploymentEvent,
        now: Timestamp,
        lock_until: Option<Timestamp>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_deployment(&self, id: &str)
    -> impl Future<Output = Result<Option<Deployment>, StoreError>> + Send;

    /// Newest first (by `created_at`, then id), at most `filter.limit`.
    fn list_deployments(
        &self,
        filter: &DeploymentFilter,
    ) -> impl Future<Output = Result<Vec<Deployment>, StoreError>> + Send;

    /// Writes `deployment` (revision already bumped) if the stored one is at
    /// `revision - 1`, and appends `event`, all or nothing; `Conflict` otherwise.
    fn transition(
        &self,
        deployment: &Deployment,
        event: &DeploymentEvent,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The deployment's events, by `seq`.
    fn deployment_events(
        &self,
        deployment_id: &str,
    ) -> impl Future<Output = Result<Vec<DeploymentEvent>, StoreError>> + Send;

    /// `Conflict` if the deployment has a backup already (a backup is never replaced).
    fn put_backup(&self, backup: &Backup) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get_backup(
        &self,
        deployment_id: &str,
    ) -> impl Future<Output = Result<Option<Backup>, StoreError>> + Send;

    /// The agent's lock, if it has one (expired or not).
    fn get_lock(&self, agent: &str) -> impl Future<Output = Result<Option<AgentLock>, StoreError>> + Send;

    /// Extends `holder`'s lock to `until`; `Conflict` if `holder` does not hold it.
    fn renew_lock(
        &self,
        agent: &str,
        holder: &str,
        until: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives the lock up; harmless when `holder` does not hold it.
    fn release_lock(&self, agent: &str, holder: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Why a target refused or failed a deployment step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployError {
    /// Throttling, a 5xx, a network failure: worth trying again.
    #[error("the target is unavailable: {0}")]
    Unavailable(String),
    /// A refusal or a failure that trying again will not fix (access denied, a bad
    /// configuration, a preparation that FAILED).
    #[error("{0}")]
    Failed(String),
    /// A resource is still changing (an agent updating, an alias or endpoint moving) after
    /// the step's own wait: the step is repeated later. Not a failed attempt: only the
    /// deployment's deadline bounds it, as it bounds a preparation.
    #[error("still settling: {0}")]
    Settling(String),
}

/// How far a preparation has got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Still going (e.g. `PREPARING`); ask again later.
    Pending(String),
}

/// A version in service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub version: String,
    /// How to invoke it (for the smoke test and the registry).
    pub target: AgentTarget,
}

/// A place agents are deployed to: Bedrock Agents, AgentCore Runtime, or the local
/// stack's own target. Every operation may be repeated after a crash: each looks at what
/// the target holds and does only what is missing.
pub trait AgentDeployer: Send + Sync + 'static {
    /// Which targets this deployer serves.
    fn supports(&self, kind: TargetKind) -> bool;

    /// The agent's current configuration, or `None` if the target has no such agent.
    fn snapshot(
        &self,
        spec: &AgentSpec,
    ) -> impl Future<Output = Result<Option<Snapshot>, DeployError>> + Send;

    /// Makes the agent's draft match `spec`, creating the agent if it has none (Bedrock
    /// Agents: the agent and its action groups, created, updated and deleted to match;
    /// AgentCore: the runtime, which makes a new runtime version).
    fn apply(&self, spec: &AgentSpec) -> impl Future<Output = Result<(), DeployError>> + Send;

    /// Starts preparing the draft if needed, and says how far it has got. A preparation
    /// that failed is `Err(Failed)`.
    fn prepare(&self, spec: &AgentSpec) -> impl Future<Output = Result<Readiness, DeployError>> + Send;

    /// Publishes the prepared draft as a new immutable version and points the alias (or
    /// endpoint) at it. Called again after a crash, it finds the version it made.
    fn publish(&self, spec: &AgentSpec) -> impl Future<Output = Result<Published, DeployError>> + Send;

    /// Points the alias (or endpoint) at an existing `version`: no rebuild.
    fn point_to(
        &self,
        spec: &AgentSpec,
        version: &str,
    ) -> impl Future<Output = Result<Published, DeployError>> + Send;

    /// Makes the agent's draft what `snapshot` recorded, action groups included.
    fn restore(
        &self,
        spec: &AgentSpec,
        snapshot: &Snapshot,
    ) -> impl Future<Output = Result<(), DeployError>> + Send;
}
