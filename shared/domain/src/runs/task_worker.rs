//! What a delivery on the step queue asks of a squad task: an assignment message calls
//! (or re-checks) one assignment, a watch message times the task out at its deadline and
//! re-sends what was lost until then.
//!
//! A task moves as a run does. Every assignment is a record made by a conditional create
//! (so exactly one caller makes it and sends its message) and every change of it or of
//! the task is a conditional write on the version read. An attempt starts only by winning
//! the write `queued → running`, so a member is never called twice for one attempt; a
//! message that comes back while its attempt may still be running waits instead of
//! starting another. After each change, [`Engine::advance_task`] reads the task and its
//! assignments and does what they call for — replace a failed member, settle the tally,
//! start the next round, queue the next assignments within the caps — so a worker that
//! dies between any two writes leaves nothing half done: the next delivery (its own, come
//! back, or any other of the task's) finishes the work from what is stored.

use std::collections::HashMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use super::ports::EngineStore;
use super::service::{Engine, EngineError, Task};
use super::task_records::{
    Assignment, AssignmentKind, AssignmentStatus, RoundOutcome, Seat, SquadTask, TaskStatus,
};
use super::task_state::{Ending, Pass, answer_id, micros, replaced, rule_of};
use crate::agents::{AgentInvoker, AgentStatus, InvokeError};
use crate::events::Event;
use crate::ports::{MessageQueue, StoreError};
use crate::queue::Outcome;
use crate::squads::{Ballot, Judgement, Method, Mode, Role, Squad, Verdict, Vote, decide};

/// How often a running task is looked after: what was queued longer ago than this and
/// has not started is sent again.
pub const WATCH_EVERY: Duration = Duration::from_secs(60);
/// A watch received this many times sends its next generation and ends: well within the
/// step queue's receive limit ([`super::STEP_MAX_RECEIVES`]).
const WATCH_RENEW_AFTER: u32 = super::STEP_MAX_RECEIVES / 2;
/// Receives a watch sent before its task is recorded waits for the task.
const WATCH_WAITS_FOR_TASK: u32 = 5;
/// After a lost conditional write, look again soon.
pub(super) const CONFLICT_RETRY: Duration = Duration::from_millis(200);
/// Rounds of advance after lost conditional writes before the delivery is retried.
const ADVANCE_TRIES: usize = 16;

fn judge_id(round: u32, answer: &Seat, validator: &Seat) -> String {
    format!("r{round:02}-j{:04}-g{}-v{:04}", answer.slot, answer.generation, validator.slot)
}

