use jiff::Timestamp;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use tdev_domain::auth::{BucketState, RateDecision, RateLimit, RateLimitStore, acquire};
use tdev_domain::ports::StoreError;

use crate::{SqliteStore, db_error};

impl RateLimitStore for SqliteStore {
    async fn acquire(
        &self,
        client: &str,
        limit: &RateLimit,
        now: Timestamp,
    ) -> Result<RateDecision, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
        let state = tx
            .query_row("SELECT tat_us FROM rate_buckets WHERE client = ?1", [client], |row| row.get(0))
            .optional()
            .map_err(db_error)?
            .map(|tat_us| BucketState { tat_us });
        let (next, decision) = acquire(limit, state, now.as_microsecond());
        if let Some(next) = next {
            tx.execute(
                "INSERT INTO rate_buckets (client, tat_us) VALUES (?1, ?2)
                 ON CONFLICT (client) DO UPDATE SET tat_us = excluded.tat_us",
                params![client, next.tat_us],
            )
            .map_err(db_error)?;
            tx.commit().map_err(db_error)?;
        }
        Ok(decision)
    }
}
