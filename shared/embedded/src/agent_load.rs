//! Per-agent load: a row per leased slot of work in flight, taken inside one `IMMEDIATE`
//! transaction (so racing acquires never exceed the maximum), and the circuit breaker as
//! a JSON document with its version beside it for the conditional write.
//!
//! A slot past its `until_ns` counts as absent; the agent's next acquire deletes it.

use jiff::Timestamp;
use rusqlite::{TransactionBehavior, params};
use tdev_domain::messaging::{AgentLoadStore, Breaker};
use tdev_domain::ports::StoreError;

use crate::{SqliteStore, db_error, execute, nanos, to_doc};

impl AgentLoadStore for SqliteStore {
    async fn acquire_slot(
        &self,
        agent: &str,
        holder: &str,
        max: u32,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
        execute(
            &tx,
            "DELETE FROM agent_slot_leases WHERE agent = ?1 AND until_ns < ?2",
            params![agent, nanos(now)],
        )?;
        let others: u32 = tx
            .prepare_cached("SELECT count(*) FROM agent_slot_leases WHERE agent = ?1 AND holder <> ?2")
            .map_err(db_error)?
            .query_row(params![agent, holder], |row| row.get(0))
            .map_err(db_error)?;
        let held: bool = tx
            .prepare_cached("SELECT count(*) > 0 FROM agent_slot_leases WHERE agent = ?1 AND holder = ?2")
            .map_err(db_error)?
            .query_row(params![agent, holder], |row| row.get(0))
            .map_err(db_error)?;
        let taken = held || others < max;
        if taken {
            let take = "INSERT INTO agent_slot_leases (agent, holder, until_ns) VALUES (?1, ?2, ?3)
                        ON CONFLICT (agent, holder) DO UPDATE SET until_ns = excluded.until_ns";
            execute(&tx, take, params![agent, holder, nanos(lease_until)])?;
        }
        // Committed either way: the expired slots stay deleted.
        tx.commit().map_err(db_error)?;
        Ok(taken)
    }

    async fn release_slot(&self, agent: &str, holder: &str) -> Result<(), StoreError> {
        execute(
            &self.conn(),
            "DELETE FROM agent_slot_leases WHERE agent = ?1 AND holder = ?2",
            [agent, holder],
        )?;
        Ok(())
    }

    async fn in_flight(&self, agent: &str, now: Timestamp) -> Result<u32, StoreError> {
        self.conn()
            .prepare_cached("SELECT count(*) FROM agent_slot_leases WHERE agent = ?1 AND until_ns >= ?2")
            .map_err(db_error)?
            .query_row(params![agent, nanos(now)], |row| row.get(0))
            .map_err(db_error)
    }

    async fn get_breaker(&self, agent: &str) -> Result<Option<Breaker>, StoreError> {
        self.one_doc(
            &format!("breaker of {agent}"),
            "SELECT doc FROM agent_breakers WHERE agent = ?1",
            [agent],
        )
    }

    async fn put_breaker(&self, agent: &str, breaker: &Breaker) -> Result<(), StoreError> {
        let expected = breaker.expected_stored_version(agent)?;
        let doc = to_doc(breaker)?;
        let conn = self.conn();
        // Version 1 is a first write (none stored counts as version 0); later versions
        // replace the one before.
        let changed = if expected == 0 {
            let sql = "INSERT INTO agent_breakers (agent, version, doc) VALUES (?1, ?2, ?3) ON CONFLICT (agent) DO NOTHING";
            execute(&conn, sql, params![agent, breaker.version, doc])?
        } else {
            let sql = "UPDATE agent_breakers SET version = ?2, doc = ?3 WHERE agent = ?1 AND version = ?4";
            execute(&conn, sql, params![agent, breaker.version, doc, expected])?
        };
        if changed == 1 { Ok(()) } else { Err(breaker.stale(agent)) }
    }
}
