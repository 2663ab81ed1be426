//! How the answers of a squad's members become one result: [`decide`] a [`Rule`] over the
//! members' [`Ballot`]s. Pure: no I/O, no clock.
//!
//! # Counting
//!
//! Each member casts one ballot: [`Vote::Pending`] (not answered yet), [`Vote::Answered`] or
//! [`Vote::Failed`] (failed for good). Answers are compared on the value at the rule's
//! `compare` pointer (RFC 6901; `""` is the whole reply), written as [`canonical`] JSON
//! (object keys sorted at every depth), so `{"a":1,"b":2}` and `{"b":2,"a":1}` agree, and
//! with `compare: "/answer"` two replies agree when their `answer` fields do, whatever
//! else they say. Numbers are compared as written: `1` and `1.0` differ. A reply with no
//! value at the pointer counts as a failed ballot ("the reply has no value at /answer").
//!
//! **Failures.** Up to `tolerated_failures` failed ballots are simply not counted; one more
//! and the verdict is [`Verdict::Impossible`], whatever the method.
//!
//! **The result** is, for every method that picks an answer, the whole reply (not just the
//! compared value) of the winning answer's *first* member to answer (smallest `at`, then
//! lowest slot). The first to answer, rather than the lowest slot, so that an early result
//! never changes when later answers join the winning group.
//!
//! # Methods
//!
//! - **majority** (a plurality, one vote per member): the answer with the most votes wins.
//!   With ballots pending it is reached as soon as no outcome of them can change the winner:
//!   the leader has more votes than the runner-up and all pending ballots together, or
//!   exactly as many and the tie-break would pick it anyway. When every ballot is in and
//!   the top is tied, `tie_break: first_listed` picks the tied answer holding the lowest
//!   slot (the tally's `tie` says so) and `fail` makes the verdict impossible. No answer and
//!   nothing pending: impossible ("no member answered").
//! - **weighted**: as majority, each member counting its weight instead of 1.
//! - **unanimous**: reached when every counted member answered, all the same (at least one
//!   answer). Impossible as soon as two different answers exist, even with ballots pending:
//!   the dissenters are the members outside the largest group (on a tie, the group holding
//!   the lowest slot).
//! - **quorum** (k = `quorum`, at least 1): reached when an answer has k members; if several
//!   have, the one whose k-th member answered first wins (so the result never changes as
//!   more answers arrive). Impossible when no answer, existing or new, can reach k any more.
//! - **first_success**: the first answer to arrive (smallest `at`, then lowest slot) wins at
//!   once, even with others pending. Impossible when every member failed.
//! - **validator**: the members with role `validator` are not counted (the engine turns
//!   their replies into [`Judgement`]s of the others' answers). Reached when every other
//!   member answered and every answer is judged: the accepted answer with the highest score
//!   wins; on equal scores between different answers, `first_listed` picks the lowest slot
//!   and `fail` makes it impossible. Impossible when none was accepted. The result is the
//!   reply of the winning member itself.
//! - **lead**: the result is the reply of the member with role `lead` (the lowest slot if
//!   several). Pending until it answers; impossible if it failed or there is none.
//! - **collect**: each ballot is an item (slot = the item's index). Reached when none is
//!   pending: the compared values in slot order, a tolerated failed item as `null`.
//!
//! A verdict that is reached or impossible is final: the engine stops asking. Reached means
//! no outcome of the pending ballots (answers arriving later than those in, failures within
//! the tolerance) gives another result; impossible means none can reach one.
//!
//! `decide` is O(n log n) in the number of ballots, plus reading each compared value once.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How the answers of a squad's members become one result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = AggregationMethod)]
pub enum Method {
    Majority,
    Weighted,
    Unanimous,
    Quorum,
    FirstSuccess,
    Validator,
    Lead,
    Collect,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Majority => "majority",
            Method::Weighted => "weighted",
            Method::Unanimous => "unanimous",
            Method::Quorum => "quorum",
            Method::FirstSuccess => "first_success",
            Method::Validator => "validator",
            Method::Lead => "lead",
            Method::Collect => "collect",
        }
    }
}

/// What a tie at the top does when every ballot is in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TieBreak {
    /// The tied answer holding the lowest slot wins.
    #[default]
    FirstListed,
    /// The verdict is impossible.
    Fail,
}