impl<S: EngineStore, Q: MessageQueue, I: AgentInvoker> Engine<S, Q, I> {
    /// Processes an assignment message; errors are mapped to outcomes by the caller.
    pub(super) async fn process_assignment(
        &self,
        task_id: &str,
        assignment_id: &str,
        delivery: &crate::queue::Delivery,
    ) -> Result<Outcome, EngineError> {
        let Some(task) = self.store.get_task(task_id).await? else {
            tracing::warn!(task_id, "an assignment of an unknown task");
            return Ok(Outcome::Done);
        };
        let assignment = self.store.get_assignment(task_id, assignment_id).await?.ok_or_else(|| {
            EngineError::Corrupt(format!("assignment {assignment_id:?} has a message but no record"))
        })?;
        if assignment.status.is_terminal() {
            // Perhaps a crash between recording the result and advancing: finish that.
            self.advance_task(task_id, Some(&assignment)).await?;
            let squad = self.squad(&task.squad_id, Some(&task.squad_version)).await?;
            if super::task_votes::counts_votes(&squad) {
                // A broadcast's pass after an answer reads only the task's record, and
                // the crash may have cut short the one handing out the round: look fully.
                self.advance_task(task_id, None).await?;
            }
            return Ok(Outcome::Done);
        }
        if task.status.is_terminal() {
            let why = "the task ended before this call was made";
            self.finish_assignment(task_id, assignment, AssignmentStatus::Cancelled, None, Some(why.into()))
                .await?;
            return Ok(Outcome::Done);
        }
        let now = self.clock.now();
        if now >= task.deadline {
            self.time_out(&task).await?;
            return Ok(Outcome::Done);
        }
        let squad = self.squad(&task.squad_id, Some(&task.squad_version)).await?;
        let timeout = squad.limits.member_timeout();
        let left = Duration::try_from(task.deadline.duration_since(now)).unwrap_or(Duration::ZERO);
        let budget = timeout.min(left);
        let mut lost = None;
        if assignment.status == AssignmentStatus::Running {
            // Its attempt may still be under way (a duplicate message): wait for it, never
            // call twice. Past its time, or taken back from a dead process, it is lost.
            let until = assignment.started_at.map(|at| {
                at + SignedDuration::try_from(timeout + self.visibility_margin).unwrap_or(SignedDuration::MAX)
            });
            if !delivery.reclaimed
                && let Some(until) = until
                && now < until
            {
                let wait = Duration::try_from(until.duration_since(now)).unwrap_or(CONFLICT_RETRY);
                return Ok(Outcome::RetryAfter(wait.max(CONFLICT_RETRY)));
            }
            let cause = if delivery.reclaimed { "restart" } else { "visibility_timeout" };
            let data = json!({"assignment": assignment.id, "attempt": assignment.attempts, "agent": assignment.agent, "cause": cause});
            tracing::warn!(
                task_id,
                assignment_id,
                attempt = assignment.attempts,
                cause,
                "an assignment's attempt was lost"
            );
            lost = Some(self.task_event("squad.task.attempt_lost", task_id, data));
        }
        let max_attempts = 1 + squad.on_failure.retries;
        let attempt = assignment.attempts + 1;
        if attempt > max_attempts {
            let why = format!("no attempts left after {} (the last was lost)", assignment.attempts);
            let failed = self
                .finish_assignment(task_id, assignment, AssignmentStatus::Failed, None, Some(why))
                .await?;
            self.advance_task(task_id, Some(&failed)).await?;
            return Ok(Outcome::Done);
        }
        let started = Assignment {
            status: AssignmentStatus::Running,
            attempts: attempt,
            started_at: Some(now),
            error: None,
            version: assignment.version + 1,
            ..assignment
        };
        // A lost attempt is told with the next one's start, in the same write.
        self.store.update_assignment(task_id, &started, lost.as_slice()).await?;
        self.queue.keep_hidden(super::STEP_QUEUE, &delivery.receipt, budget + self.visibility_margin).await?;

        let reply = match self.assignment_payload(&task, &squad, &started).await {
            Ok(payload) => match self.agent_target(&started.agent).await {
                Ok(target) => self.invoker.invoke(&target, &payload, budget).await,
                Err(e) => Err(e),
            },
            Err(e) => return Err(e),
        };
        let reply = reply.and_then(|reply| check_reply(started.kind, reply));
        let finished = match reply {
            Ok(reply) => {
                let vote = (started.kind == AssignmentKind::Answer)
                    .then(|| {
                        crate::squads::compared(&Value::Object(reply.clone()), &squad.aggregation.compare)
                            .cloned()
                    })
                    .flatten();
                let done = Assignment { vote, ..started };
                self.finish_assignment(
                    task_id,
                    done,
                    AssignmentStatus::Succeeded,
                    Some(Value::Object(reply)),
                    None,
                )
                .await?
            }
            Err(error) if error.is_retryable() && attempt < max_attempts => {
                let delay = Duration::from_millis(500u64.saturating_mul(1 << (attempt - 1).min(6)))
                    .min(Duration::from_secs(30));
                tracing::warn!(task_id, assignment_id, attempt, error = %error, "an assignment's attempt failed; retrying");
                let due = self.clock.now() + SignedDuration::try_from(delay).unwrap_or(SignedDuration::ZERO);
                let waiting = Assignment {
                    status: AssignmentStatus::Queued,
                    error: Some(error.to_string()),
                    queued_at: due,
                    version: started.version + 1,
                    ..started
                };
                self.store.update_assignment(task_id, &waiting, &[]).await?;
                return Ok(Outcome::RetryAfter(delay));
            }
            Err(error) => {
                tracing::warn!(task_id, assignment_id, attempt, error = %error, "an assignment failed");
                self.finish_assignment(
                    task_id,
                    started,
                    AssignmentStatus::Failed,
                    None,
                    Some(error.to_string()),
                )
                .await?
            }
        };
        self.advance_task(task_id, Some(&finished)).await?;
        Ok(Outcome::Done)
    }

