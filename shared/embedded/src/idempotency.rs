//! Idempotency keys: one row each, claimed and answered inside one `IMMEDIATE`
//! transaction, so two claims of a key never both acquire it.
//!
//! A row past its `until_ns` (an ended lease, or a done record past its keep-until)
//! counts as absent, exactly as an item DynamoDB's TTL has deleted: correctness never
//! waits for a purge. Claims purge a few such rows as they go, so the file stays small.

use jiff::Timestamp;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use tdev_domain::messaging::{Claim, IdempotencyStore};
use tdev_domain::ports::StoreError;

use crate::{SqliteStore, db_error, execute, from_nanos, nanos};

/// Rows purged per claim: enough to keep up with one claim per key, bounded so a claim
/// stays fast after a long pause.
const PURGE_BATCH: i64 = 16;
/// Rows are purged only this long past their end, against clock skew between callers
/// (each passes its own `now`).
const PURGE_GRACE_NS: i64 = 60_000_000_000;

impl IdempotencyStore for SqliteStore {
    async fn claim(
        &self,
        key: &str,
        holder: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Claim, StoreError> {
        let now_ns = nanos(now);
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
        let purge = "DELETE FROM idempotency WHERE key IN
                     (SELECT key FROM idempotency WHERE until_ns < ?1 ORDER BY until_ns LIMIT ?2)";
        execute(&tx, purge, params![now_ns.saturating_sub(PURGE_GRACE_NS), PURGE_BATCH])?;
        let stored: Option<(bool, i64)> = tx
            .prepare_cached("SELECT done, until_ns FROM idempotency WHERE key = ?1")
            .map_err(db_error)?
            .query_row([key], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .map_err(db_error)?;
        match stored {
            Some((true, until_ns)) if until_ns >= now_ns => return Ok(Claim::Done),
            Some((false, until_ns)) if until_ns >= now_ns => {
                return Ok(Claim::Busy { until: from_nanos("idempotency lease", until_ns)? });
            }
            _ => {}
        }
        let take = "INSERT INTO idempotency (key, holder, done, until_ns) VALUES (?1, ?2, 0, ?3)
                    ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, done = 0, until_ns = excluded.until_ns";
        execute(&tx, take, params![key, holder, nanos(lease_until)])?;
        tx.commit().map_err(db_error)?;
        Ok(Claim::Acquired)
    }

    async fn complete(&self, key: &str, holder: &str, keep_until: Timestamp) -> Result<(), StoreError> {
        // Only the holder completes; completing twice (a retried call) is harmless.
        let sql = "UPDATE idempotency SET done = 1, until_ns = ?3 WHERE key = ?1 AND holder = ?2";
        let updated = execute(&self.conn(), sql, params![key, holder, nanos(keep_until)])?;
        if updated == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!("{holder} does not hold idempotency key {key}")))
        }
    }

    async fn release(&self, key: &str, holder: &str) -> Result<(), StoreError> {
        // A done record stays: releasing after completing must not undo the work's record.
        execute(
            &self.conn(),
            "DELETE FROM idempotency WHERE key = ?1 AND holder = ?2 AND done = 0",
            [key, holder],
        )?;
        Ok(())
    }
}
