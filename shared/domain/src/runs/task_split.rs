//! A `split`: the items of one input are shared among the workers, each item one
//! assignment (`i000042-g0`), within the task's cap and each worker's; the results come
//! back in input order.
//!
//! A split may have many thousands of items, so it does not read its assignments to move
//! on: the task record counts them. It holds how many items were handed out (items are
//! handed out in order), which are finished (a bit each, so that an item is counted
//! once however often its end is looked at), and how many each seat has in flight. An
//! item's assignment is created before the task's record says it was handed out, so a
//! worker that dies between the two leaves an assignment the next one adopts; its
//! message is sent after, and one lost there is sent again by the task's watch.

use serde_json::{Map, Value};

use super::ports::EngineStore;
use super::service::{Engine, EngineError};
use super::task_records::{Assignment, AssignmentKind, AssignmentStatus, Seat, SquadTask};
use super::task_state::{Ending, Pass, replaced, rule_of};
use crate::agents::AgentInvoker;
use crate::ports::{MessageQueue, StoreError};
use crate::squads::{Ballot, Role, Squad, Strategy, Verdict, Vote, decide};

fn item_id(item: u32, generation: u32) -> String {
    format!("i{item:06}-g{generation}")
}

/// The generation in an item's assignment id.
fn generation_of(id: &str) -> u32 {
    id.rsplit_once("-g").and_then(|(_, g)| g.parse().ok()).unwrap_or(0)
}

/// The items of a split task, from its input.
pub(super) fn items<'t>(input: &'t Map<String, Value>, squad: &Squad) -> &'t [Value] {
    let over = squad.distribution.over.as_deref().unwrap_or_default();
    match input.get(over) {
        Some(Value::Array(items)) => items,
        _ => &[],
    }
}

/// What an item's call is given: the task's input with the item in place of the list.
pub(super) fn item_inputs(input: &Map<String, Value>, squad: &Squad, item: u32) -> Map<String, Value> {
    let over = squad.distribution.over.as_deref().unwrap_or_default();
    // The list itself is not copied: a split may have many thousands of items.
    let mut inputs: Map<String, Value> =
        input.iter().filter(|(name, _)| *name != over).map(|(k, v)| (k.clone(), v.clone())).collect();
    let value = items(input, squad).get(item as usize).cloned().unwrap_or(Value::Null);
    inputs.insert(over.to_owned(), value);
    inputs
}

/// The worker for `item`, by the squad's strategy, among the workers with room: `None`
/// when none has room (`Some(Err)` when no worker can ever take it). `load`: for
/// `least_loaded`, what each seat's agent has in flight elsewhere, by slot.
fn pick(
    squad: &Squad,
    task: &SquadTask,
    workers: &[&Seat],
    load: &[u32],
    item: u32,
    value: &Value,
) -> Option<Result<u32, String>> {
    let per = squad.limits.max_per_member;
    let room = |seat: &Seat| task.in_flight.get(seat.slot as usize).copied().unwrap_or(0) < per;
    let assigned = |seat: &Seat| task.assigned.get(seat.slot as usize).copied().unwrap_or(0);
    let busy = |seat: &Seat| {
        task.in_flight.get(seat.slot as usize).copied().unwrap_or(0)
            + load.get(seat.slot as usize).copied().unwrap_or(0)
    };
    match squad.strategy() {
        Strategy::RoundRobin => {
            let n = workers.len();
            (0..n).map(|k| workers[(item as usize + k) % n]).find(|s| room(s)).map(|s| Ok(s.slot))
        }
        Strategy::LeastLoaded => workers
            .iter()
            .filter(|s| room(s))
            .min_by_key(|s| (busy(s), assigned(s), s.slot))
            .map(|s| Ok(s.slot)),
        Strategy::Weighted => workers
            .iter()
            .filter(|s| room(s))
            // The seat furthest below its share: least (assigned + 1) / weight.
            .min_by(|a, b| {
                let share = |s: &Seat| (u64::from(assigned(s)) + 1) * 1_000_000 / u64::from(s.weight.max(1));
                share(a).cmp(&share(b)).then(a.slot.cmp(&b.slot))
            })
            .map(|s| Ok(s.slot)),
        Strategy::Capability => {
            let Some(capability) = value.get("capability").and_then(Value::as_str) else {
                return Some(Err("the item has no `capability` field to choose a worker by".into()));
            };
            let able: Vec<&&Seat> =
                workers.iter().filter(|s| s.capabilities.iter().any(|c| c == capability)).collect();
            if able.is_empty() {
                return Some(Err(format!("no worker of the squad offers {capability:?}")));
            }
            able.into_iter().filter(|s| room(s)).min_by_key(|s| (assigned(s), s.slot)).map(|s| Ok(s.slot))
        }
    }
}

