//! `lead_plans`, the supervisor pattern made durable: the lead returns a plan (a list of
//! subtasks), the workers run its subtasks (`sub0003-g0`) within the caps, and the lead
//! is given their results to synthesize (`synth-g0`): its answer is the task's result.
//! Every step is an assignment, so a lost worker or a failed member is handled as in any
//! other task: retried, replaced, or tolerated.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::ports::EngineStore;
use super::service::{Engine, EngineError};
use super::task_records::{Assignment, AssignmentKind, AssignmentStatus, Seat, SquadTask, TaskStatus};
use super::task_state::{Ending, Pass};
use crate::agents::{AgentInvoker, InvokeError};
use crate::ports::MessageQueue;
use crate::squads::{Ballot, Role, Squad, Verdict, Vote, decide};

/// The most subtasks a plan may have.
pub const MAX_SUBTASKS: usize = 1_000;

fn generation_of(id: &str) -> u32 {
    id.rsplit_once("-g").and_then(|(_, g)| g.parse().ok()).unwrap_or(0)
}

/// The subtasks of a lead's plan reply: `{"plan": [{"input": {...}, "capability": "..."}]}`.
pub(super) fn check_plan(reply: &Map<String, Value>) -> Result<(), InvokeError> {
    let bad = |why: String| Err(InvokeError::Rejected(format!("the lead's plan: {why}")));
    let Some(Value::Array(plan)) = reply.get("plan") else {
        return bad(
            "the reply needs `plan`, a list of subtasks ({\"input\": {...}, \"capability\": \"...\"})".into(),
        );
    };
    if plan.len() > MAX_SUBTASKS {
        return bad(format!("{} subtasks; at most {MAX_SUBTASKS}", plan.len()));
    }
    for (k, subtask) in plan.iter().enumerate() {
        let Value::Object(fields) = subtask else { return bad(format!("plan[{k}] is not an object")) };
        if fields.get("input").is_some_and(|i| !i.is_object()) {
            return bad(format!("plan[{k}].input is not an object"));
        }
        if fields.get("capability").is_some_and(|c| !c.is_string()) {
            return bad(format!("plan[{k}].capability is not a string"));
        }
    }
    Ok(())
}

/// The plan of a task, once its lead made one.
pub(super) fn plan_of<'a>(by_id: &HashMap<&str, &'a Assignment>) -> Option<&'a Vec<Value>> {
    by_id
        .values()
        .filter(|a| a.kind == AssignmentKind::Plan && a.status == AssignmentStatus::Succeeded)
        .find_map(|a| a.result.as_ref().and_then(|r| r.get("plan")).and_then(Value::as_array))
}

/// The latest generation of each assignment whose id starts with `prefix`.
fn latest<'a>(by_id: &HashMap<&str, &'a Assignment>, prefix: &str) -> Option<&'a Assignment> {
    by_id
        .iter()
        .filter(|(id, _)| id.starts_with(prefix))
        .map(|(_, a)| *a)
        .max_by_key(|a| generation_of(&a.id))
}

impl<S: EngineStore, Q: MessageQueue, I: AgentInvoker> Engine<S, Q, I> {
    pub(super) async fn advance_lead(
        &self,
        task: &SquadTask,
        squad: &Squad,
        by_id: &HashMap<&str, &Assignment>,
    ) -> Result<Pass, EngineError> {
        let Some(lead) = task.seats.iter().find(|s| s.role == Role::Lead) else {
            return Err(EngineError::Corrupt(format!("task {} has no lead", task.id)));
        };
        let workers: Vec<&Seat> = task.seats.iter().filter(|s| s.role == Role::Worker).collect();
        let now = self.clock.now();

        // 1. The plan.
        let Some(plan) = plan_of(by_id) else {
            return self.lead_step(task, squad, lead, by_id, "plan", AssignmentKind::Plan, "plan").await;
        };

        // 2. The subtasks, each on its worker, within the cap.
        let in_flight = by_id
            .values()
            .filter(|a| {
                a.kind == AssignmentKind::Subtask
                    && matches!(a.status, AssignmentStatus::Queued | AssignmentStatus::Running)
            })
            .count();
        let mut room = (squad.limits.max_concurrency as usize).saturating_sub(in_flight);
        let mut failed = Vec::new();
        let mut open = 0;
        for (k, subtask) in plan.iter().enumerate() {
            let k = u32::try_from(k).unwrap_or(u32::MAX);
            let capability = subtask.get("capability").and_then(Value::as_str);
            let able: Vec<&&Seat> = workers
                .iter()
                .filter(|s| capability.is_none_or(|c| s.capabilities.iter().any(|o| o == c)))
                .collect();
            let Some(seat) = able.get(k as usize % able.len().max(1)).copied().copied() else {
                failed.push(format!("subtask {k}: no worker offers {:?}", capability.unwrap_or_default()));
                continue;
            };
            match latest(by_id, &format!("sub{k:04}-g")) {
                Some(a) if a.status == AssignmentStatus::Succeeded => {}
                Some(a) if a.status == AssignmentStatus::Failed => {
                    if generation_of(&a.id) < seat.generation {
                        open += 1;
                        if room > 0 {
                            let id = format!("sub{k:04}-g{}", seat.generation);
                            self.make_assignment(
                                &task.id,
                                &self.new_assignment(id, AssignmentKind::Subtask, 1, seat, Some(k), now),
                            )
                            .await?;
                            room -= 1;
                        }
                    } else if task.replacements.len() < squad.on_failure.replacements as usize
                        && let Some(agent) = self.replacement_for(task, seat).await?
                    {
                        let reason = a.error.clone().unwrap_or_else(|| "it failed".into());
                        self.replace(task, seat, agent, reason).await?;
                        return Ok(Pass::Again);
                    } else {
                        failed.push(format!("subtask {k}: {}", a.error.as_deref().unwrap_or("failed")));
                    }
                }
                Some(_) => open += 1,
                None => {
                    open += 1;
                    if room > 0 {
                        let id = format!("sub{k:04}-g{}", seat.generation);
                        self.make_assignment(
                            &task.id,
                            &self.new_assignment(id, AssignmentKind::Subtask, 1, seat, Some(k), now),
                        )
                        .await?;
                        room -= 1;
                    }
                }
            }
        }
        if failed.len() > squad.on_failure.tolerate as usize {
            let reason = format!(
                "{} subtask(s) failed and the squad tolerates {}: {}",
                failed.len(),
                squad.on_failure.tolerate,
                failed.join("; ")
            );
            self.end_task(
                task,
                Ending { status: TaskStatus::Failed, result: None, tally: None, error: Some(reason) },
            )
            .await?;
            return Ok(Pass::Done);
        }
        if open > 0 {
            self.resend_stale(&task.id, by_id).await?;
            return Ok(Pass::Done);
        }

        // 3. Every subtask ended: the lead synthesizes.
        self.lead_step(
            task,
            squad,
            lead,
            by_id,
            "synth",
            AssignmentKind::Synthesize,
            "synthesize the results",
        )
        .await
    }

