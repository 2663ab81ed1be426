//! Doing a step's work: calling its target (an agent, a service, or an agent once per
//! item of a loop), within the attempt's time budget.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::ports::EngineStore;
use super::service::{Compiled, Engine};
use super::{Run, StepRun};
use crate::agents::{AgentInvoker, AgentTarget, InvokeError};
use crate::ports::MessageQueue;
use crate::workflow::{ResolvedTarget, ServiceTarget, StepIndex, StepKind};

/// An attempt that failed, with a `loop`'s replies so far.
#[derive(Debug)]
pub(super) struct Failed {
    pub(super) error: InvokeError,
    pub(super) loop_results: Option<Vec<Option<Value>>>,
}

impl From<InvokeError> for Failed {
    fn from(error: InvokeError) -> Self {
        Failed { error, loop_results: None }
    }
}

/// What one loop step asks of each item's call.
#[derive(Clone, Copy)]
struct LoopCall<'a> {
    target: &'a AgentTarget,
    over: &'a str,
    inputs: &'a Map<String, Value>,
    context: &'a Value,
    budget: Duration,
}

impl<S: EngineStore, Q: MessageQueue, I: AgentInvoker> Engine<S, Q, I> {
    /// Does a step's work; returns its outputs.
    pub(super) async fn execute(
        &self,
        compiled: &Compiled,
        run: &Run,
        index: StepIndex,
        records: &HashMap<&str, &StepRun>,
        this: &StepRun,
        budget: Duration,
    ) -> Result<Map<String, Value>, Failed> {
        let attempt = this.attempts;
        let definition = compiled.workflow.step(index);
        let value_of = |name: &str| value_of(compiled, run, records, name);
        let inputs = step_inputs(compiled, run, index, records);
        let context = json!({
            "run_id": run.id, "workflow_id": run.workflow_id, "step_id": definition.id.as_str(), "attempt": attempt,
        });
        let (target, parameters) = match &definition.kind {
            StepKind::Parallel { .. } | StepKind::Sequential { .. } => {
                // A group does no work: it passes on what its listed steps produced.
                let names = compiled.workflow.outputs_of(index);
                return Ok(names.into_iter().map(|n| (n.to_owned(), value_of(n))).collect());
            }
            StepKind::Agent { agent_id, parameters } => {
                (self.agent_target(agent_id).await?, parameters.clone())
            }
            StepKind::Service { target: Some(ResolvedTarget { target, .. }) } => {
                let target = match target {
                    ServiceTarget::Http { url } => AgentTarget::Http { url: url.to_string() },
                    ServiceTarget::Lambda { function } => AgentTarget::Lambda { function: function.clone() },
                    ServiceTarget::Agent { agent_id } => self.agent_target(agent_id).await?,
                };
                (target, Map::new())
            }
            // A run does not start without every target; a stored run cannot lose one.
            StepKind::Service { target: None } => {
                return Err(InvokeError::Rejected("the step has no target".into()).into());
            }
            StepKind::Loop { over, agent_id, max_concurrency } => {
                let target = self.agent_target(agent_id).await?;
                let items = match inputs.get(over) {
                    Some(Value::Array(items)) => items.clone(),
                    other => {
                        return Err(InvokeError::Rejected(format!(
                            "loop input {over:?} is not a list: {other:?}"
                        ))
                        .into());
                    }
                };
                let call = LoopCall { target: &target, over, inputs: &inputs, context: &context, budget };
                let results = self.run_loop(call, items, *max_concurrency, this.loop_results.clone()).await?;
                let output =
                    definition.outputs.first().map_or_else(|| "results".to_owned(), |o| o.to_string());
                return Ok(Map::from_iter([(output, Value::Array(results))]));
            }
            // A squad step's attempt is a squad task, started and followed by the worker.
            StepKind::Squad { .. } => {
                return Err(InvokeError::Rejected("a squad step runs as a squad task".into()).into());
            }
            StepKind::Condition { expression, .. } => {
                // Off the async runtime, within the attempt's budget like any other work.
                let (expression, one) = (expression.clone(), inputs.clone());
                let result = crate::bounded::off_runtime(budget, move || {
                    crate::workflow::condition::evaluate(&expression, &one)
                })
                .await
                .map_err(|unfinished| {
                    InvokeError::Rejected(format!("the condition's evaluation: {unfinished}"))
                })?
                .map_err(InvokeError::Rejected)?;
                let output =
                    definition.outputs.first().map_or_else(|| "result".to_owned(), |o| o.to_string());
                return Ok(Map::from_iter([(output, Value::Bool(result))]));
            }
        };
        let payload = json!({"inputs": inputs, "parameters": parameters, "context": context});
        let reply = self.invoker.invoke(&target, &payload, budget).await?;
        let mut outputs = Map::new();
        for name in &definition.outputs {
            let value = reply.get(&**name).cloned().ok_or_else(|| {
                InvokeError::Rejected(format!(
                    "the reply has no field {name:?}, a declared output of the step"
                ))
            })?;
            outputs.insert(name.to_string(), value);
        }
        Ok(outputs)
    }

