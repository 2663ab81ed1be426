//! The dead-letter archive (each dead letter a JSON document beside the columns that are
//! filtered, ordered or conditioned on) and the failure notes that feed it.

use jiff::Timestamp;
use rusqlite::{OptionalExtension, Params, TransactionBehavior, params};
use tdev_domain::messaging::{DeadLetter, DeadLetterFilter, DeadLetterStore, FailureNote};
use tdev_domain::ports::StoreError;

use crate::{SqliteStore, db_error, execute, insert, nanos, to_doc};

/// How long a failure note is kept after its last failure (the port promises a day).
const NOTE_KEEP_NS: i64 = 24 * 3_600 * 1_000_000_000;
/// Notes purged per call, bounded so a call stays fast after a long pause.
const PURGE_BATCH: i64 = 16;

fn parse_time(what: &str, text: &str) -> Result<Timestamp, StoreError> {
    text.parse().map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A dead letter's row in column order, `id` first: the parameters of its insert and of
/// its update alike.
fn row(dead_letter: &DeadLetter) -> Result<impl Params + '_, StoreError> {
    Ok((
        &dead_letter.id,
        &dead_letter.source_queue,
        &dead_letter.reason,
        dead_letter.state.name(),
        nanos(dead_letter.dead_lettered_at),
        dead_letter.version,
        to_doc(dead_letter)?,
    ))
}

impl DeadLetterStore for SqliteStore {
    async fn put_dead_letter(&self, dead_letter: &DeadLetter) -> Result<(), StoreError> {
        let sql = "INSERT INTO dead_letters (id, source_queue, reason, state, dead_lettered_ns, version, doc)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
        insert(&self.conn(), sql, row(dead_letter)?, || format!("dead letter {} exists", dead_letter.id))
    }

    async fn get_dead_letter(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        self.one_doc("dead letter", "SELECT doc FROM dead_letters WHERE id = ?1", [id])
    }

    async fn list_dead_letters(&self, filter: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        let sql = "SELECT doc FROM dead_letters
                   WHERE (?1 IS NULL OR source_queue = ?1) AND (?2 IS NULL OR reason = ?2) AND (?3 IS NULL OR state = ?3)
                   ORDER BY dead_lettered_ns, id LIMIT ?4";
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        self.docs("dead letter", sql, params![filter.source_queue, filter.reason, filter.state, limit])
    }

    async fn update_dead_letter(&self, dead_letter: &DeadLetter) -> Result<(), StoreError> {
        let row = row(dead_letter)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
        let stored: Option<u64> = tx
            .prepare_cached("SELECT version FROM dead_letters WHERE id = ?1")
            .map_err(db_error)?
            .query_row([&dead_letter.id], |row| row.get(0))
            .optional()
            .map_err(db_error)?;
        let Some(stored) = stored else { return Err(StoreError::NotFound) };
        if dead_letter.expected_stored_version() != Some(stored) {
            return Err(dead_letter.stale());
        }
        let sql = "UPDATE dead_letters SET source_queue = ?2, reason = ?3, state = ?4, dead_lettered_ns = ?5,
                   version = ?6, doc = ?7 WHERE id = ?1";
        execute(&tx, sql, row)?;
        tx.commit().map_err(db_error)
    }

    async fn delete_dead_letter(&self, id: &str) -> Result<(), StoreError> {
        let deleted = execute(&self.conn(), "DELETE FROM dead_letters WHERE id = ?1", [id])?;
        if deleted == 1 { Ok(()) } else { Err(StoreError::NotFound) }
    }

    async fn note_failure(&self, id: &str, reason: &str, at: Timestamp) -> Result<(), StoreError> {
        let at_ns = nanos(at);
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
        // Expiry by the caller's time, as DynamoDB's TTL would by its own: a note
        // untouched for a day goes.
        let purge = "DELETE FROM failure_notes WHERE id IN
                     (SELECT id FROM failure_notes WHERE expires_ns < ?1 ORDER BY expires_ns LIMIT ?2)";
        execute(&tx, purge, params![at_ns, PURGE_BATCH])?;
        let note = "INSERT INTO failure_notes (id, attempts, first_at, last_at, last_reason, expires_ns)
                    VALUES (?1, 1, ?2, ?2, ?3, ?4)
                    ON CONFLICT (id) DO UPDATE SET attempts = attempts + 1, last_at = excluded.last_at,
                    last_reason = excluded.last_reason, expires_ns = excluded.expires_ns";
        execute(&tx, note, params![id, at.to_string(), reason, at_ns.saturating_add(NOTE_KEEP_NS)])?;
        tx.commit().map_err(db_error)
    }

    async fn failures(&self, id: &str) -> Result<Option<FailureNote>, StoreError> {
        let row: Option<(u32, String, String, String)> = self
            .conn()
            .prepare_cached(
                "SELECT attempts, first_at, last_at, last_reason FROM failure_notes WHERE id = ?1",
            )
            .map_err(db_error)?
            .query_row([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
            .optional()
            .map_err(db_error)?;
        row.map(|(attempts, first_at, last_at, last_reason)| {
            Ok(FailureNote {
                attempts,
                first_at: parse_time("failure note first_at", &first_at)?,
                last_at: parse_time("failure note last_at", &last_at)?,
                last_reason,
            })
        })
        .transpose()
    }
}
