//! What the API asks of squad tasks: start one (seats filled from the registry, the task
//! recorded, its first assignments queued), show one with its assignments, list them,
//! cancel one. What an assignment's delivery asks is the worker's (`task_worker.rs`).

use std::collections::HashSet;
use std::sync::Arc;

use jiff::SignedDuration;
use serde_json::{Map, Value, json};

use super::ports::EngineStore;
use super::service::{Engine, EngineError, Task};
use super::task_records::{ParentStep, Seat, SquadTask, TaskFilter, TaskStatus, TaskView};
use crate::agents::{Agent, AgentInvoker, AgentStatus};
use crate::events::Event;
use crate::ports::{MessageQueue, StoreError};
use crate::squads::{Mode, Role, Squad};
use crate::validation::ValidationErrors;

/// The largest task input, as compact JSON: it is kept in a record of its own, and a
/// DynamoDB item holds 400 KB in all.
pub const MAX_TASK_INPUT_BYTES: usize = 256 * 1024;

impl<S: EngineStore, Q: MessageQueue, I: AgentInvoker> Engine<S, Q, I> {
    /// A stored squad version, parsed (and kept: versions are immutable).
    pub(super) async fn squad(&self, id: &str, version: Option<&str>) -> Result<Arc<Squad>, EngineError> {
        if let Some(version) = version
            && let Some(found) = self.squads.get(&(id.to_owned(), version.to_owned()))
        {
            return Ok(found);
        }
        let stored = self.get_squad(id, version).await?;
        let squad = crate::squads::from_value(&stored.definition)
            .map_err(|e| EngineError::Corrupt(format!("squad {id} version {}: {e}", stored.version)))?
            .squad;
        Ok(self.squads.keep((stored.id, stored.version), squad))
    }

    /// What a task was started with (kept: it never changes).
    pub(super) async fn task_input(&self, task_id: &str) -> Result<Arc<Map<String, Value>>, EngineError> {
        if let Some(found) = self.task_inputs.get(&task_id.to_owned()) {
            return Ok(found);
        }
        let input = self
            .store
            .get_task_input(task_id)
            .await?
            .ok_or_else(|| EngineError::Corrupt(format!("task {task_id} has no input")))?;
        Ok(self.task_inputs.keep(task_id.to_owned(), input))
    }

    /// Starts a task of a stored squad (the latest version unless one is named): checks the
    /// input, fills every seat from the registry, records the task and queues its first
    /// assignments. A 422 names every problem at once: the input, each agent not
    /// registered, each capability too few active agents offer.
    pub async fn start_task(
        &self,
        squad_id: &str,
        version: Option<&str>,
        input: Map<String, Value>,
        parent: Option<ParentStep>,
    ) -> Result<SquadTask, EngineError> {
        let squad = self.squad(squad_id, version).await?;
        let mut errors = ValidationErrors::new();
        let size = Value::Object(input.clone()).to_string().len();
        if size > MAX_TASK_INPUT_BYTES {
            errors.add(
                "$.input",
                format!("the input is {size} bytes as JSON; the limit is {MAX_TASK_INPUT_BYTES}"),
            );
        }
        if squad.distribution.mode == Mode::Split {
            let over = squad.distribution.over.as_deref().unwrap_or_default();
            match input.get(over) {
                Some(Value::Array(items)) if items.len() <= u32::MAX as usize => {}
                Some(_) => {
                    errors.add(format!("$.input.{over}"), "must be a list: the squad splits its items")
                }
                None => errors.add(format!("$.input.{over}"), "required: the list of items the squad splits"),
            }
        }
        let agents = self.store.list_agents().await?;
        let seats = fill_seats(&squad, &agents, &mut errors);
        errors.into_result(())?;
        let now = self.clock.now();
        let id = parent.as_ref().map_or_else(|| uuid::Uuid::new_v4().to_string(), ParentStep::task_id);
        let deadline = now + SignedDuration::try_from(squad.limits.deadline()).unwrap_or(SignedDuration::MAX);
        let task = SquadTask::new(id, &squad, seats, parent, now, deadline);
        // The watch first: a worker that dies right after recording the task leaves it
        // watched (a watch that finds no task yet waits a little for it).
        self.send_watch(&task.id, 0).await?;
        let data = json!({"squad_id": task.squad_id, "squad_version": task.squad_version, "seats": task.seats.len()});
        let started = Event::new("squad.task.started", &task.id, now, data);
        match self.store.create_task(&task, &input, &[started]).await {
            Ok(()) => {}
            // A workflow step's task, started before by a worker that may have died before
            // the rest: the rest is done again below, harmlessly.
            Err(StoreError::Conflict(_)) if task.parent.is_some() => {}
            Err(e) => return Err(e.into()),
        }
        match self.advance_task(&task.id, None).await {
            // Lost to the workers of its first answers, which move it on as well.
            Ok(()) | Err(EngineError::Store(StoreError::Conflict(_))) => {}
            Err(e) => return Err(e),
        }
        Ok(self.store.get_task(&task.id).await?.unwrap_or(task))
    }