    /// Calls the agent for each item not yet done (`done`: the replies of earlier
    /// attempts, index by index), `max_concurrency` at a time. Every item is tried once
    /// per attempt; on any failure the replies so far travel with the error, so that the
    /// next attempt calls only the items that failed.
    async fn run_loop(
        &self,
        call: LoopCall<'_>,
        items: Vec<Value>,
        max_concurrency: u32,
        done: Option<Vec<Option<Value>>>,
    ) -> Result<Vec<Value>, Failed> {
        let mut results = match done {
            Some(done) if done.len() == items.len() => done,
            _ => vec![None; items.len()],
        };
        let todo: Vec<usize> = (0..items.len()).filter(|&i| results[i].is_none()).collect();
        let mut first_error: Option<InvokeError> = None;
        for chunk in todo.chunks(usize::try_from(max_concurrency.max(1)).unwrap_or(1)) {
            let calls = chunk.iter().map(|&i| {
                let mut one = call.inputs.clone();
                one.insert(call.over.to_owned(), items[i].clone());
                let payload = json!({"inputs": one, "parameters": {}, "context": call.context});
                async move { (i, self.invoker.invoke(call.target, &payload, call.budget).await) }
            });
            for (i, reply) in futures::future::join_all(calls).await {
                match reply {
                    Ok(reply) => results[i] = Some(Value::Object(reply)),
                    // A refusal ends the step whatever else happened: report it first.
                    Err(error) if !error.is_retryable() => {
                        return Err(Failed { error, loop_results: Some(results) });
                    }
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
        }
        match first_error {
            Some(error) => Err(Failed { error, loop_results: Some(results) }),
            None => Ok(results.into_iter().flatten().collect()),
        }
    }

    pub(super) async fn agent_target(&self, agent_id: &str) -> Result<AgentTarget, InvokeError> {
        match self.store.get_agent(agent_id).await {
            Ok(Some(agent)) => Ok(agent.target),
            Ok(None) => Err(InvokeError::Rejected(format!("no agent {agent_id:?} is registered"))),
            Err(e) => Err(InvokeError::Unavailable(format!("the agent registry: {e}"))),
        }
    }
}

/// The value of data name `name` for a step of `run`: what the step that produces it
/// output, or the run's input of that name.
fn value_of(compiled: &Compiled, run: &Run, records: &HashMap<&str, &StepRun>, name: &str) -> Value {
    match compiled.producers.get(name) {
        Some(producer) => records
            .get(compiled.id_of(*producer))
            .and_then(|r| r.outputs.as_ref())
            .and_then(|o| o.get(name).cloned())
            .unwrap_or(Value::Null),
        None => run.inputs.get(name).cloned().unwrap_or(Value::Null),
    }
}

/// A step's inputs, by name.
pub(super) fn step_inputs(
    compiled: &Compiled,
    run: &Run,
    index: StepIndex,
    records: &HashMap<&str, &StepRun>,
) -> Map<String, Value> {
    let definition = compiled.workflow.step(index);
    definition.inputs.iter().map(|name| (name.to_string(), value_of(compiled, run, records, name))).collect()
}
