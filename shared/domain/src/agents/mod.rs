//! The agent registry: what agents exist, how to reach each, and what each can do.
//!
//! Workflow steps resolve `agent_id` here; messages are routed here by id or by
//! capability, among active agents, by least work in flight.
//!
//! `model.rs` is what an agent is, `ports.rs` the registry's store and the invoker every
//! caller of an agent uses, `service.rs` the [`Registry`].

mod model;
mod ports;
mod service;

pub use model::{
    AGENT_TARGET, Agent, AgentStatus, AgentTarget, AgentUpdate, DEFAULT_ATTEMPT_TIMEOUT, NewAgentRequest,
    valid_agent_id,
};
pub use ports::{AgentInvoker, AgentStore, IDEMPOTENCY_KEY_FIELD, InvokeError};
pub use service::{Registry, RegistryError};
