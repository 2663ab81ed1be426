//! The embedded queue: FIFO queues with visibility timeouts, deduplication and
//! dead-letter queues, kept in the SQLite file so that nothing is lost on a restart.
//!
//! It behaves like SQS FIFO, with one difference: across priorities it is strict — a
//! message of priority 1 is always received before any of priority 2, and so on. Within a
//! priority, order is send order. A group with a message in flight yields nothing more
//! until that message is acknowledged or visible again.
//!
//! A received message is *held* until it is acknowledged, dead-lettered or handed back
//! with `retry_after`; `keep_hidden` extends the hold. A restart of the local stack takes
//! every held message back at once ([`reclaim_held`]): the process holding it is gone, so
//! waiting out its visibility timeout would only delay the work. The message keeps its
//! receive count (a message that stops the process every time still ends in the
//! dead-letter queue) and its next delivery says it was reclaimed.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use tdev_domain::ports::{MessageQueue, StoreError};
use tdev_domain::queue::{Delivery, MAX_RECEIVES_EXCEEDED, NewMessage, Priority, QueueSpec};

use crate::{SqliteStore, db_error, execute};

/// SQS keeps a deduplication id for five minutes.
const DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;

const COLUMNS: &str =
    "id, grp, dedup_id, body, priority, attributes, sent_at, receive_count, receipt, reclaimed";

impl SqliteStore {
    fn spec(&self, queue: &str) -> Result<&QueueSpec, StoreError> {
        self.queues.get(queue).ok_or_else(|| {
            StoreError::unavailable(std::io::Error::other(format!("no queue named {queue:?}")))
        })
    }
}

impl SqliteStore {
    /// Hides a received message for `duration` from now; `held`: still being worked on.
    fn hide(&self, queue: &str, receipt: &str, duration: Duration, held: bool) -> Result<(), StoreError> {
        let updated = execute(
            &self.conn(),
            "UPDATE queue_messages SET visible_at_ms = ?1, held = ?2 WHERE queue = ?3 AND receipt = ?4",
            params![now_ms() + millis(duration), held, queue, receipt],
        )?;
        if updated == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }
}

/// Makes every held message (received, and neither acknowledged nor handed back)
/// visible at once and marks its next delivery reclaimed; returns how many. Only for a
/// process that knows no other one uses the file: see [`crate::DataLock`].
pub(crate) fn reclaim_held(tx: &Transaction<'_>) -> Result<usize, StoreError> {
    execute(
        tx,
        "UPDATE queue_messages SET visible_at_ms = MIN(visible_at_ms, ?1), held = 0, reclaimed = 1 WHERE held = 1",
        [now_ms()],
    )
}

fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl MessageQueue for SqliteStore {
    async fn send(&self, queue: &str, message: NewMessage) -> Result<String, StoreError> {
        self.spec(queue)?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
        let now = now_ms();
        let existing: Option<String> = tx
            .prepare_cached(
                "SELECT message_id FROM queue_dedup WHERE queue = ?1 AND dedup_id = ?2 AND expires_at_ms > ?3",
            )
            .and_then(|mut statement| {
                statement.query_row(params![queue, message.dedup_id, now], |row| row.get(0)).optional()
            })
            .map_err(db_error)?;
        if let Some(id) = existing {
            return Ok(id);
        }
        let id = insert(&tx, queue, &message, &uuid::Uuid::new_v4().to_string(), Timestamp::now(), now)?;
        execute(&tx, "INSERT INTO queue_dedup (queue, dedup_id, message_id, expires_at_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (queue, dedup_id) DO UPDATE SET message_id = excluded.message_id, expires_at_ms = excluded.expires_at_ms",
            params![queue, message.dedup_id, id, now + DEDUP_WINDOW_MS])?;
        execute(&tx, "DELETE FROM queue_dedup WHERE expires_at_ms <= ?1", [now])?;
        tx.commit().map_err(db_error)?;
        self.arrivals.notify_waiters();
        Ok(id)
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, StoreError> {
        let spec = self.spec(queue)?.clone();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
        let now = now_ms();
        let in_flight: HashSet<String> = {
            let mut statement = tx
                .prepare_cached(
                    "SELECT DISTINCT grp FROM queue_messages WHERE queue = ?1 AND receive_count > 0 AND visible_at_ms > ?2",
                )
                .map_err(db_error)?;
            let groups = statement.query_map(params![queue, now], |row| row.get(0)).map_err(db_error)?;
            groups.collect::<Result<_, _>>().map_err(db_error)?
        };
        let mut taken = Vec::new();
        // A message the walk meets that was received as often as the queue allows is moved
        // to the dead-letter queue instead, as SQS does when a receive would exceed it.
        let max_receives = spec.dead_letter.as_ref().map(|d| d.max_receive_count);
        let mut exhausted = Vec::new();
        // Walk the queue in priority order and stop at `max`: the planner would rather
        // sort every visible message (its `visible_at_ms` index), which grows with the queue.
        {
            let sql = format!(
                "SELECT {COLUMNS} FROM queue_messages INDEXED BY queue_order
                 WHERE queue = ?1 AND visible_at_ms <= ?2 ORDER BY priority, seq"
            );
            let mut statement = tx.prepare_cached(&sql).map_err(db_error)?;
            let mut rows = statement.query(params![queue, now]).map_err(db_error)?;
            while taken.len() < max {
                let Some(row) = rows.next().map_err(db_error)? else { break };
                let delivery = read(row)?;
                if max_receives.is_some_and(|most| delivery.receive_count >= most) {
                    exhausted.push(delivery);
                } else if !in_flight.contains(&delivery.group) {
                    taken.push(delivery);
                }
            }
        }
        if let Some(dead_letter) = &spec.dead_letter {
            for delivery in exhausted {
                move_to_dead_letter(&tx, queue, &dead_letter.queue, &delivery, MAX_RECEIVES_EXCEEDED, now)?;
            }
        }
        for delivery in &mut taken {
            delivery.receipt = uuid::Uuid::new_v4().to_string();
            delivery.receive_count += 1;
            execute(&tx, "UPDATE queue_messages SET receipt = ?1, receive_count = ?2, visible_at_ms = ?3, held = 1, reclaimed = 0
                 WHERE id = ?4",
                params![delivery.receipt, delivery.receive_count, now + millis(visibility), delivery.message_id])?;
        }
        tx.commit().map_err(db_error)?;
        Ok(taken)
    }

    async fn ack(&self, queue: &str, receipt: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM queue_messages WHERE queue = ?1 AND receipt = ?2";
        let deleted = execute(&self.conn(), sql, params![queue, receipt])?;
        if deleted == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn retry_after(&self, queue: &str, receipt: &str, delay: Duration) -> Result<(), StoreError> {
        self.hide(queue, receipt, delay, false)?;
        if delay.is_zero() {
            self.arrivals.notify_waiters();
        }
        Ok(())
    }

    async fn wait_for_message(&self, max: Duration) {
        // Waiters are woken by a send or a handing back without delay; a message whose
        // delay ends is found by the poll after `max`.
        let _ = tokio::time::timeout(max, self.arrivals.notified()).await;
    }

    async fn keep_hidden(&self, queue: &str, receipt: &str, duration: Duration) -> Result<(), StoreError> {
        self.hide(queue, receipt, duration, true)
    }

    async fn dead_letter(&self, queue: &str, delivery: &Delivery, reason: &str) -> Result<(), StoreError> {
        let spec = self.spec(queue)?;
        let dead_letter = spec.dead_letter.as_ref().ok_or_else(|| {
            StoreError::unavailable(std::io::Error::other(format!(
                "queue {queue:?} has no dead-letter queue"
            )))
        })?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
        let current = select(&tx, "WHERE queue = ?1 AND receipt = ?2", params![queue, delivery.receipt])?;
        let Some(current) = current.into_iter().next() else { return Err(StoreError::NotFound) };
        move_to_dead_letter(&tx, queue, &dead_letter.queue, &current, reason, now_ms())?;
        tx.commit().map_err(db_error)
    }
}

fn insert(
    tx: &Transaction<'_>,
    queue: &str,
    message: &NewMessage,
    id: &str,
    sent_at: Timestamp,
    visible_at_ms: i64,
) -> Result<String, StoreError> {
    let attributes =
        serde_json::to_string(&message.attributes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    execute(tx, "INSERT INTO queue_messages (queue, id, grp, dedup_id, body, priority, attributes, sent_at, visible_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            queue,
            id,
            message.group,
            message.dedup_id,
            message.body,
            message.priority.level(),
            attributes,
            sent_at.to_string(),
            visible_at_ms
        ])?;
    Ok(id.to_owned())
}

/// Re-sends `delivery` to the dead-letter queue with why, where from and how often
/// received, and deletes it from `queue`, in the caller's transaction.
fn move_to_dead_letter(
    tx: &Transaction<'_>,
    queue: &str,
    dead_letter_queue: &str,
    delivery: &Delivery,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    let message = delivery.dead_lettered(queue, reason, Timestamp::now());
    execute(tx, "DELETE FROM queue_messages WHERE id = ?1", [&delivery.message_id])?;
    insert(tx, dead_letter_queue, &message, &delivery.message_id, delivery.sent_at, now)?;
    Ok(())
}

fn select(
    tx: &Transaction<'_>,
    filter: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Delivery>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM queue_messages {filter}");
    let mut statement = tx.prepare_cached(&sql).map_err(db_error)?;
    let mut rows = statement.query(params).map_err(db_error)?;
    let mut found = Vec::new();
    while let Some(row) = rows.next().map_err(db_error)? {
        found.push(read(row)?);
    }
    Ok(found)
}

fn read(row: &rusqlite::Row<'_>) -> Result<Delivery, StoreError> {
    let get_err = |e: rusqlite::Error| db_error(e);
    let id: String = row.get(0).map_err(get_err)?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("queue message {id}: bad {what}"));
    let priority: u8 = row.get(4).map_err(get_err)?;
    let attributes: String = row.get(5).map_err(get_err)?;
    let sent_at: String = row.get(6).map_err(get_err)?;
    let receipt: Option<String> = row.get(8).map_err(get_err)?;
    let reclaimed: bool = row.get(9).map_err(get_err)?;
    Ok(Delivery {
        group: row.get(1).map_err(get_err)?,
        dedup_id: row.get(2).map_err(get_err)?,
        body: row.get(3).map_err(get_err)?,
        priority: Priority::new(priority).map_err(|_| corrupt("priority"))?,
        attributes: serde_json::from_str::<BTreeMap<String, String>>(&attributes)
            .map_err(|_| corrupt("attributes"))?,
        sent_at: sent_at.parse().map_err(|_| corrupt("sent_at"))?,
        receive_count: row.get(7).map_err(get_err)?,
        receipt: receipt.unwrap_or_default(),
        message_id: id,
        reclaimed,
    })
}
