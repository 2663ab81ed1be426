//! A workflow step of type `squad`: each attempt is a squad task, started by the step's
//! worker. The step's message does not wait for the task on the queue (every wait would be
//! a receive, and the queue dead-letters a message received too often): the task's end
//! sends the step a message of its own, and the task's watch sends it again if a worker
//! died before it could. A run that ends cancels its squad steps' tasks. The task's id comes from
//! the run, the step and the attempt, so a worker that dies between marking the attempt
//! and starting its task leaves nothing for the next one to do twice.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::execute::step_inputs;
use super::ports::EngineStore;
use super::service::{Compiled, Engine, EngineError};
use super::task_records::{ParentStep, TaskStatus};
use super::task_state::Ending;
use super::{Run, StepRun, StepStatus};
use crate::agents::AgentInvoker;
use crate::ports::MessageQueue;
use crate::queue::Outcome;
use crate::workflow::{Step, StepIndex};

/// A step's outputs from its squad's result: each declared output is the result's field of
/// that name; a step with one output that the result (a `collect`'s list, say) has no
/// field for gets the whole result.
fn outputs_of(step: &Step, result: Option<Value>) -> Result<Map<String, Value>, String> {
    let result = result.unwrap_or(Value::Null);
    if let [only] = step.outputs.as_slice()
        && result.get(&**only).is_none()
    {
        return Ok(Map::from_iter([(only.to_string(), result)]));
    }
    step.outputs
        .iter()
        .map(|name| match result.get(&**name) {
            Some(value) => Ok((name.to_string(), value.clone())),
            None => Err(format!("the squad's result has no field {name:?}, a declared output of the step")),
        })
        .collect()
}

impl<S: EngineStore, Q: MessageQueue, I: AgentInvoker> Engine<S, Q, I> {
    /// A run that ended cancels the tasks of its squad steps still running. At most
    /// once per run, and best effort: a task it misses is cancelled by its watch, which
    /// looks at the run.
    pub(super) async fn cancel_squad_steps(&self, run: &Run) {
        let cancelled = async {
            let Some((_, steps)) = self.store.get_run(&run.id).await? else { return Ok(()) };
            let compiled = self.compiled(&run.workflow_id, Some(&run.workflow_version)).await?;
            for step in steps.iter().filter(|s| !s.status.is_terminal()) {
                let is_squad = compiled.index(&step.step_id).is_some_and(|i| {
                    matches!(compiled.workflow.step(i).kind, crate::workflow::StepKind::Squad { .. })
                });
                if is_squad {
                    self.cancel_squad_step_task(run, step).await?;
                }
            }
            Ok::<(), EngineError>(())
        };
        if let Err(e) = cancelled.await {
            tracing::warn!(run_id = %run.id, error = %e, "could not cancel the squad tasks of an ended run; their watches will");
        }
    }

    /// The run ended (cancelled, timed out, failed elsewhere) while this squad step ran:
    /// its task is cancelled too — nothing new starts; calls under way finish and count
    /// for nothing. Done before the step is recorded as cancelled, so that a worker that
    /// dies between the two leaves the step to the next delivery, which does both.
    pub(super) async fn cancel_squad_step_task(&self, run: &Run, step: &StepRun) -> Result<(), EngineError> {
        if step.attempts == 0 {
            return Ok(());
        }
        let parent =
            ParentStep { run_id: run.id.clone(), step_id: step.step_id.clone(), attempt: step.attempts };
        let Some(task) = self.store.get_task(&parent.task_id()).await? else { return Ok(()) };
        if task.status.is_terminal() {
            return Ok(());
        }
        let why = format!("its workflow run {} {}", run.id, run.status.as_str());
        self.end_task(&task, Ending::failure(TaskStatus::Cancelled, why)).await.map(|_| ())
    }

    pub(super) async fn process_squad_step(
        &self,
        compiled: &Compiled,
        run: &Run,
        index: StepIndex,
        records: &HashMap<&str, &StepRun>,
        step: StepRun,
    ) -> Result<Outcome, EngineError> {
        let definition = compiled.workflow.step(index);
        let crate::workflow::StepKind::Squad { squad, version } = &definition.kind else {
            return Err(EngineError::Corrupt(format!(
                "step {:?} is not a squad step",
                definition.id.as_str()
            )));
        };
        let step = if step.status == StepStatus::Queued {
            let started = StepRun {
                status: StepStatus::Running,
                attempts: step.attempts + 1,
                started_at: step.started_at.or(Some(self.clock.now())),
                error: None,
                version: step.version + 1,
                ..step
            };
            self.store
                .update_step(&run.id, &started, started.event(&run.id, self.clock.now()).as_slice())
                .await?;
            started
        } else {
            step
        };
        let parent =
            ParentStep { run_id: run.id.clone(), step_id: step.step_id.clone(), attempt: step.attempts };
        let task = match self.store.get_task(&parent.task_id()).await? {
            Some(task) => task,
            None => {
                let inputs = step_inputs(compiled, run, index, records);
                match self.start_task(squad, version.as_deref(), inputs, Some(parent)).await {
                    Ok(task) => task,
                    Err(e @ (EngineError::Invalid(_) | EngineError::NotFound { .. })) => {
                        return self
                            .fail_step(
                                compiled,
                                run,
                                index,
                                step,
                                format!("the squad task could not start: {e}"),
                                None,
                            )
                            .await;
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        match task.status {
            // The task's end sends this step a message of its own (and the task's watch
            // sends it again if that was lost): nothing waits on the queue meanwhile.
            TaskStatus::Running => Ok(Outcome::Done),
            TaskStatus::Succeeded => match outputs_of(definition, task.result) {
                Ok(outputs) => {
                    self.finish_step(&run.id, step, StepStatus::Succeeded, Some(outputs), None, None).await?;
                    tracing::info!(run_id = %run.id, step_id = %definition.id, task_id = %task.id, "squad step succeeded");
                    self.advance(compiled, run, index).await?;
                    Ok(Outcome::Done)
                }
                Err(error) => self.fail_step(compiled, run, index, step, error, None).await,
            },
            status => {
                let error = format!(
                    "squad task {} {}: {}",
                    task.id,
                    status.as_str(),
                    task.error.as_deref().unwrap_or("no reason given")
                );
                self.fail_step(compiled, run, index, step, error, None).await
            }
        }
    }
}
