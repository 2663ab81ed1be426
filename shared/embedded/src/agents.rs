use rusqlite::params;
use tdev_domain::agents::{Agent, AgentStore};
use tdev_domain::ports::StoreError;

use crate::{SqliteStore, db_error, from_doc};

/// Agents are stored as their JSON document: the registry grows fields with the routing
/// issue, and nothing queries inside them.
impl AgentStore for SqliteStore {
    async fn insert_agent(&self, agent: &Agent) -> Result<(), StoreError> {
        let doc = serde_json::to_string(agent).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        match self.conn().execute("INSERT INTO agents (id, doc) VALUES (?1, ?2)", params![agent.id, doc]) {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Conflict(format!("agent {} exists", agent.id)))
            }
            Err(e) => Err(db_error(e)),
        }
    }

    async fn get_agent(&self, id: &str) -> Result<Option<Agent>, StoreError> {
        self.one_doc(&format!("agent {id}"), "SELECT doc FROM agents WHERE id = ?1", [id])
    }

    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError> {
        let conn = self.conn();
        let mut statement =
            conn.prepare_cached("SELECT id, doc FROM agents ORDER BY id").map_err(db_error)?;
        let rows = statement
            .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))
            .map_err(db_error)?;
        rows.map(|row| {
            let (id, doc) = row.map_err(db_error)?;
            from_doc(&format!("agent {id}"), &doc)
        })
        .collect()
    }

    async fn update_agent(&self, agent: &Agent) -> Result<(), StoreError> {
        let doc = serde_json::to_string(agent).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let updated = self
            .conn()
            .execute("UPDATE agents SET doc = ?2 WHERE id = ?1", params![agent.id, doc])
            .map_err(db_error)?;
        if updated == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn delete_agent(&self, id: &str) -> Result<(), StoreError> {
        let deleted = self.conn().execute("DELETE FROM agents WHERE id = ?1", [id]).map_err(db_error)?;
        if deleted == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }
}