    /// Looks after a task until it ends (see [`Task::TaskWatch`]).
    pub(super) async fn process_watch(
        &self,
        task_id: &str,
        generation: u32,
        delivery: &crate::queue::Delivery,
    ) -> Result<Outcome, EngineError> {
        let Some(task) = self.store.get_task(task_id).await? else {
            // Sent before the task is recorded: it may be on its way.
            return Ok(if delivery.receive_count < WATCH_WAITS_FOR_TASK {
                Outcome::RetryAfter(CONFLICT_RETRY * 5)
            } else {
                Outcome::Done
            });
        };
        if task.status.is_terminal() {
            // Perhaps its end was recorded by a worker that died before telling the step.
            self.notify_parent(&task).await?;
            return Ok(Outcome::Done);
        }
        if let Some(parent) = &task.parent
            && let Some((run, _)) = self.store.get_run(&parent.run_id).await?
            && run.status.is_terminal()
        {
            let why = format!("its workflow run {} {}", run.id, run.status.as_str());
            match self.end_task(&task, Ending::failure(TaskStatus::Cancelled, why)).await {
                Ok(_) | Err(EngineError::Store(StoreError::Conflict(_))) => return Ok(Outcome::Done),
                Err(e) => return Err(e),
            }
        }
        let now = self.clock.now();
        if now >= task.deadline {
            self.time_out(&task).await?;
            return Ok(Outcome::Done);
        }
        self.advance_task(task_id, None).await?;
        if delivery.receive_count >= WATCH_RENEW_AFTER {
            self.send_watch(task_id, generation + 1).await?;
            return Ok(Outcome::Done);
        }
        let left = Duration::try_from(task.deadline.duration_since(now)).unwrap_or(Duration::ZERO);
        Ok(Outcome::RetryAfter(left.min(WATCH_EVERY)))
    }

    /// Tells the workflow step a task runs for, if any, that the task ended: the step's
    /// own message does not wait on the queue for it (each wait would be a receive, and
    /// the queue dead-letters a message after [`super::STEP_MAX_RECEIVES`]).
    pub(super) async fn notify_parent(&self, task: &SquadTask) -> Result<(), EngineError> {
        let Some(parent) = &task.parent else { return Ok(()) };
        let message = super::Task::Step { run_id: parent.run_id.clone(), step_id: parent.step_id.clone() };
        let key = format!("{}/{}/{}/task-ended", parent.run_id, parent.step_id, parent.attempt);
        self.send(&message, &key).await?;
        Ok(())
    }