/// How a squad aggregates: the method and its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rule {
    pub method: Method,
    /// k for `quorum` (k of n members answering the same), at least 1; ignored otherwise.
    #[serde(default)]
    pub quorum: u32,
    /// RFC 6901 JSON pointer into each reply; `""` = the whole reply. Answers are compared
    /// on the canonical JSON of the value it points at.
    #[serde(default)]
    pub compare: String,
    #[serde(default)]
    pub tie_break: TieBreak,
    /// Failed ballots up to this many are left out of the count; one more makes the
    /// verdict impossible.
    #[serde(default)]
    pub tolerated_failures: u32,
}

impl Rule {
    /// `method` with the defaults: quorum 0 (set it for `quorum`), the whole reply
    /// compared, ties to the first listed, no failure tolerated.
    pub fn new(method: Method) -> Self {
        Rule {
            method,
            quorum: 0,
            compare: String::new(),
            tie_break: TieBreak::FirstListed,
            tolerated_failures: 0,
        }
    }

    /// Whether the rule can be applied: a pointer that is `""` or starts with `/` (every
    /// `~` followed by `0` or `1`), and a quorum of at least 1 for `quorum`.
    pub fn check(&self) -> Result<(), String> {
        if !valid_pointer(&self.compare) {
            return Err(format!(
                "compare `{}` is not a JSON pointer (\"\" or starting with \"/\")",
                self.compare
            ));
        }
        if self.method == Method::Quorum && self.quorum == 0 {
            return Err("a quorum rule needs a quorum of at least 1".to_string());
        }
        Ok(())
    }
}

/// A member's part in the squad. Default `worker`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = MemberRole)]
pub enum Role {
    Lead,
    #[default]
    Worker,
    Validator,
}

/// One member's (or, for `collect`, one item's) ballot.
#[derive(Debug, Clone, PartialEq)]
pub struct Ballot {
    /// The member's position in the squad's member list (for `collect`: the item's index).
    /// Lower = listed first. Unique within a squad.
    pub slot: u32,
    pub role: Role,
    /// 1..=1000; only `weighted` reads it (every other method counts 1 per member).
    pub weight: u32,
    pub vote: Vote,
}

/// Where a member's answer stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Vote {
    /// Not answered yet (still running, queued, or about to be replaced).
    Pending,
    /// `at` orders answers by when they arrived (smaller = earlier; equal → lower slot
    /// first); an answer arriving later has a larger `at`. `judgement`: for `validator`,
    /// what the validator agent(s) said of this answer (None = not judged yet).
    Answered { reply: Value, at: u64, judgement: Option<Judgement> },
    /// Failed for good (after retries, and no replacement left).
    Failed { reason: String },
}

/// What the validator said of one answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement {
    pub accepted: bool,
    /// Any finite number; higher is better.
    pub score: f64,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The result is settled: no outcome of the pending ballots can change it.
    Reached { result: Value, tally: Tally },
    /// Not settled yet.
    Pending { tally: Tally },
    /// Can no longer be reached, whatever the pending ballots do. `reason` is a sentence for
    /// a human; `dissenters` the slots that broke it (empty when that does not apply).
    Impossible { reason: String, dissenters: Vec<u32>, tally: Tally },
}

impl Verdict {
    pub fn tally(&self) -> &Tally {
        match self {
            Verdict::Reached { tally, .. }
            | Verdict::Pending { tally }
            | Verdict::Impossible { tally, .. } => tally,
        }
    }
}

/// What produced a verdict, stored on the task record and returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tally {
    pub method: Method,
    /// Each distinct answer (by the compared value): most votes first, then by the lowest
    /// slot in it. None for `collect`, whose result is every answer in order.
    pub answers: Vec<TallyEntry>,
    /// The failed slots, ascending (a reply without the compared value included).
    pub failed: Vec<u32>,
    /// The pending slots, ascending.
    pub pending: Vec<u32>,
    /// The index into `answers` of the winner, when reached by a method that picks one.
    pub winner: Option<usize>,
    /// How a tie was broken, if one was.
    pub tie: Option<String>,
}

/// One distinct answer in a [`Tally`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TallyEntry {
    /// The compared value.
    pub value: Value,
    /// The sum of weights for `weighted`, the number of members otherwise.
    pub votes: u64,
    /// The slots that gave it, ascending.
    pub members: Vec<u32>,
}

/// `value` as compact JSON with object keys sorted (by code point) at every depth.
///
/// Recurses as deep as `value` nests; callers bound the depth of replies before this.
pub fn canonical(value: &Value) -> String {
    fn write(out: &mut String, value: &Value) {
        match value {
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(out, item);
                }
                out.push(']');
            }
            Value::Object(map) => {
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                members.sort_unstable_by(|a, b| a.0.cmp(b.0));
                out.push('{');
                for (i, (key, item)) in members.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    write(out, item);
                }
                out.push('}');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(&mut out, value);
    out
}

