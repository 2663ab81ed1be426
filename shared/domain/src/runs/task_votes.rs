//! A broadcast's votes on its task's record: the pass after an answer reads one record,
//! not every assignment of the task.
//!
//! Each answer of the round, once ended, adds its vote to the task's record (a conditional
//! write): its seat and the generation of the agent that gave it, a digest of the compared
//! value, when it arrived. The tally is then taken over the votes, digests standing for
//! the values (equal values have equal digests), which tells whether the round is settled.
//! Only when it is — or when a member failed (a replacement may be due), or a seat may
//! still lack its answer — does the pass read every assignment and take the tally over
//! the replies themselves (`advance_vote`), so the result and the tally a task ends with
//! are the same as without the votes.
//!
//! The votes only ever hold answers that ended, so a tally over them is settled only if
//! the full one is; one that lags (a worker died between recording an answer and counting
//! it) catches up when that answer's message comes back, as every message of an ended
//! answer counts it before it is acknowledged.

use std::collections::HashMap;

use serde_json::Value;

use super::ports::EngineStore;
use super::service::{Engine, EngineError};
use super::task_records::{Assignment, AssignmentKind, AssignmentStatus, Seat, SeatVote, SquadTask};
use super::task_state::{Pass, answer_id, micros, rule_of};
use crate::agents::AgentInvoker;
use crate::ports::MessageQueue;
use crate::squads::{Ballot, Method, Mode, Role, Rule, Squad, Verdict, Vote, canonical, decide};

/// Whether a squad's tasks count their votes on the record: a broadcast judged by its
/// members' answers alone (a validator's judgements are on their own assignments).
pub(super) fn counts_votes(squad: &Squad) -> bool {
    squad.distribution.mode == Mode::Broadcast && squad.method() != Method::Validator
}

/// The digest a vote holds of a compared value: 128 bits of SHA-256 over its canonical
/// JSON.
fn digest(value: &Value) -> String {
    let bytes = <sha2::Sha256 as sha2::Digest>::digest(canonical(value).as_bytes());
    hex::encode(&bytes[..16])
}

/// A seat's vote for its answer `answer` once ended.
fn vote_of(seat: &Seat, answer: &Assignment) -> Option<SeatVote> {
    if !answer.status.is_terminal() {
        return None;
    }
    let key = match answer.status {
        AssignmentStatus::Succeeded => answer.vote.as_ref().map(digest),
        _ => None,
    };
    Some(SeatVote { slot: seat.slot, generation: seat.generation, key, at: micros(answer.finished_at) })
}

/// The record marked with its round handed out, its votes those of `answers` (each
/// voter's answer of this round, if any): `None` if it is marked already. From then on,
/// each answer's own pass counts its vote (before its message is acknowledged), so the
/// record is never written again for this.
pub(super) fn handed_out(
    task: &SquadTask,
    squad: &Squad,
    voters: &[&Seat],
    answers: &[Option<&Assignment>],
) -> Option<SquadTask> {
    if !counts_votes(squad) || task.round_handed_out == task.round {
        return None;
    }
    let votes: Vec<SeatVote> = voters
        .iter()
        .zip(answers)
        .filter_map(|(seat, answer)| answer.and_then(|a| vote_of(seat, a)))
        .collect();
    Some(SquadTask { votes, round_handed_out: task.round, version: task.version + 1, ..task.clone() })
}

/// The tally over the votes of `seats`: settled (reached or impossible) or not.
fn settled(seats: &[Seat], votes: &[SeatVote], rule: &Rule) -> bool {
    let votes: HashMap<u32, &SeatVote> = votes.iter().map(|v| (v.slot, v)).collect();
    let ballots: Vec<Ballot> = seats
        .iter()
        .filter(|seat| seat.role != Role::Validator)
        .map(|seat| {
            let vote = match votes.get(&seat.slot) {
                Some(v) if v.generation == seat.generation => match &v.key {
                    Some(key) => {
                        Vote::Answered { reply: Value::String(key.clone()), at: v.at, judgement: None }
                    }
                    None => Vote::Failed { reason: String::new() },
                },
                _ => Vote::Pending,
            };
            Ballot { slot: seat.slot, role: seat.role, weight: seat.weight, vote }
        })
        .collect();
    let rule = Rule { compare: String::new(), ..rule.clone() };
    !matches!(decide(&rule, &ballots), Verdict::Pending { .. })
}