impl<S: EngineStore, Q: MessageQueue, I: AgentInvoker> Engine<S, Q, I> {
    pub(super) async fn advance_split(
        &self,
        task: &SquadTask,
        squad: &Squad,
        finished: Option<&Assignment>,
    ) -> Result<Pass, EngineError> {
        let input = self.task_input(&task.id).await?;
        let items = items(&input, squad);
        let n = u32::try_from(items.len()).unwrap_or(u32::MAX);
        let mut next = task.clone();
        next.in_flight.resize(task.seats.len(), 0);
        next.assigned.resize(task.seats.len(), 0);
        let mut changed = false;
        let mut send = Vec::new();
        let now = self.clock.now();

        // The end of an item's assignment: counted once; a failure is tried again on the
        // seat's next agent (a replacement, if one is left), else the item failed for good.
        if let Some(ended) = finished
            && let Some(item) = ended.item
            && !next.item_finished(item)
            && matches!(ended.status, AssignmentStatus::Succeeded | AssignmentStatus::Failed)
        {
            let slot = ended.slot as usize;
            let seat = task.seats.get(slot).cloned();
            let mut retry_on: Option<Seat> = None;
            if ended.status == AssignmentStatus::Failed
                && let Some(seat) = seat
            {
                if generation_of(&ended.id) < seat.generation {
                    retry_on = Some(seat);
                } else if task.replacements.len() < squad.on_failure.replacements as usize
                    && let Some(agent) = self.replacement_for(task, &seat).await?
                {
                    let reason = ended.error.clone().unwrap_or_else(|| "it failed".into());
                    next = SquadTask { version: next.version, ..replaced(&next, &seat, agent, reason, now) };
                    retry_on = next.seats.get(slot).cloned();
                }
            }
            match retry_on {
                Some(seat) => {
                    let id = item_id(item, seat.generation);
                    let again =
                        self.new_assignment(id.clone(), AssignmentKind::Answer, 1, &seat, Some(item), now);
                    self.adopt(&task.id, again).await?;
                    send.push(id);
                }
                None => {
                    next.finish_item(item);
                    next.in_flight[slot] = next.in_flight[slot].saturating_sub(1);
                }
            }
            changed = true;
        }

        // Hand out the next items, in order, while the caps allow.
        let workers: Vec<Seat> = next.seats.iter().filter(|s| s.role == Role::Worker).cloned().collect();
        let worker_refs: Vec<&Seat> = workers.iter().collect();
        // least_loaded counts what each worker's agent has in flight for message routing
        // too (the agents' shared load), read once per pass.
        let mut load = vec![0; next.seats.len()];
        if squad.strategy() == Strategy::LeastLoaded && next.handed_out < n {
            for seat in &workers {
                load[seat.slot as usize] = self.store.in_flight(&seat.agent, now).await?;
            }
        }
        while next.handed_out < n && next.in_flight.iter().sum::<u32>() < squad.limits.max_concurrency {
            let item = next.handed_out;
            let value = &items[item as usize];
            let Some(choice) = pick(squad, &next, &worker_refs, &load, item, value) else { break };
            let (slot, failure) = match choice {
                Ok(slot) => (slot, None),
                Err(why) => (worker_refs.first().map_or(0, |s| s.slot), Some(why)),
            };
            let seat = &next.seats[slot as usize];
            let mut assignment = self.new_assignment(
                item_id(item, seat.generation),
                AssignmentKind::Answer,
                1,
                seat,
                Some(item),
                now,
            );
            if let Some(why) = failure {
                // No worker can take it: recorded as failed at once.
                assignment.status = AssignmentStatus::Failed;
                assignment.error = Some(why);
                assignment.finished_at = Some(now);
            }
            let adopted = self.adopt(&task.id, assignment).await?;
            next.handed_out += 1;
            next.assigned[adopted.slot as usize] += 1;
            if adopted.status == AssignmentStatus::Failed && adopted.attempts == 0 {
                next.finish_item(item);
            } else {
                next.in_flight[adopted.slot as usize] += 1;
                send.push(adopted.id);
            }
            changed = true;
        }

        if changed {
            let written = SquadTask { version: task.version + 1, ..next };
            let replaced = (written.replacements.len() > task.replacements.len())
                .then(|| self.replaced_event(&written))
                .flatten();
            self.store.update_task(&written, replaced.as_slice()).await?;
            for id in &send {
                self.send_assignment(&task.id, id).await?;
            }
            next = written;
        }
        if next.finished < n {
            if finished.is_none() {
                // The watch (or the start): an item recorded as handed out by a worker that
                // died before sending its message waits on no message; send it again. The
                // only read of every assignment before the end, once a minute.
                let assignments = self.store.list_assignments(&task.id).await?;
                let by_id = assignments.iter().map(|a| (a.id.as_str(), a)).collect();
                self.resend_stale(&task.id, &by_id).await?;
            }
            return Ok(Pass::Done);
        }
        self.collect(&next, squad, items.len()).await
    }

