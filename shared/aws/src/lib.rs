//! The AWS backend: API keys and rate-limit buckets in one DynamoDB table, secrets in
//! Secrets Manager. [`AwsStore`] implements every port of `tdev_domain::ports` and passes
//! the same conformance suite as the embedded backend.
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
//! # Secrets Manager
//!
//! A secret's `AWSCURRENT` and `AWSPREVIOUS` stages are the current and previous
//! [`SecretVersion`](tdev_domain::ports::SecretVersion)s. Writing a value is PutSecretValue
//! (which moves `AWSCURRENT` to the new version and `AWSPREVIOUS` to the old one), or
//! CreateSecret when the secret does not exist yet.

mod agents;
mod api_keys;
mod attrs;
mod items;
mod queue;
mod rate_limits;
mod runs;
mod secrets;
mod table;

pub use queue::{
    PRIORITY_ATTRIBUTE, SqsDeadLetterSpec, SqsQueue, SqsQueueSpec, SqsQueues, delivery_from_event,
    sqs_dedup_id,
};

use aws_config::{BehaviorVersion, SdkConfig};
use tdev_domain::health::ComponentHealth;
use tdev_domain::ports::HealthCheck;
use tdev_domain::ports::StoreError;

/// Every port on AWS. Cloning is cheap: the SDK clients share their connection pools.
#[derive(Debug, Clone)]
pub struct AwsStore {
    dynamodb: aws_sdk_dynamodb::Client,
    secrets: aws_sdk_secretsmanager::Client,
    table: String,
}

impl AwsStore {
    /// The store a Lambda function (or `tdev serve --backend aws`) uses: the standard AWS
    /// configuration chain (region, credentials, and `AWS_ENDPOINT_URL` for moto), and
    /// the table named by `TDEV_TABLE`. Called once, at cold start.
    pub async fn from_env() -> Result<Self, StoreError> {
        let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
        Self::with_table_from_env(&config)
    }

    /// The store on `config`, with the table named by `TDEV_TABLE`.
    pub fn with_table_from_env(config: &SdkConfig) -> Result<Self, StoreError> {
        let table = std::env::var("TDEV_TABLE").map_err(|_| {
            StoreError::unavailable(std::io::Error::other("TDEV_TABLE is not set: name the DynamoDB table"))
        })?;
        Ok(Self::new(config, table))
    }

    /// Builds both clients from `config`; `table` is the DynamoDB table's name.
    pub fn new(config: &SdkConfig, table: impl Into<String>) -> Self {
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
            table: table.into(),
        }
    }

    /// The DynamoDB table's name.
    pub fn table(&self) -> &str {
        &self.table
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_without_a_behavior_version_does_not_panic() {
        let store = AwsStore::new(&SdkConfig::builder().build(), "t");
        assert_eq!(store.table(), "t");
    }
}