impl<S: EngineStore, Q: MessageQueue, I: AgentInvoker> Engine<S, Q, I> {
    /// The pass after answer `finished` ended, from the task's record alone: its vote joins
    /// the record. `None`: the full pass must look — the vote is a failure, the votes
    /// settle the round, the round's answers may not all be handed out, or `finished` is
    /// not a vote of this round's seats.
    pub(super) async fn count_vote(
        &self,
        task: &SquadTask,
        squad: &Squad,
        finished: Option<&Assignment>,
    ) -> Result<Option<Pass>, EngineError> {
        let Some(ended) = finished else { return Ok(None) };
        if !counts_votes(squad)
            || task.round_handed_out != task.round
            || ended.kind != AssignmentKind::Answer
            || ended.round != task.round
            || !ended.status.is_terminal()
        {
            return Ok(None);
        }
        let Some(seat) = task.seats.iter().find(|s| s.slot == ended.slot) else { return Ok(None) };
        if seat.role == Role::Validator || ended.id != answer_id(task.round, seat) {
            return Ok(None);
        }
        let counted = task.votes.iter().find(|v| v.slot == seat.slot);
        let (task, wrote) = match counted {
            Some(vote) if vote.generation == seat.generation => (task.clone(), false),
            _ => {
                let Some(vote) = vote_of(seat, ended) else { return Ok(None) };
                let mut next = task.clone();
                next.votes.retain(|v| v.slot != seat.slot);
                next.votes.push(vote);
                next.version += 1;
                self.store.update_task(&next, &[]).await?;
                (next, true)
            }
        };
        let failed = task.votes.iter().any(|v| v.slot == seat.slot && v.key.is_none());
        if failed || settled(&task.seats, &task.votes, &rule_of(squad)) {
            // The full pass reads the record again: it must see the vote just written.
            return Ok(wrote.then_some(Pass::Again));
        }
        Ok(Some(Pass::Done))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::squads::TieBreak;

    fn method() -> impl Strategy<Value = Method> {
        prop_oneof![
            Just(Method::Majority),
            Just(Method::Weighted),
            Just(Method::Unanimous),
            Just(Method::Quorum),
            Just(Method::FirstSuccess),
            Just(Method::Lead),
        ]
    }

    proptest! {
        /// The tally over the votes' digests settles exactly when the tally over the
        /// replies does: equal compared values have equal digests, and other fields of a
        /// reply do not count.
        #[test]
        fn the_votes_settle_as_the_replies_do(
            method in method(),
            quorum in 1u32..4,
            tolerated in 0u32..2,
            fail_on_tie in any::<bool>(),
            // Per seat: weight, and 0 pending, 1 failed, 2.. an answer (of three values).
            seats in proptest::collection::vec((1u32..5, 0u8..5, any::<bool>()), 1..9),
        ) {
            let rule = Rule {
                method,
                quorum,
                compare: "/answer".into(),
                tie_break: if fail_on_tie { TieBreak::Fail } else { TieBreak::FirstListed },
                tolerated_failures: tolerated,
            };
            let mut ballots = Vec::new();
            let mut table = Vec::new();
            let mut votes = Vec::new();
            for (slot, (weight, state, lead)) in seats.iter().enumerate() {
                let slot = slot as u32;
                let role = if *lead && slot == 0 { Role::Lead } else { Role::Worker };
                table.push(Seat { slot, agent: format!("a{slot}"), role, weight: *weight, capabilities: vec![], generation: 0 });
                let at = 1_000 + u64::from(slot) * 7 % 5;
                let vote = match state {
                    0 => Vote::Pending,
                    1 => {
                        votes.push(SeatVote { slot, generation: 0, key: None, at });
                        Vote::Failed { reason: "it failed".into() }
                    }
                    n => {
                        let answer = json!({"x": n % 3, "y": [n % 3]});
                        votes.push(SeatVote { slot, generation: 0, key: Some(digest(&answer)), at });
                        Vote::Answered { reply: json!({"answer": answer, "detail": slot}), at, judgement: None }
                    }
                };
                ballots.push(Ballot { slot, role, weight: *weight, vote });
            }
            let full = !matches!(decide(&rule, &ballots), Verdict::Pending { .. });
            prop_assert_eq!(settled(&table, &votes, &rule), full);
        }
    }

    #[test]
    fn a_vote_of_a_replaced_agent_counts_as_pending() {
        let seat = Seat {
            slot: 0,
            agent: "b".into(),
            role: Role::Worker,
            weight: 1,
            capabilities: vec![],
            generation: 1,
        };
        let stale = SeatVote { slot: 0, generation: 0, key: None, at: 1 };
        assert!(!settled(std::slice::from_ref(&seat), &[stale], &Rule::new(Method::Majority)));
        let fresh = SeatVote { slot: 0, generation: 1, key: Some(digest(&json!(1))), at: 2 };
        assert!(settled(&[seat], &[fresh], &Rule::new(Method::Majority)));
    }
}