/// The value at `pointer` (RFC 6901) in `reply`; None when there is none or the pointer is
/// malformed.
pub fn compared<'a>(reply: &'a Value, pointer: &str) -> Option<&'a Value> {
    if valid_pointer(pointer) { reply.pointer(pointer) } else { None }
}

fn valid_pointer(pointer: &str) -> bool {
    (pointer.is_empty() || pointer.starts_with('/'))
        && pointer.match_indices('~').all(|(i, _)| matches!(pointer.as_bytes().get(i + 1), Some(b'0' | b'1')))
}

/// The verdict of `rule` over `ballots` (in any order). See the module docs.
pub fn decide(rule: &Rule, ballots: &[Ballot]) -> Verdict {
    let mut sorted: Vec<&Ballot> = ballots.iter().collect();
    sorted.sort_unstable_by_key(|b| b.slot);
    if let Some(reason) = malformed(rule, &sorted) {
        return impossible(reason, Counted::default().tally(rule.method));
    }
    if rule.method == Method::Validator {
        sorted.retain(|b| b.role != Role::Validator);
    }
    let c = count(rule, &sorted);
    let tally = c.tally(rule.method);
    if c.failed.len() > rule.tolerated_failures as usize {
        let failed: Vec<u32> = c.failed.iter().map(|f| f.0).collect();
        let reason = format!("{} failed; the squad tolerates {}", members(&failed), rule.tolerated_failures);
        return impossible(reason, tally);
    }
    match rule.method {
        Method::Majority | Method::Weighted => plurality(rule, &c, tally),
        Method::Unanimous => unanimous(&c, tally),
        Method::Quorum => quorum(rule.quorum, &c, tally),
        Method::FirstSuccess => match c.answers.iter().min_by_key(|a| (a.at, a.slot)) {
            Some(first) => reached(&c, first.group, tally),
            None if c.pending.is_empty() => impossible("no member succeeded", tally),
            None => Verdict::Pending { tally },
        },
        Method::Validator => validator(rule.tie_break, &c, tally),
        Method::Lead => lead(&sorted, &c, tally),
        Method::Collect if c.pending.is_empty() => {
            let items = c.items.iter().map(|v| v.cloned().unwrap_or(Value::Null)).collect();
            Verdict::Reached { result: Value::Array(items), tally }
        }
        Method::Collect => Verdict::Pending { tally },
    }
}

/// Why `rule` cannot count `ballots` (sorted by slot), if it cannot.
fn malformed(rule: &Rule, ballots: &[&Ballot]) -> Option<String> {
    if let Err(reason) = rule.check() {
        return Some(format!("the rule is invalid: {reason}"));
    }
    if let Some([a, _]) = ballots.windows(2).find(|w| w[0].slot == w[1].slot) {
        return Some(format!("slot {} is given to two ballots", a.slot));
    }
    ballots.iter().find_map(|b| match &b.vote {
        _ if rule.method == Method::Weighted && !(1..=1000).contains(&b.weight) => {
            Some(format!("member {} has weight {}; a weight is 1 to 1000", b.slot, b.weight))
        }
        Vote::Answered { judgement: Some(j), .. }
            if rule.method == Method::Validator && !j.score.is_finite() =>
        {
            Some(format!("the score of member {}'s answer is not a finite number", b.slot))
        }
        _ => None,
    })
}

/// An answered ballot (its reply has the compared value), with the index of its group.
struct Answer<'a> {
    slot: u32,
    reply: &'a Value,
    at: u64,
    judgement: Option<Judgement>,
    group: usize,
}

/// One distinct answer.
struct Group<'a> {
    value: &'a Value,
    votes: u64,
    members: Vec<u32>,
    /// Its members' indices in `answers`.
    answers: Vec<usize>,
}

impl Group<'_> {
    fn lowest(&self) -> u32 {
        self.members.first().copied().unwrap_or(u32::MAX)
    }
}

#[derive(Default)]
struct Counted<'a> {
    /// In slot order.
    answers: Vec<Answer<'a>>,
    /// In tally order: most votes, then lowest slot.
    groups: Vec<Group<'a>>,
    /// (slot, reason), in slot order.
    failed: Vec<(u32, String)>,
    pending: Vec<u32>,
    pending_votes: u64,
    /// Each ballot's compared value, in slot order (None when not answered).
    items: Vec<Option<&'a Value>>,
}

