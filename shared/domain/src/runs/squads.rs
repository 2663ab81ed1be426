//! What the API asks of squads: check one against the registry, store it as an immutable
//! version, read versions back. Squads are stored beside workflows
//! ([`DefinitionKind::Squad`]) and run by the same engine.

use std::collections::{HashMap, HashSet};

use super::StoredDefinition;
use super::ports::{DefinitionKind, EngineStore};
use super::service::{Engine, EngineError};
use crate::agents::{AgentInvoker, AgentStatus};
use crate::ports::{MessageQueue, StoreError};
use crate::squads::{Loaded, MemberNotice, Squad};

impl<S: EngineStore, Q: MessageQueue, I: AgentInvoker> Engine<S, Q, I> {
    /// What the registry says of a squad's members (see [`Squad::notices`]).
    pub async fn squad_notices(&self, squad: &Squad) -> Result<Vec<MemberNotice>, StoreError> {
        let agents = self.store.list_agents().await?;
        let registered: HashSet<&str> = agents.iter().map(|a| a.id.as_str()).collect();
        let mut offering: HashMap<&str, usize> = HashMap::new();
        for agent in agents.iter().filter(|a| a.status == AgentStatus::Active) {
            for capability in &agent.capabilities {
                *offering.entry(capability.as_str()).or_default() += 1;
            }
        }
        Ok(squad.notices(|id| registered.contains(id), |c| offering.get(c).copied().unwrap_or(0)))
    }

    /// Stores a checked squad ([`crate::squads::load`]) as an immutable version, with what
    /// the registry says of its members. The same version with the same content again is
    /// harmless; with other content it is a `Conflict`.
    pub async fn put_squad(
        &self,
        loaded: Loaded,
    ) -> Result<(StoredDefinition, Vec<MemberNotice>), EngineError> {
        let notices = self.squad_notices(&loaded.squad).await?;
        let Loaded { squad, definition } = loaded;
        let stored = StoredDefinition::new(squad.id, squad.version, definition, self.clock.now());
        self.store.put_definition(DefinitionKind::Squad, &stored).await?;
        Ok((stored, notices))
    }

    /// One version of a squad, or with `version: None` the latest.
    pub async fn get_squad(&self, id: &str, version: Option<&str>) -> Result<StoredDefinition, EngineError> {
        self.store.get_definition(DefinitionKind::Squad, id, version).await?.ok_or_else(|| {
            EngineError::NotFound {
                kind: DefinitionKind::Squad,
                id: id.to_owned(),
                version: version.map(str::to_owned),
            }
        })
    }
}
