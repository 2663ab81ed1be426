use rusqlite::params;
use tdev_domain::agents::{Agent, AgentStore};
use tdev_domain::ports::StoreError;

use crate::{SqliteStore, execute, insert, to_doc};

/// Agents are stored as their JSON document: the registry grows fields with the routing
/// issue, and nothing queries inside them.
impl AgentStore for SqliteStore {
    async fn insert_agent(&self, agent: &Agent) -> Result<(), StoreError> {
        let sql = "INSERT INTO agents (id, doc) VALUES (?1, ?2)";
        insert(&self.conn(), sql, params![agent.id, to_doc(agent)?], || format!("agent {} exists", agent.id))
    }

    async fn get_agent(&self, id: &str) -> Result<Option<Agent>, StoreError> {
        self.one_doc(&format!("agent {id}"), "SELECT doc FROM agents WHERE id = ?1", [id])
    }

    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError> {
        self.docs_by_id("agents", "agent")
    }

    async fn update_agent(&self, agent: &Agent) -> Result<(), StoreError> {
        let sql = "UPDATE agents SET doc = ?2 WHERE id = ?1";
        let updated = execute(&self.conn(), sql, params![agent.id, to_doc(agent)?])?;
        if updated == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    async fn delete_agent(&self, id: &str) -> Result<(), StoreError> {
        let deleted = execute(&self.conn(), "DELETE FROM agents WHERE id = ?1", [id])?;
        if deleted == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }
}