/// Groups the answers of `ballots` (sorted by slot) by canonical compared value.
fn count<'a>(rule: &Rule, ballots: &[&'a Ballot]) -> Counted<'a> {
    let mut c = Counted::default();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<Group<'a>> = Vec::new();
    for b in ballots {
        let votes = if rule.method == Method::Weighted { u64::from(b.weight) } else { 1 };
        let mut value = None;
        match &b.vote {
            Vote::Pending => {
                c.pending.push(b.slot);
                c.pending_votes += votes;
            }
            Vote::Failed { reason } => c.failed.push((b.slot, reason.clone())),
            Vote::Answered { reply, at, judgement } => match compared(reply, &rule.compare) {
                None => c.failed.push((b.slot, format!("the reply has no value at {}", rule.compare))),
                Some(v) => {
                    value = Some(v);
                    let new = groups.len();
                    let g = *index.entry(canonical(v)).or_insert(new);
                    if g == new {
                        groups.push(Group { value: v, votes: 0, members: vec![], answers: vec![] });
                    }
                    let group = &mut groups[g];
                    group.votes += votes;
                    group.members.push(b.slot);
                    group.answers.push(c.answers.len());
                    c.answers.push(Answer { slot: b.slot, reply, at: *at, judgement: *judgement, group: g });
                }
            },
        }
        c.items.push(value);
    }
    groups.sort_unstable_by_key(|g| (std::cmp::Reverse(g.votes), g.lowest()));
    for (g, group) in groups.iter().enumerate() {
        for &i in &group.answers {
            c.answers[i].group = g;
        }
    }
    c.groups = groups;
    c
}

impl Counted<'_> {
    fn tally(&self, method: Method) -> Tally {
        // `collect` does not vote: its result is every answer in order, and grouping them
        // would repeat each one in the tally.
        let groups = if method == Method::Collect { &[][..] } else { &self.groups[..] };
        Tally {
            method,
            answers: groups
                .iter()
                .map(|g| TallyEntry { value: g.value.clone(), votes: g.votes, members: g.members.clone() })
                .collect(),
            failed: self.failed.iter().map(|f| f.0).collect(),
            pending: self.pending.clone(),
            winner: None,
            tie: None,
        }
    }
}

fn impossible(reason: impl Into<String>, tally: Tally) -> Verdict {
    Verdict::Impossible { reason: reason.into(), dissenters: vec![], tally }
}

/// Group `g` wins, with the reply of its first member to answer.
fn reached(c: &Counted, g: usize, mut tally: Tally) -> Verdict {
    let answers = c.groups.get(g).map_or(&[][..], |group| &group.answers[..]);
    let first = answers.iter().filter_map(|&i| c.answers.get(i)).min_by_key(|a| (a.at, a.slot));
    let result = first.map_or(Value::Null, |a| a.reply.clone());
    tally.winner = Some(g);
    Verdict::Reached { result, tally }
}

/// "member 3", "members 3 and 4", "members 1, 2 and 4".
fn members(slots: &[u32]) -> String {
    match slots {
        [one] => format!("member {one}"),
        [rest @ .., last] => {
            let rest: Vec<String> = rest.iter().map(u32::to_string).collect();
            format!("members {} and {last}", rest.join(", "))
        }
        [] => "no member".to_string(),
    }
}

/// "1 vote", "3 votes" (for `weighted`, a vote is a unit of weight).
fn votes(n: u64) -> String {
    if n == 1 { "1 vote".to_string() } else { format!("{n} votes") }
}

fn plurality(rule: &Rule, c: &Counted, mut tally: Tally) -> Verdict {
    let Some(leader) = c.groups.first() else {
        return if c.pending.is_empty() {
            impossible("no member answered", tally)
        } else {
            Verdict::Pending { tally }
        };
    };
    if c.pending.is_empty() {
        let tied = c.groups.iter().take_while(|g| g.votes == leader.votes).count();
        if tied > 1 {
            let what = format!("tie between {tied} answers with {} each", votes(leader.votes));
            if rule.tie_break == TieBreak::Fail {
                return impossible(format!("{what}, and the rule fails on a tie"), tally);
            }
            tally.tie = Some(format!("{what}: the answer of member {}, listed first, wins", leader.lowest()));
        }
        return reached(c, 0, tally);
    }
    // What the strongest other answer (or a new one) could reach with every pending vote.
    let contender = c.groups.get(1).map_or(0, |g| g.votes) + c.pending_votes;
    // On such a tie the leader would still win if it holds a lower slot than any rival could.
    let rival_lowest =
        c.groups.get(1).map_or(u32::MAX, Group::lowest).min(c.pending.first().copied().unwrap_or(u32::MAX));
    let wins_tie = rule.tie_break == TieBreak::FirstListed && leader.lowest() < rival_lowest;
    if leader.votes > contender || (leader.votes == contender && wins_tie) {
        reached(c, 0, tally)
    } else {
        Verdict::Pending { tally }
    }
}

