//! The AWS backend: every record in one DynamoDB table (deployments optionally in a table of
//! their own), secrets in Secrets Manager. [`AwsStore`] implements every port of
//! `tdev_domain::ports` and passes the same conformance suite as the embedded backend.
//!
//! # DynamoDB single-table schema
//!
//! | | |
//! |---|---|
//! | Keys | `pk` (S, HASH), `sk` (S, RANGE) |
//! | Index | GSI `gsi1`: `gsi1pk` (S, HASH), `gsi1sk` (S, RANGE), projection ALL |
//! | TTL | attribute `ttl` (N, epoch seconds) |
//! | Billing | PAY_PER_REQUEST |
//!
//! **API key**: `pk = "KEY#<id>"`, `sk = "KEY"`, `gsi1pk = "KEYS"`,
//! `gsi1sk = "<created_at as 20-digit zero-padded µs since the epoch>#<id>"`, so a Query on
//! `gsi1` lists keys oldest first. Attributes: `id`, `name`, `scopes` (space-separated),
//! `secret_hash` (SHA-256 hex; the plaintext secret is never stored), `created_at`, and
//! optionally `expires_at`, `revoked_at` (RFC 3339 timestamps as `jiff` prints them, which
//! parse back exactly), `rate_capacity` and `rate_refill_per_minute` (N, both or neither).
//!
//! - insert: PutItem if `attribute_not_exists(pk)`; losing the condition is `Conflict`.
//! - get: GetItem with `ConsistentRead`, so a revocation is seen at once.
//! - list: Query `gsi1` on `gsi1pk = "KEYS"`, every page. A GSI is eventually
//!   consistent: a key inserted a moment ago may be missing from the list.
//! - revoke: UpdateItem `SET revoked_at = if_not_exists(revoked_at, :at)` if
//!   `attribute_exists(pk)`, returning ALL_NEW; losing the condition is `NotFound`.
//!
//! **Rate bucket**: `pk = "RATE#<client>"`, `sk = "RATE"`, `tat_us` (N, the GCRA
//! theoretical arrival time in µs since the epoch), `ttl` (N, `ceil(tat_us / 1e6) + 60`:
//! once the TAT has passed the bucket is full, so DynamoDB may delete the item).
//!
//! - acquire: consistent GetItem, then [`tdev_domain::auth::acquire`]; an allowed request
//!   writes the new TAT with PutItem if `attribute_not_exists(pk)` (no bucket yet) or
//!   `tat_us = :old` (optimistic concurrency). A lost condition retries from the read after
//!   a jittered pause of a few ms, at most 100 times, then gives `Conflict`. A refusal
//!   writes nothing.
//!
//! Times in sort keys and number attributes below are nanoseconds since the epoch (sort
//! keys: 20 digits, zero-padded, so string order is time order), which keeps orderings
//! and comparisons exact; times in other attributes are RFC 3339 strings.
//!
//! **Idempotency key**: `pk = "IDEM#<key>"`, `sk = "IDEM"`, `state` (`in_progress` or
//! `done`), `holder`, `until_ns` (N: the lease's end while in progress, the keep-until once
//! done), `ttl` (`until` in seconds, rounded up, plus 60). An item past its `until_ns`
//! counts as absent: the conditions compare `until_ns` with the caller's `now` and never
//! rely on the TTL (DynamoDB deletes late, moto never).
//!
//! - claim: PutItem if `attribute_not_exists(pk) OR until_ns < :now` → `Acquired`; a lost
//!   condition reads the item (consistently) → `Done` or `Busy { until }`; if the item has
//!   gone or expired meanwhile (a release raced), it tries again, at most 10 times.
//! - complete: UpdateItem `SET state = done, until_ns = :keep, ttl` if `holder = :holder`;
//!   losing the condition is `Conflict` (a second complete by the holder is harmless).
//! - release: DeleteItem if `holder = :holder AND state = in_progress` (a done item stays);
//!   losing the condition is fine.
//!
//! **Agent load**: beside the agent's item, under its `pk = "AGENT#<id>"`.
//!
//! - `sk = "LOAD"`, `version` (N), `slots` (M: each holder's lease end, N in ns), `ttl`
//!   (the last lease's end in seconds, plus 61). A slot past its end counts as absent.
//!   acquire: consistent GetItem; with `max` live slots held by others, no slot (nothing
//!   written); else PutItem of the live slots and the holder's, `version + 1`, if
//!   `version = :seen` (or `attribute_not_exists(version)` for none, which also replaces
//!   the `in_flight` counter of before); a lost condition retries from the read after a
//!   jittered pause, at most 50 times, then `Conflict`. release: UpdateItem `REMOVE
//!   slots.#holder SET version = version + :one` if `attribute_exists(slots.#holder)`
//!   (lost: it held none). in flight: consistent GetItem, the live slots counted.
//! - `sk = "BREAKER"`, `version` (N), `doc` (the breaker as JSON). put: PutItem if
//!   `attribute_not_exists(pk)` for version 1, else `version = :previous`; lost is `Conflict`.
//!
//! **Dead letter**: `pk = "DLQ#<id>"`, `sk = "DLQ"`, `gsi1pk = "DEADLETTERS"`,
//! `gsi1sk = "<dead_lettered_at, 20-digit ns>#<id>"`, `source_queue`, `reason`, `state`
//! (`dead`, `redriving`, `redriven`), `version` (N), `doc` (the dead letter as JSON).
//!
//! - put: PutItem if `attribute_not_exists(pk)`; lost is `Conflict`.
//! - list: Query `gsi1` on `gsi1pk = "DEADLETTERS"` (oldest first) with a FilterExpression
//!   on `source_queue`/`reason`/`state`, page after page until `limit` match. Eventually
//!   consistent, like every GSI read.
//! - update: PutItem if `version = :previous`; lost reads the item: `NotFound` or `Conflict`.
//! - delete: DeleteItem if `attribute_exists(pk)`; lost is `NotFound`.
//!
//! **Failure note**: `pk = "FAIL#<message id>"`, `sk = "FAIL"`, `attempts` (N),
//! `first_at`, `last_at`, `last_reason`, `ttl` (a day after `last_at`). note: one
//! UpdateItem `SET first_at = if_not_exists(first_at, :at), last_at = :at, last_reason,
//! ttl ADD attempts :one`, atomic under any number of racing consumers.
//!
//! **Event**: append-only, partitioned by UTC day: `pk = "EVENT#<yyyy-mm-dd of at>"`,
//! `sk = "<at, 20-digit ns>#<id>"`, `id`, `type`, `at`, `subject`, `doc` (the event as
//! JSON); no TTL.
//!
//! - append: PutItem if `attribute_not_exists(pk)`; lost is `Conflict`.
//! - list: a strongly consistent Query per day, oldest day first, `sk BETWEEN` the bounds,
//!   with `begins_with(type, <the pattern up to its first *>)` as a FilterExpression and
//!   the glob applied in memory, until `limit` match. Without `since` the window is the
//!   last 7 days before `until` (or now), and it never reaches past the end of tomorrow
//!   (UTC): each day costs a Query. One partition per day caps appends at DynamoDB's
//!   per-partition write rate (1,000 write units a second).
//!
//! # Deployments table
//!
//! Deployments, their audit trail, backups and locks live in a table of their own
//! ([`AwsStore::deployments_table`], `TDEV_DEPLOYMENTS_TABLE`, with its own retention),
//! with the same key schema and index (no TTL: nothing there expires). Without one they
//! share the main table; their key prefixes are apart from everything else's.
//!
//! **Deployment**: `pk = "DEPLOY#<id>"`, `sk = "DEPLOY"`, `gsi1pk = "DEPLOYS"`,
//! `gsi1sk = "<created_at, 20-digit ns>#<id>"`, `agent`, `status`, `revision` (N), `doc`
//! (the deployment as JSON). **Event**: `pk = "DEPLOY#<id>"`, `sk = "EVENT#<seq, 20
//! digits>"`, `doc`. **Backup**: `pk = "DEPLOY#<id>"`, `sk = "BACKUP"`, `doc`. **Lock**:
//! `pk = "LOCK#<agent>"`, `sk = "LOCK"`, `holder` (the deployment id), `until_ns` (N).
//!
//! - create: one TransactWriteItems: Put the deployment and Put its event, each if
//!   `attribute_not_exists(pk)`, and with `lock_until` Put the lock if
//!   `attribute_not_exists(pk) OR until_ns < :now OR holder = :id` (a lock is held
//!   through its last instant). A cancelled transaction is `Conflict`.
//! - transition: TransactWriteItems: Put the deployment if `revision = :previous` (a
//!   missing deployment fails it too: `Conflict`), Put the event if
//!   `attribute_not_exists(pk)`.
//! - get: consistent GetItem. events: consistent Query `pk = DEPLOY#<id> AND
//!   begins_with(sk, "EVENT#")`, so by `seq`.
//! - list: Query `gsi1` on `DEPLOYS` newest first, the agent and status as a
//!   FilterExpression, page after page until `limit` (0: no limit) match; eventually
//!   consistent, like every GSI read. Events, backups and locks are not in the index.
//! - backup: PutItem if `attribute_not_exists(pk)`; lost is `Conflict`.
//! - renew: UpdateItem `SET until_ns` if `holder = :holder`; lost is `Conflict`.
//!   release: DeleteItem if `holder = :holder`; lost is fine.
//!
//! # Secrets Manager
//!
//! A secret's `AWSCURRENT` and `AWSPREVIOUS` stages are the current and previous
//! [`SecretVersion`](tdev_domain::ports::SecretVersion)s. Writing a value is PutSecretValue
//! (which moves `AWSCURRENT` to the new version and `AWSPREVIOUS` to the old one), or
//! CreateSecret when the secret does not exist yet.