    /// A task, what it was started with, and its assignments, by id.
    pub async fn task_view(&self, task_id: &str) -> Result<TaskView, EngineError> {
        let task =
            self.store.get_task(task_id).await?.ok_or_else(|| EngineError::TaskNotFound(task_id.into()))?;
        let input = self.task_input(task_id).await?;
        let assignments = self.store.list_assignments(task_id).await?;
        Ok(TaskView { task, input: Map::clone(&input), assignments })
    }

    pub async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<SquadTask>, EngineError> {
        Ok(self.store.list_tasks(filter).await?)
    }

    /// Cancels a running task: nothing new starts; calls in flight finish and are recorded,
    /// but count for nothing.
    pub async fn cancel_task(&self, task_id: &str) -> Result<SquadTask, EngineError> {
        loop {
            let task = self
                .store
                .get_task(task_id)
                .await?
                .ok_or_else(|| EngineError::TaskNotFound(task_id.into()))?;
            if task.status.is_terminal() {
                return Err(EngineError::AlreadyEnded { what: "task", status: task.status.as_str() });
            }
            let ended =
                super::task_state::Ending::failure(TaskStatus::Cancelled, "cancelled through the API");
            match self.end_task(&task, ended).await {
                Ok(ended) => return Ok(ended),
                Err(EngineError::Store(StoreError::Conflict(_))) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends watch `generation` of a task (each generation once).
    pub(super) async fn send_watch(&self, task_id: &str, generation: u32) -> Result<(), EngineError> {
        let key = match generation {
            0 => format!("{task_id}/watch"),
            n => format!("{task_id}/watch/{n}"),
        };
        self.send(&Task::TaskWatch { task_id: task_id.to_owned(), generation }, &key).await?;
        Ok(())
    }

    /// An event of a task (its subject), now: written with the change it tells.
    pub(super) fn task_event(&self, kind: &str, task_id: &str, data: Value) -> Event {
        Event::new(kind, task_id, self.clock.now(), data)
    }
}

/// The seats of a new task, in member order: an agent member's agent, and for a
/// capability member `count` active agents offering it (by id, none twice in the task).
fn fill_seats(squad: &Squad, agents: &[Agent], errors: &mut ValidationErrors) -> Vec<Seat> {
    let mut taken: HashSet<&str> = squad.members.iter().filter_map(|m| m.agent.as_deref()).collect();
    let mut seats = Vec::new();
    for (i, member) in squad.members.iter().enumerate() {
        let seat = |slot: usize, agent: &Agent, capabilities: Vec<String>| Seat {
            slot: u32::try_from(slot).unwrap_or(u32::MAX),
            agent: agent.id.clone(),
            role: member.role,
            weight: member.weight,
            capabilities,
            generation: 0,
        };
        match (&member.agent, &member.capability) {
            (Some(id), capability) => match agents.iter().find(|a| a.id == *id) {
                Some(agent) => {
                    let capabilities = match capability {
                        Some(c) => vec![c.clone()],
                        None => agent.capabilities.iter().cloned().collect(),
                    };
                    let new = seat(seats.len(), agent, capabilities);
                    seats.push(new);
                }
                None => errors.add(
                    format!("$.members[{i}].agent"),
                    format!(
                        "agent {id:?} is not registered: register it (POST /v1/agents) or change the squad"
                    ),
                ),
            },
            (None, Some(capability)) => {
                let wanted = Squad::seats(member) as usize;
                let chosen: Vec<&Agent> = agents
                    .iter()
                    .filter(|a| {
                        a.status == AgentStatus::Active
                            && a.capabilities.contains(capability)
                            && !taken.contains(a.id.as_str())
                    })
                    .take(wanted)
                    .collect();
                if chosen.len() < wanted {
                    errors.add(
                        format!("$.members[{i}].capability"),
                        format!(
                            "{} active agent(s) offer {capability:?} and are not already in the squad; the member asks for {wanted}",
                            chosen.len()
                        ),
                    );
                }
                for agent in chosen {
                    taken.insert(agent.id.as_str());
                    let new = seat(seats.len(), agent, vec![capability.clone()]);
                    seats.push(new);
                }
            }
            (None, None) => {}
        }
    }
    // A lead is one seat; the rules guarantee it. Roles stay as the squad says.
    debug_assert!(seats.iter().filter(|s| s.role == Role::Lead).count() <= 1);
    seats
}