fn unanimous(c: &Counted, tally: Tally) -> Verdict {
    if c.groups.len() > 1 {
        let mut dissenters: Vec<u32> = c.groups[1..].iter().flat_map(|g| g.members.iter().copied()).collect();
        dissenters.sort_unstable();
        let reason = format!("unanimity broken: {} answered otherwise", members(&dissenters));
        return Verdict::Impossible { reason, dissenters, tally };
    }
    match (c.groups.is_empty(), c.pending.is_empty()) {
        (_, false) => Verdict::Pending { tally },
        (true, true) => impossible("no member answered", tally),
        (false, true) => reached(c, 0, tally),
    }
}

fn quorum(k: u32, c: &Counted, tally: Tally) -> Verdict {
    let k = k as usize;
    let mut arrivals: Vec<Vec<(u64, u32)>> = c
        .groups
        .iter()
        .map(|g| g.answers.iter().map(|&i| (c.answers[i].at, c.answers[i].slot)).collect())
        .collect();
    // The answer whose k-th member answered first.
    let first = arrivals
        .iter_mut()
        .enumerate()
        .filter(|(_, times)| times.len() >= k)
        .map(|(g, times)| (*times.select_nth_unstable(k - 1).1, g))
        .min();
    if let Some((_, g)) = first {
        return reached(c, g, tally);
    }
    let most = c.groups.first().map_or(0, |g| g.members.len());
    if most + c.pending.len() < k {
        let reason = format!(
            "no answer can reach the quorum of {k}: the most members agreeing are {most}, with {} pending",
            c.pending.len()
        );
        return impossible(reason, tally);
    }
    Verdict::Pending { tally }
}

fn validator(tie_break: TieBreak, c: &Counted, mut tally: Tally) -> Verdict {
    if !c.pending.is_empty() || c.answers.iter().any(|a| a.judgement.is_none()) {
        return Verdict::Pending { tally };
    }
    if c.answers.is_empty() {
        return impossible("no member answered", tally);
    }
    let accepted: Vec<(&Answer, f64)> =
        c.answers.iter().filter_map(|a| a.judgement.filter(|j| j.accepted).map(|j| (a, j.score))).collect();
    let Some(best) = accepted.iter().map(|a| a.1).max_by(f64::total_cmp) else {
        return impossible("no answer was accepted by the validator", tally);
    };
    // In slot order, as `answers` is.
    let top: Vec<&Answer> = accepted.iter().filter(|a| a.1.total_cmp(&best).is_eq()).map(|a| a.0).collect();
    let Some(winner) = top.first() else {
        return impossible("no answer was accepted by the validator", tally);
    };
    let mut tied: Vec<usize> = top.iter().map(|a| a.group).collect();
    tied.sort_unstable();
    tied.dedup();
    if tied.len() > 1 {
        let what = format!("tie between {} answers with score {best}", tied.len());
        if tie_break == TieBreak::Fail {
            return impossible(format!("{what}, and the rule fails on a tie"), tally);
        }
        tally.tie = Some(format!("{what}: the answer of member {}, listed first, wins", winner.slot));
    }
    tally.winner = Some(winner.group);
    Verdict::Reached { result: winner.reply.clone(), tally }
}

fn lead(ballots: &[&Ballot], c: &Counted, mut tally: Tally) -> Verdict {
    let Some(lead) = ballots.iter().find(|b| b.role == Role::Lead) else {
        return impossible("the squad has no lead", tally);
    };
    if let Ok(i) = c.answers.binary_search_by_key(&lead.slot, |a| a.slot) {
        let answer = &c.answers[i];
        tally.winner = Some(answer.group);
        return Verdict::Reached { result: answer.reply.clone(), tally };
    }
    if let Some((slot, reason)) = c.failed.iter().find(|f| f.0 == lead.slot) {
        return impossible(format!("the lead (member {slot}) failed: {reason}"), tally);
    }
    Verdict::Pending { tally }
}

#[cfg(test)]
mod tests;