    /// Creates an item's assignment, or takes the one a worker that died made before.
    async fn adopt(&self, task_id: &str, assignment: Assignment) -> Result<Assignment, EngineError> {
        match self.store.create_assignment(task_id, &assignment).await {
            Ok(()) => Ok(assignment),
            Err(StoreError::Conflict(_)) => {
                self.store.get_assignment(task_id, &assignment.id).await?.ok_or_else(|| {
                    EngineError::Corrupt(format!("assignment {} exists and does not", assignment.id))
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every item is finished: the results, in input order (an item's last generation
    /// counts), become the result.
    async fn collect(&self, task: &SquadTask, squad: &Squad, items: usize) -> Result<Pass, EngineError> {
        let assignments = self.store.list_assignments(&task.id).await?;
        let mut last: Vec<Option<&Assignment>> = vec![None; items];
        for assignment in &assignments {
            if let Some(item) = assignment.item
                && let Some(slot) = last.get_mut(item as usize)
                && slot.is_none_or(|seen| generation_of(&seen.id) < generation_of(&assignment.id))
            {
                *slot = Some(assignment);
            }
        }
        let ballots: Vec<Ballot> = last
            .iter()
            .enumerate()
            .map(|(item, assignment)| {
                let vote = match assignment {
                    Some(a) if a.status == AssignmentStatus::Succeeded => Vote::Answered {
                        reply: a.result.clone().unwrap_or(Value::Null),
                        at: a.finished_at.map_or(0, |t| u64::try_from(t.as_microsecond()).unwrap_or(0)),
                        judgement: None,
                    },
                    Some(a) if a.status.is_terminal() => {
                        Vote::Failed { reason: a.error.clone().unwrap_or_else(|| a.status.as_str().into()) }
                    }
                    _ => Vote::Pending,
                };
                Ballot { slot: u32::try_from(item).unwrap_or(u32::MAX), role: Role::Worker, weight: 1, vote }
            })
            .collect();
        let ending = match decide(&rule_of(squad), &ballots) {
            Verdict::Reached { result, tally } => Ending {
                status: super::TaskStatus::Succeeded,
                result: Some(result),
                tally: Some(tally),
                error: None,
            },
            Verdict::Impossible { reason, tally, .. } => Ending {
                status: super::TaskStatus::Failed,
                result: None,
                tally: Some(tally),
                error: Some(reason),
            },
            // Every item is counted finished; a pending one means a record went missing.
            Verdict::Pending { .. } => {
                return Err(EngineError::Corrupt(format!("task {}: an item has no result", task.id)));
            }
        };
        let mut ending = ending;
        let outcome = if ending.status == super::TaskStatus::Succeeded { "reached" } else { "impossible" };
        self.end_round(task, outcome, &mut ending).await?;
        Ok(Pass::Done)
    }
}