    /// The lead's step `prefix` (its plan, or its synthesis): made when missing, its
    /// member replaced when it failed, and the synthesis's answer ends the task.
    #[allow(clippy::too_many_arguments)]
    async fn lead_step(
        &self,
        task: &SquadTask,
        squad: &Squad,
        lead: &Seat,
        by_id: &HashMap<&str, &Assignment>,
        prefix: &str,
        kind: AssignmentKind,
        what: &str,
    ) -> Result<Pass, EngineError> {
        let now = self.clock.now();
        let current = by_id.get(format!("{prefix}-g{}", lead.generation).as_str()).copied();
        match current {
            None => {
                let id = format!("{prefix}-g{}", lead.generation);
                self.make_assignment(&task.id, &self.new_assignment(id, kind, 1, lead, None, now)).await?;
            }
            Some(a) if a.status == AssignmentStatus::Failed => {
                if task.replacements.len() < squad.on_failure.replacements as usize
                    && let Some(agent) = self.replacement_for(task, lead).await?
                {
                    let reason = a.error.clone().unwrap_or_else(|| "it failed".into());
                    self.replace(task, lead, agent, reason).await?;
                    return Ok(Pass::Again);
                }
                let reason =
                    format!("the lead could not {what}: {}", a.error.as_deref().unwrap_or("it failed"));
                self.end_task(
                    task,
                    Ending { status: TaskStatus::Failed, result: None, tally: None, error: Some(reason) },
                )
                .await?;
            }
            Some(a) if a.status == AssignmentStatus::Succeeded && kind == AssignmentKind::Synthesize => {
                let ballot = Ballot {
                    slot: lead.slot,
                    role: Role::Lead,
                    weight: lead.weight,
                    vote: Vote::Answered {
                        reply: a.result.clone().unwrap_or(Value::Null),
                        at: 0,
                        judgement: None,
                    },
                };
                let rule = super::task_state::rule_of(squad);
                let mut ending = match decide(&rule, &[ballot]) {
                    Verdict::Reached { result, tally } => Ending {
                        status: TaskStatus::Succeeded,
                        result: Some(result),
                        tally: Some(tally),
                        error: None,
                    },
                    Verdict::Impossible { reason, tally, .. } => Ending {
                        status: TaskStatus::Failed,
                        result: None,
                        tally: Some(tally),
                        error: Some(reason),
                    },
                    Verdict::Pending { tally } => Ending {
                        status: TaskStatus::Failed,
                        result: None,
                        tally: Some(tally),
                        error: Some("the lead's synthesis could not be counted".into()),
                    },
                };
                let outcome = if ending.status == TaskStatus::Succeeded { "reached" } else { "impossible" };
                self.end_round(task, outcome, &mut ending).await?;
            }
            Some(_) => self.resend_stale(&task.id, by_id).await?,
        }
        Ok(Pass::Done)
    }
}

/// What a lead or a worker of a `lead_plans` task is sent beyond the task's input: the
/// subtask's own input, or every subtask's result to synthesize.
pub(super) fn lead_payload(payload: &mut Value, assignment: &Assignment, by_id: &HashMap<&str, &Assignment>) {
    let Some(plan) = plan_of(by_id) else { return };
    match assignment.kind {
        AssignmentKind::Subtask => {
            let subtask = assignment.item.and_then(|k| plan.get(k as usize));
            if let Some(input) = subtask.and_then(|s| s.get("input")) {
                payload["inputs"] = input.clone();
            }
            payload["subtask"] = subtask.cloned().unwrap_or(Value::Null);
        }
        AssignmentKind::Synthesize => {
            let results: Vec<Value> = (0..plan.len())
                .map(|k| {
                    let done = latest(by_id, &format!("sub{k:04}-g"));
                    json!({
                        "subtask": k, "input": plan[k].get("input"),
                        "result": done.filter(|a| a.status == AssignmentStatus::Succeeded).and_then(|a| a.result.clone()),
                        "error": done.filter(|a| a.status != AssignmentStatus::Succeeded).and_then(|a| a.error.clone()),
                    })
                })
                .collect();
            payload["results"] = Value::Array(results);
        }
        _ => {}
    }
}