mod agent_load;
mod agents;
mod api_keys;
mod attrs;
mod dead_letters;
mod deployments;
mod events;
mod idempotency;
mod items;
mod queue;
mod rate_limits;
mod runs;
mod secrets;
mod subscriptions;
mod table;
mod tasks;
mod workflows;

pub use queue::{PRIORITY_ATTRIBUTE, SqsQueue, SqsQueues, delivery_of_message, sqs_dedup_id};

use aws_config::{BehaviorVersion, SdkConfig};
use jiff::Timestamp;
use tdev_domain::health::ComponentHealth;
use tdev_domain::ports::{HealthCheck, StoreError};

/// Every port on AWS. Cloning is cheap: the SDK clients share their connection pools.
#[derive(Debug, Clone)]
pub struct AwsStore {
    dynamodb: aws_sdk_dynamodb::Client,
    secrets: aws_sdk_secretsmanager::Client,
    table: String,
    deployments_table: String,
}

impl AwsStore {
    /// The store a Lambda function (or `tdev serve --backend aws`) uses: the standard AWS
    /// configuration chain (region, credentials, and `AWS_ENDPOINT_URL` for moto), and
    /// the table named by `TDEV_TABLE`. Called once, at cold start.
    pub async fn from_env() -> Result<Self, StoreError> {
        let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
        Self::with_table_from_env(&config)
    }

