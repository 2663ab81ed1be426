//! Choosing the agent for a message.

use crate::agents::{Agent, AgentStatus};
use crate::messaging::Recipient;

/// Why a message has no agent; the reason code goes on its dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoRoute {
    #[error("no agent with id {0:?}")]
    UnknownAgent(String),
    #[error("agent {0:?} is inactive")]
    Inactive(String),
    #[error("no active agent has capability {0:?}")]
    NoCapableAgent(String),
}

impl NoRoute {
    pub fn code(&self) -> &'static str {
        match self {
            NoRoute::UnknownAgent(_) => "unknown_agent",
            NoRoute::Inactive(_) => "agent_inactive",
            NoRoute::NoCapableAgent(_) => "no_capable_agent",
        }
    }
}

/// The agents a message may go to, best first: the addressed agent (active or draining:
/// draining only stops capability routing), or the capable active agents by least work
/// in flight (ties by id). `in_flight` gives each agent's work in flight.
pub fn candidates<'a>(
    recipient: &Recipient,
    agents: &'a [Agent],
    in_flight: impl Fn(&Agent) -> u32,
) -> Result<Vec<&'a Agent>, NoRoute> {
    match recipient {
        Recipient::Agent(id) => {
            let agent =
                agents.iter().find(|a| a.id == *id).ok_or_else(|| NoRoute::UnknownAgent(id.clone()))?;
            if agent.status == AgentStatus::Inactive {
                return Err(NoRoute::Inactive(id.clone()));
            }
            Ok(vec![agent])
        }
        Recipient::Capability(capability) => {
            let mut capable: Vec<(u32, &Agent)> = agents
                .iter()
                .filter(|a| a.status == AgentStatus::Active && a.capabilities.contains(capability))
                .map(|a| (in_flight(a), a))
                .collect();
            if capable.is_empty() {
                return Err(NoRoute::NoCapableAgent(capability.clone()));
            }
            capable.sort_by(|(x, a), (y, b)| x.cmp(y).then_with(|| a.id.cmp(&b.id)));
            Ok(capable.into_iter().map(|(_, a)| a).collect())
        }
    }
}
