//! The registry: registers, finds, changes and removes agents.

use std::sync::Arc;

use jiff::Timestamp;

use super::model::{Agent, AgentUpdate, NewAgentRequest};
use super::ports::AgentStore;
use crate::clock::Clock;
use crate::ports::StoreError;
use crate::validation::ValidationErrors;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid agent: {0}")]
    Invalid(#[from] ValidationErrors),
    #[error("an agent with id {0:?} is already registered")]
    Duplicate(String),
    #[error("no agent with id {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Store(StoreError),
}

/// Registers, finds and removes agents.
pub struct Registry<S> {
    store: S,
    clock: Arc<dyn Clock>,
}

impl<S: AgentStore> Registry<S> {
    pub fn new(store: S, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub async fn register(&self, request: NewAgentRequest) -> Result<Agent, RegistryError> {
        let agent = request.validate(self.clock.now())?;
        match self.store.insert_agent(&agent).await {
            Ok(()) => Ok(agent),
            Err(StoreError::Conflict(_)) => Err(RegistryError::Duplicate(agent.id)),
            Err(e) => Err(RegistryError::Store(e)),
        }
    }

    pub async fn get(&self, id: &str) -> Result<Agent, RegistryError> {
        self.store
            .get_agent(id)
            .await
            .map_err(RegistryError::Store)?
            .ok_or_else(|| RegistryError::NotFound(id.into()))
    }

    pub async fn list(&self) -> Result<Vec<Agent>, RegistryError> {
        self.store.list_agents().await.map_err(RegistryError::Store)
    }

    /// Applies `update` to the agent.
    pub async fn update(&self, id: &str, update: AgentUpdate) -> Result<Agent, RegistryError> {
        let agent = update.apply(self.get(id).await?)?;
        match self.store.update_agent(&agent).await {
            Ok(()) => Ok(agent),
            Err(StoreError::NotFound) => Err(RegistryError::NotFound(id.into())),
            Err(e) => Err(RegistryError::Store(e)),
        }
    }

    pub async fn remove(&self, id: &str) -> Result<(), RegistryError> {
        match self.store.delete_agent(id).await {
            Err(StoreError::NotFound) => Err(RegistryError::NotFound(id.into())),
            other => other.map_err(RegistryError::Store),
        }
    }
}