    /// The store on `config`, with the table named by `TDEV_TABLE` and the deployments
    /// table named by `TDEV_DEPLOYMENTS_TABLE` (the main table when unset or empty).
    pub fn with_table_from_env(config: &SdkConfig) -> Result<Self, StoreError> {
        let table = std::env::var("TDEV_TABLE").map_err(|_| {
            StoreError::unavailable(std::io::Error::other("TDEV_TABLE is not set: name the DynamoDB table"))
        })?;
        let store = Self::new(config, table);
        Ok(match std::env::var("TDEV_DEPLOYMENTS_TABLE") {
            Ok(deployments) if !deployments.is_empty() => store.with_deployments_table(deployments),
            _ => store,
        })
    }

    /// Builds both clients from `config`; `table` is the DynamoDB table's name, which
    /// also holds the deployments until [`Self::with_deployments_table`] says otherwise.
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
        let table = table.into();
        // The SDK's clients panic on a config without a behavior version; take the latest,
        // as `aws_config::load_defaults(BehaviorVersion::latest())` would.
        let with_version;
        let config = if config.behavior_version().is_some() {
            config
        } else {
            with_version = config.to_builder().behavior_version(BehaviorVersion::latest()).build();
            &with_version
        };
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            deployments_table: table.clone(),
            table,
        }
    }

    /// Keeps the deployments, their events, backups and locks in the table `name` (same
    /// key schema), apart from everything else.
    pub fn with_deployments_table(mut self, name: impl Into<String>) -> Self {
        self.deployments_table = name.into();
        self
    }

    /// The DynamoDB table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The DynamoDB table the deployments are kept in (the main table unless set apart).
    pub fn deployments_table(&self) -> &str {
        &self.deployments_table
    }
}