    async fn time_out(&self, task: &SquadTask) -> Result<(), EngineError> {
        match self.end_task(task, Ending::failure(TaskStatus::TimedOut, "the squad's deadline passed")).await
        {
            Ok(_) | Err(EngineError::Store(StoreError::Conflict(_))) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// What the agent of an assignment is sent: the task's input (a split item's call:
    /// with the item in place of the list) and context; from round 2 the previous round's
    /// answers; a validator, the answer it judges; a lead_plans step, its subtask or the
    /// results to synthesize.
    async fn assignment_payload(
        &self,
        task: &SquadTask,
        squad: &Squad,
        assignment: &Assignment,
    ) -> Result<Value, EngineError> {
        let seat = task.seats.iter().find(|s| s.slot == assignment.slot);
        let mut context = json!({
            "task_id": task.id, "squad_id": task.squad_id, "round": assignment.round, "slot": assignment.slot,
            "role": seat.map(|s| s.role), "attempt": assignment.attempts, "assignment": assignment.id,
            "kind": assignment.kind,
        });
        let input = self.task_input(&task.id).await?;
        let inputs = match squad.distribution.mode {
            Mode::Split => super::task_split::item_inputs(&input, squad, assignment.item.unwrap_or(0)),
            _ => Map::clone(&input),
        };
        let mut payload = json!({"inputs": inputs, "parameters": {}});
        match squad.distribution.mode {
            Mode::Split => {
                let item = assignment.item.unwrap_or(0);
                context["item"] = json!(item);
            }
            Mode::LeadPlans => {
                let all = self.store.list_assignments(&task.id).await?;
                let by_id: HashMap<&str, &Assignment> = all.iter().map(|a| (a.id.as_str(), a)).collect();
                super::task_lead::lead_payload(&mut payload, assignment, &by_id);
            }
            Mode::Broadcast | Mode::Race
                if assignment.round > 1 || assignment.kind == AssignmentKind::Judge =>
            {
                let all = self.store.list_assignments(&task.id).await?;
                if assignment.kind == AssignmentKind::Judge {
                    let judged = assignment.item.and_then(|slot| {
                        all.iter().find(|a| {
                            a.kind == AssignmentKind::Answer
                                && a.round == assignment.round
                                && a.slot == slot
                                && a.status == AssignmentStatus::Succeeded
                        })
                    });
                    context["judging_slot"] = json!(assignment.item);
                    payload["answer"] = judged.and_then(|a| a.result.clone()).unwrap_or(Value::Null);
                } else {
                    let previous: Vec<Value> = all
                        .iter()
                        .filter(|a| {
                            a.kind == AssignmentKind::Answer
                                && a.round + 1 == assignment.round
                                && a.status == AssignmentStatus::Succeeded
                        })
                        .map(|a| json!({"slot": a.slot, "agent": a.agent, "answer": a.result}))
                        .collect();
                    payload["previous_round"] = Value::Array(previous);
                }
            }
            Mode::Broadcast | Mode::Race => {}
        }
        payload["context"] = context;
        Ok(payload)
    }

    pub(super) async fn finish_assignment(
        &self,
        task_id: &str,
        assignment: Assignment,
        status: AssignmentStatus,
        result: Option<Value>,
        error: Option<String>,
    ) -> Result<Assignment, EngineError> {
        let finished = Assignment {
            status,
            finished_at: Some(self.clock.now()),
            result,
            error,
            version: assignment.version + 1,
            ..assignment
        };
        self.store.update_assignment(task_id, &finished, &[]).await?;
        Ok(finished)
    }

    /// Does what the task's records call for, as often as a lost conditional write asks;
    /// `finished` is the assignment that just ended, if one did. Safe to repeat.
    pub async fn advance_task(
        &self,
        task_id: &str,
        finished: Option<&Assignment>,
    ) -> Result<(), EngineError> {
        for _ in 0..ADVANCE_TRIES {
            match self.advance_once(task_id, finished).await {
                Ok(Pass::Done) => return Ok(()),
                Ok(Pass::Again) | Err(EngineError::Store(StoreError::Conflict(_))) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(format!("task {task_id} kept changing")).into())
    }

    async fn advance_once(&self, task_id: &str, finished: Option<&Assignment>) -> Result<Pass, EngineError> {
        let Some(task) = self.store.get_task(task_id).await? else { return Ok(Pass::Done) };
        if task.status.is_terminal() {
            if let Some(reply) = finished {
                self.mark_late(&task, reply).await?;
            }
            return Ok(Pass::Done);
        }
        let squad = self.squad(&task.squad_id, Some(&task.squad_version)).await?;
        if squad.distribution.mode == Mode::Split {
            // Reads the assignments only at the end: a split may have thousands.
            return self.advance_split(&task, &squad, finished).await;
        }
        if let Some(pass) = self.count_vote(&task, &squad, finished).await? {
            // A broadcast's answer counted on the record, the round not settled.
            return Ok(pass);
        }
        let assignments = self.store.list_assignments(task_id).await?;
        let by_id: HashMap<&str, &Assignment> = assignments.iter().map(|a| (a.id.as_str(), a)).collect();
        match squad.distribution.mode {
            Mode::Broadcast | Mode::Race => self.advance_vote(&task, &squad, &by_id).await,
            Mode::LeadPlans => self.advance_lead(&task, &squad, &by_id).await,
            Mode::Split => Ok(Pass::Done),
        }
    }

    /// A broadcast or a race: every voting seat answers the task; validators judge the
    /// answers; the tally settles it, or the next round tries again.
    async fn advance_vote(
        &self,
        task: &SquadTask,
        squad: &Squad,
        by_id: &HashMap<&str, &Assignment>,
    ) -> Result<Pass, EngineError> {
        let round = task.round;
        let voters: Vec<&Seat> = task.seats.iter().filter(|s| s.role != Role::Validator).collect();
        let validators: Vec<&Seat> = task.seats.iter().filter(|s| s.role == Role::Validator).collect();

        // Each voter's answer of this round, if it has one (its id formatted once).
        let answers: Vec<Option<&Assignment>> =
            voters.iter().map(|seat| by_id.get(answer_id(round, seat).as_str()).copied()).collect();

        // A member that failed for good is replaced while replacements are left.
        for (seat, answer) in voters.iter().zip(&answers) {
            let failed = answer.filter(|a| a.status == AssignmentStatus::Failed);
            if let Some(failed) = failed
                && task.replacements.len() < squad.on_failure.replacements as usize
                && let Some(agent) = self.replacement_for(task, seat).await?
            {
                let reason = failed.error.clone().unwrap_or_else(|| "it failed".into());
                self.replace(task, seat, agent, reason).await?;
                return Ok(Pass::Again);
            }
        }

        let method = squad.method();
        let ballots: Vec<Ballot> = voters
            .iter()
            .zip(&answers)
            .map(|(seat, answer)| {
                let vote = match answer {
                    Some(a) if a.status == AssignmentStatus::Succeeded => Vote::Answered {
                        reply: a.result.clone().unwrap_or(Value::Null),
                        at: micros(a.finished_at),
                        judgement: (method == Method::Validator)
                            .then(|| judgement(round, seat, &validators, by_id))
                            .flatten(),
                    },
                    Some(a) if matches!(a.status, AssignmentStatus::Failed | AssignmentStatus::Cancelled) => {
                        Vote::Failed { reason: a.error.clone().unwrap_or_else(|| a.status.as_str().into()) }
                    }
                    _ => Vote::Pending,
                };
                Ballot { slot: seat.slot, role: seat.role, weight: seat.weight, vote }
            })
            .collect();
        match decide(&rule_of(squad), &ballots) {
            Verdict::Reached { result, tally } => {
                let mut ending = Ending {
                    status: TaskStatus::Succeeded,
                    result: Some(result),
                    tally: Some(tally),
                    error: None,
                };
                self.end_round(task, "reached", &mut ending).await?;
                return Ok(Pass::Done);
            }
            Verdict::Impossible { reason, tally, .. } => {
                if round < squad.collaboration.rounds {
                    let outcome = RoundOutcome { round, outcome: format!("impossible: {reason}"), tally };
                    let next = SquadTask {
                        round: round + 1,
                        rounds: [task.rounds.clone(), vec![outcome]].concat(),
                        votes: Vec::new(),
                        version: task.version + 1,
                        ..task.clone()
                    };
                    let data = json!({"round": round, "outcome": "impossible", "reason": reason, "next_round": round + 1});
                    let ended = self.task_event("squad.task.round_ended", &task.id, data);
                    self.store.update_task(&next, &[ended]).await?;
                    return Ok(Pass::Again);
                }
                let mut ending = Ending {
                    status: TaskStatus::Failed,
                    result: None,
                    tally: Some(tally),
                    error: Some(reason),
                };
                self.end_round(task, "impossible", &mut ending).await?;
                return Ok(Pass::Done);
            }
            Verdict::Pending { .. } => {}
        }

        // Queue what is missing, within the task's cap on calls in flight.
        let in_flight = by_id
            .values()
            .filter(|a| {
                a.round == round && matches!(a.status, AssignmentStatus::Queued | AssignmentStatus::Running)
            })
            .count();
        let mut room = (squad.limits.max_concurrency as usize).saturating_sub(in_flight);
        let now = self.clock.now();
        let mut wanted: Vec<Assignment> = Vec::new();
        for (seat, answer) in voters.iter().zip(&answers) {
            match answer {
                None => {
                    let id = answer_id(round, seat);
                    wanted.push(self.new_assignment(id, AssignmentKind::Answer, round, seat, None, now));
                }
                Some(answer)
                    if method == Method::Validator && answer.status == AssignmentStatus::Succeeded =>
                {
                    for validator in &validators {
                        let id = judge_id(round, seat, validator);
                        if !by_id.contains_key(id.as_str()) {
                            let judge = self.new_assignment(
                                id,
                                AssignmentKind::Judge,
                                round,
                                validator,
                                Some(seat.slot),
                                now,
                            );
                            wanted.push(judge);
                        }
                    }
                }
                _ => {}
            }
        }
        // When this pass hands out the rest of the round, the round is marked handed out,
        // with the votes of the answers it read: from then on the pass after an answer
        // counts it on the record alone. Marked first, so that the answers coming in
        // while it hands out do not all look for what is missing; a worker that dies
        // before making them all leaves them to the next full pass (its message's, come
        // back, or the watch's).
        if wanted.len() <= room
            && let Some(next) = super::task_votes::handed_out(task, squad, &voters, &answers)
        {
            self.store.update_task(&next, &[]).await?;
        }
        for assignment in wanted {
            if room == 0 {
                break;
            }
            self.make_assignment(&task.id, &assignment).await?;
            room -= 1;
        }
        self.resend_stale(&task.id, by_id).await?;
        Ok(Pass::Done)
    }

    /// A reply recorded after its task ended is kept but counts for nothing: says so on
    /// the assignment (left as it is if it changed since).
    async fn mark_late(&self, task: &SquadTask, reply: &Assignment) -> Result<(), EngineError> {
        let counted = match reply.kind {
            // A split's item counts if the task collected every item.
            AssignmentKind::Answer if reply.item.is_some() => task.status == TaskStatus::Succeeded,
            // A vote counts if the final tally has it.
            AssignmentKind::Answer => {
                let ballot = reply.slot;
                reply.round == task.round
                    && task.tally.as_ref().is_some_and(|t| {
                        t.failed.contains(&ballot) || t.answers.iter().any(|a| a.members.contains(&ballot))
                    })
            }
            _ => match (reply.finished_at, task.finished_at) {
                (Some(replied), Some(ended)) => replied < ended,
                _ => true,
            },
        };
        if reply.status != AssignmentStatus::Succeeded || reply.late || counted {
            return Ok(());
        }
        let late = Assignment { late: true, version: reply.version + 1, ..reply.clone() };
        match self.store.update_assignment(&task.id, &late, &[]).await {
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) fn new_assignment(
        &self,
        id: String,
        kind: AssignmentKind,
        round: u32,
        seat: &Seat,
        item: Option<u32>,
        now: Timestamp,
    ) -> Assignment {
        Assignment {
            id,
            kind,
            round,
            slot: seat.slot,
            item,
            agent: seat.agent.clone(),
            status: AssignmentStatus::Queued,
            attempts: 0,
            queued_at: now,
            started_at: None,
            finished_at: None,
            result: None,
            error: None,
            vote: None,
            late: false,
            version: 1,
        }
    }

    /// Creates an assignment and sends its message; only the caller whose create wins
    /// sends (a message lost between the two is sent again by the watch).
    pub(super) async fn make_assignment(
        &self,
        task_id: &str,
        assignment: &Assignment,
    ) -> Result<(), EngineError> {
        match self.store.create_assignment(task_id, assignment).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        self.send_assignment(task_id, &assignment.id).await
    }

    pub(super) async fn send_assignment(
        &self,
        task_id: &str,
        assignment_id: &str,
    ) -> Result<(), EngineError> {
        let task = Task::Assignment { task_id: task_id.to_owned(), assignment_id: assignment_id.to_owned() };
        self.send(&task, &format!("{task_id}/{assignment_id}")).await?;
        Ok(())
    }

    /// Sends again what has waited on the queue longer than [`WATCH_EVERY`] without
    /// starting: its message may have been lost between the record and the send.
    pub(super) async fn resend_stale(
        &self,
        task_id: &str,
        by_id: &HashMap<&str, &Assignment>,
    ) -> Result<(), EngineError> {
        let stale = self.clock.now() - SignedDuration::try_from(WATCH_EVERY).unwrap_or(SignedDuration::ZERO);
        for assignment in by_id.values() {
            if assignment.status == AssignmentStatus::Queued && assignment.queued_at < stale {
                self.send_assignment(task_id, &assignment.id).await?;
            }
        }
        Ok(())
    }

    /// An agent to take `seat` over: active, offering what the seat needs, not in the task
    /// now or before, and with its breaker closed (message routing's breaker: an agent
    /// failing its messages is no replacement). The first by id, so that every worker that
    /// looks picks the same one.
    pub(super) async fn replacement_for(
        &self,
        task: &SquadTask,
        seat: &Seat,
    ) -> Result<Option<String>, EngineError> {
        let agents = self.store.list_agents().await?;
        let excluded = |id: &str| {
            task.seats.iter().any(|s| s.agent == id) || task.replacements.iter().any(|r| r.replaced == id)
        };
        let mut candidates: Vec<&str> = agents
            .iter()
            .filter(|a| {
                a.status == AgentStatus::Active
                    && !seat.capabilities.is_empty()
                    && seat.capabilities.iter().all(|c| a.capabilities.contains(c))
                    && !excluded(&a.id)
            })
            .map(|a| a.id.as_str())
            .collect();
        candidates.sort_unstable();
        for id in candidates {
            if !self.store.get_breaker(id).await?.is_some_and(|breaker| breaker.is_open()) {
                return Ok(Some(id.to_owned()));
            }
        }
        Ok(None)
    }

    pub(super) async fn replace(
        &self,
        task: &SquadTask,
        seat: &Seat,
        agent: String,
        reason: String,
    ) -> Result<(), EngineError> {
        let next =
            SquadTask { version: task.version + 1, ..replaced(task, seat, agent, reason, self.clock.now()) };
        self.store.update_task(&next, self.replaced_event(&next).as_slice()).await?;
        Ok(())
    }

    /// Says in the log who replaced whom (the task's last replacement): the event that
    /// tells it, to write with the replacement.
    pub(super) fn replaced_event(&self, task: &SquadTask) -> Option<Event> {
        let last = task.replacements.last()?;
        tracing::warn!(task_id = %task.id, slot = last.slot, replaced = %last.replaced, by = %last.by, "a member was replaced");
        let data =
            json!({"slot": last.slot, "replaced": last.replaced, "by": last.by, "reason": last.reason});
        Some(self.task_event("squad.task.member_replaced", &task.id, data))
    }

    /// Ends the task with the round's outcome recorded.
    pub(super) async fn end_round(
        &self,
        task: &SquadTask,
        outcome: &str,
        ending: &mut Ending,
    ) -> Result<(), EngineError> {
        let mut task = task.clone();
        if let Some(tally) = &ending.tally {
            task.rounds.push(RoundOutcome {
                round: task.round,
                outcome: outcome.to_owned(),
                tally: tally.clone(),
            });
        }
        let ending = std::mem::replace(ending, Ending::failure(TaskStatus::Failed, ""));
        self.end_task(&task, ending).await.map(|_| ())
    }

    /// Ends a running task (a conditional write), then cancels its assignments not yet
    /// started: calls under way finish and are recorded, counting for nothing.
    pub(super) async fn end_task(&self, task: &SquadTask, ending: Ending) -> Result<SquadTask, EngineError> {
        let ending = within_bounds(ending);
        let ended = SquadTask {
            status: ending.status,
            result: ending.result,
            tally: ending.tally,
            error: ending.error,
            finished_at: Some(self.clock.now()),
            version: task.version + 1,
            ..task.clone()
        };
        let data = json!({
            "squad_id": ended.squad_id, "status": ended.status, "error": ended.error,
            "rounds": ended.rounds.len(), "replacements": ended.replacements.len(),
            "winner": ended.tally.as_ref().and_then(|t| t.winner.and_then(|w| t.answers.get(w))).map(|w| json!({"votes": w.votes, "members": w.members})),
        });
        let told = self.task_event(&format!("squad.task.{}", ended.status.as_str()), &task.id, data);
        self.store.update_task(&ended, &[told]).await?;
        tracing::info!(task_id = %task.id, status = ended.status.as_str(), "squad task ended");
        let assignments = self.store.list_assignments(&task.id).await?;
        if let Some(metrics) = &self.metrics {
            metrics.record(&[("Squad", &ended.squad_id)], &figures(&ended, &assignments));
        }
        for assignment in assignments {
            if assignment.status == AssignmentStatus::Queued {
                let why = Some("not started: the task ended".to_owned());
                match self
                    .finish_assignment(&task.id, assignment, AssignmentStatus::Cancelled, None, why)
                    .await
                {
                    Ok(_) | Err(EngineError::Store(StoreError::Conflict(_))) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.notify_parent(&ended).await?;
        Ok(ended)
    }
}

/// A result too large for the task's record fails the task instead, saying where the
/// answers are: the record must fit one DynamoDB item (400 KB) with the rest of the task.
fn within_bounds(ending: Ending) -> Ending {
    let size = ending.result.as_ref().map_or(0, |result| result.to_string().len());
    if size <= MAX_TASK_RESULT_BYTES {
        return ending;
    }
    let why = format!(
        "the result is {size} bytes as JSON; a task's result may be at most {MAX_TASK_RESULT_BYTES}: \
         each answer is on its assignment (GET /v1/squad-tasks/{{id}})"
    );
    Ending { status: TaskStatus::Failed, result: None, error: Some(why), ..ending }
}

/// The largest result a task keeps, as compact JSON (see [`within_bounds`]).
pub const MAX_TASK_RESULT_BYTES: usize = 256 * 1024;

/// What the validators said of one answer, once all of them have: accepted when every
/// validator accepted it, scored by their mean score. A validator that failed accepts
/// nothing.
fn judgement(
    round: u32,
    seat: &Seat,
    validators: &[&Seat],
    by_id: &HashMap<&str, &Assignment>,
) -> Option<Judgement> {
    let mut accepted = true;
    let mut total = 0.0;
    for validator in validators {
        let judge = by_id.get(judge_id(round, seat, validator).as_str())?;
        match judge.status {
            AssignmentStatus::Succeeded => {
                let reply = judge.result.as_ref();
                let yes = reply.and_then(|r| r.get("accepted")).and_then(Value::as_bool).unwrap_or(false);
                accepted &= yes;
                total += reply.and_then(|r| r.get("score")).and_then(Value::as_f64).unwrap_or(if yes {
                    1.0
                } else {
                    0.0
                });
            }
            AssignmentStatus::Failed | AssignmentStatus::Cancelled => accepted = false,
            _ => return None,
        }
    }
    let score = if validators.is_empty() { 0.0 } else { total / validators.len() as f64 };
    Some(Judgement { accepted, score })
}

/// A validator's reply must say whether it accepts the answer.
fn check_reply(kind: AssignmentKind, reply: Map<String, Value>) -> Result<Map<String, Value>, InvokeError> {
    if kind == AssignmentKind::Plan {
        super::task_lead::check_plan(&reply)?;
    }
    if kind == AssignmentKind::Judge && !reply.get("accepted").is_some_and(Value::is_boolean) {
        return Err(InvokeError::Rejected(
            "a validator's reply needs `accepted`: true or false (and may give a `score`)".into(),
        ));
    }
    Ok(reply)
}

/// A finished task's figures: how long it took, what share of its calls failed for good,
/// how many members were replaced, and what share of the counted votes the winner had.
fn figures(task: &SquadTask, assignments: &[Assignment]) -> Vec<crate::ports::Measurement> {
    use crate::ports::Measurement;
    let millis =
        task.finished_at.map_or(0.0, |end| end.duration_since(task.created_at).as_secs_f64() * 1_000.0);
    let ended = assignments
        .iter()
        .filter(|a| matches!(a.status, AssignmentStatus::Succeeded | AssignmentStatus::Failed));
    let (calls, failed) = ended.fold((0u32, 0u32), |(calls, failed), a| {
        (calls + 1, failed + u32::from(a.status == AssignmentStatus::Failed))
    });
    let mut figures = vec![
        Measurement { name: "SquadTasks", value: 1.0, unit: "Count" },
        Measurement { name: "SquadTaskLatency", value: millis, unit: "Milliseconds" },
        Measurement { name: "SquadReplacements", value: task.replacements.len() as f64, unit: "Count" },
    ];
    if calls > 0 {
        let rate = f64::from(failed) * 100.0 / f64::from(calls);
        figures.push(Measurement { name: "SquadMemberFailureRate", value: rate, unit: "Percent" });
    }
    if let Some(tally) = &task.tally
        && let Some(winner) = tally.winner.and_then(|w| tally.answers.get(w))
    {
        let counted: u64 = tally.answers.iter().map(|a| a.votes).sum();
        if counted > 0 {
            let agreement = winner.votes as f64 * 100.0 / counted as f64;
            figures.push(Measurement { name: "SquadAgreementRate", value: agreement, unit: "Percent" });
        }
    }
    figures
}
