//! Per-agent load: a counter of work in flight, changed by single conditional
//! statements (atomic on their own), and the circuit breaker as a JSON document with
//! its version beside it for the conditional write.

use rusqlite::{OptionalExtension, params};
use tdev_domain::messaging::Breaker;
use tdev_domain::ports::{AgentLoadStore, StoreError};

use crate::{SqliteStore, db_error};

impl AgentLoadStore for SqliteStore {
    async fn acquire_slot(&self, agent: &str, max: u32) -> Result<bool, StoreError> {
        if max == 0 {
            return Ok(false);
        }
        let changed = self
            .conn()
            .prepare_cached(
                "INSERT INTO agent_slots (agent, in_flight) VALUES (?1, 1)
                 ON CONFLICT (agent) DO UPDATE SET in_flight = in_flight + 1 WHERE in_flight < ?2",
            )
            .map_err(db_error)?
            .execute(params![agent, max])
            .map_err(db_error)?;
        Ok(changed == 1)
    }

    async fn release_slot(&self, agent: &str) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "UPDATE agent_slots SET in_flight = in_flight - 1 WHERE agent = ?1 AND in_flight > 0",
            )
            .map_err(db_error)?
            .execute([agent])
            .map_err(db_error)?;
        Ok(())
    }

    async fn in_flight(&self, agent: &str) -> Result<u32, StoreError> {
        let in_flight: Option<u32> = self
            .conn()
            .prepare_cached("SELECT in_flight FROM agent_slots WHERE agent = ?1")
            .map_err(db_error)?
            .query_row([agent], |row| row.get(0))
            .optional()
            .map_err(db_error)?;
        Ok(in_flight.unwrap_or(0))
    }

    async fn get_breaker(&self, agent: &str) -> Result<Option<Breaker>, StoreError> {
        self.one_doc(
            &format!("breaker of {agent}"),
            "SELECT doc FROM agent_breakers WHERE agent = ?1",
            [agent],
        )
    }

    async fn put_breaker(&self, agent: &str, breaker: &Breaker) -> Result<(), StoreError> {
        let conflict = || {
            StoreError::Conflict(format!(
                "the breaker of {agent} is not at version {}",
                breaker.version.wrapping_sub(1)
            ))
        };
        // Version 0 is a breaker never stored: there is nothing to write it over.
        let expected = breaker.version.checked_sub(1).ok_or_else(conflict)?;
        let doc = serde_json::to_string(breaker).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let conn = self.conn();
        // Version 1 is a first write (none stored counts as version 0); later versions
        // replace the one before.
        let changed = if expected == 0 {
            conn.prepare_cached(
                "INSERT INTO agent_breakers (agent, version, doc) VALUES (?1, ?2, ?3) ON CONFLICT (agent) DO NOTHING",
            )
            .map_err(db_error)?
            .execute(params![agent, breaker.version, doc])
        } else {
            conn.prepare_cached("UPDATE agent_breakers SET version = ?2, doc = ?3 WHERE agent = ?1 AND version = ?4")
                .map_err(db_error)?
                .execute(params![agent, breaker.version, doc, expected])
        }
        .map_err(db_error)?;
        if changed == 1 { Ok(()) } else { Err(conflict()) }
    }
}