impl HealthCheck for AwsStore {
    async fn health(&self) -> Vec<ComponentHealth> {
        let (ok, detail) = match self.table_status().await {
            Ok(table::Status::Active) => (true, None),
            Ok(table::Status::Other(status)) => (false, Some(format!("table status is {status}"))),
            Err(detail) => (false, Some(detail)),
        };
        if let Some(detail) = &detail {
            tracing::warn!(table = %self.table, %detail, "dynamodb is unhealthy");
        }
        vec![ComponentHealth { name: "dynamodb", ok, detail }]
    }
}

/// A time as a number attribute: nanoseconds since the epoch, so that conditions compare
/// exactly. Saturates outside 1677–2262, far from any real timestamp.
pub(crate) fn nanos(at: Timestamp) -> i64 {
    let ns = at.as_nanosecond();
    i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX })
}

pub(crate) fn from_nanos(what: &str, ns: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_nanosecond(i128::from(ns)).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A time as the start of a sort key: nanoseconds since the epoch, 20 digits zero-padded,
/// so that string order is time order (times before 1970 sort as 1970).
pub(crate) fn sortable(at: Timestamp) -> String {
    let ns = u64::try_from(at.as_nanosecond().max(0)).unwrap_or(u64::MAX);
    format!("{ns:020}")
}

/// A `ttl` attribute for an item that may go once `at` has passed: epoch seconds,
/// rounded up, plus a minute against clock skew.
pub(crate) fn ttl_after(at: Timestamp) -> i64 {
    at.as_second().saturating_add(61)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_order_as_times() {
        let a = Timestamp::from_nanosecond(1_700_000_000_000_000_001).unwrap();
        let b = Timestamp::from_nanosecond(1_700_000_000_000_000_010).unwrap();
        assert_eq!(sortable(a), "01700000000000000001");
        assert!(sortable(a) < sortable(b));
        assert_eq!(sortable(Timestamp::from_second(-5).unwrap()), "00000000000000000000");
        assert_eq!(from_nanos("t", nanos(b)).unwrap(), b);
    }

    #[test]
    fn a_config_without_a_behavior_version_does_not_panic() {
        let store = AwsStore::new(&SdkConfig::builder().build(), "t");
        assert_eq!(store.table(), "t");
    }

    #[test]
    fn deployments_share_the_main_table_unless_set_apart() {
        let store = AwsStore::new(&SdkConfig::builder().build(), "main");
        assert_eq!(store.deployments_table(), "main");
        let apart = store.with_deployments_table("deployments");
        assert_eq!((apart.table(), apart.deployments_table()), ("main", "deployments"));
    }
}
