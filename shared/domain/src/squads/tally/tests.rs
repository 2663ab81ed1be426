use proptest::prelude::*;
use serde_json::json;

use super::*;

fn ballot(slot: u32, vote: Vote) -> Ballot {
    Ballot { slot, role: Role::Worker, weight: 1, vote }
}

/// An answer `{"answer": answer}` that arrived at time `slot`.
fn says(slot: u32, answer: &str) -> Ballot {
    ballot(slot, Vote::Answered { reply: json!({ "answer": answer }), at: u64::from(slot), judgement: None })
}

fn pending(slot: u32) -> Ballot {
    ballot(slot, Vote::Pending)
}

fn failed(slot: u32) -> Ballot {
    ballot(slot, Vote::Failed { reason: "crashed".to_string() })
}

fn rule(method: Method) -> Rule {
    Rule::new(method)
}

fn result(verdict: &Verdict) -> Option<&Value> {
    match verdict {
        Verdict::Reached { result, .. } => Some(result),
        _ => None,
    }
}

fn reason(verdict: &Verdict) -> Option<(&str, &[u32])> {
    match verdict {
        Verdict::Impossible { reason, dissenters, .. } => Some((reason, dissenters)),
        _ => None,
    }
}

fn five() -> Vec<Ballot> {
    vec![says(0, "A"), says(1, "B"), says(2, "A"), says(3, "C"), says(4, "A")]
}

#[test]
fn majority_of_five_picks_the_answer_three_gave() {
    let verdict = decide(&rule(Method::Majority), &five());
    assert_eq!(result(&verdict), Some(&json!({ "answer": "A" })));
    let tally = verdict.tally();
    assert_eq!(
        tally.answers[0],
        TallyEntry { value: json!({ "answer": "A" }), votes: 3, members: vec![0, 2, 4] }
    );
    assert_eq!(
        tally.answers.iter().map(|e| e.members.clone()).collect::<Vec<_>>(),
        [vec![0, 2, 4], vec![1], vec![3]]
    );
    assert_eq!((tally.winner, &tally.tie, tally.failed.len(), tally.pending.len()), (Some(0), &None, 0, 0));
}

#[test]
fn unanimous_on_the_same_five_names_the_two_dissenters() {
    let verdict = decide(&rule(Method::Unanimous), &five());
    assert_eq!(reason(&verdict), Some(("unanimity broken: members 1 and 3 answered otherwise", &[1, 3][..])));
    // As soon as two answers differ, even with others pending.
    let early = decide(&rule(Method::Unanimous), &[says(0, "A"), pending(1), says(2, "B")]);
    assert_eq!(reason(&early), Some(("unanimity broken: member 2 answered otherwise", &[2][..])));
}

#[test]
fn weights_overturn_the_plain_majority() {
    let mut ballots = vec![says(0, "A"), says(1, "A"), says(2, "A"), says(3, "B"), says(4, "B")];
    ballots[3].weight = 2;
    ballots[4].weight = 2;
    assert_eq!(result(&decide(&rule(Method::Majority), &ballots)), Some(&json!({ "answer": "A" })));
    let weighted = decide(&rule(Method::Weighted), &ballots);
    assert_eq!(result(&weighted), Some(&json!({ "answer": "B" })));
    assert_eq!((weighted.tally().answers[0].votes, &weighted.tally().answers[0].members), (4, &vec![3, 4]));
}

#[test]
fn quorum_is_reached_early_and_found_impossible_early() {
    let three = Rule { quorum: 3, ..rule(Method::Quorum) };
    let verdict = decide(&three, &[says(0, "A"), pending(1), says(2, "A"), pending(3), says(4, "A")]);
    assert_eq!(result(&verdict), Some(&json!({ "answer": "A" })));
    assert_eq!(verdict.tally().pending, [1, 3]);

    let four = Rule { quorum: 4, tolerated_failures: 2, ..rule(Method::Quorum) };
    let open = [says(0, "A"), says(1, "B"), pending(2), pending(3), pending(4)];
    assert!(matches!(decide(&four, &open), Verdict::Pending { .. }));
    let closed = [says(0, "A"), says(1, "B"), failed(2), failed(3), pending(4)];
    assert_eq!(
        reason(&decide(&four, &closed)).map(|r| r.0),
        Some("no answer can reach the quorum of 4: the most members agreeing are 1, with 1 pending")
    );
}

#[test]
fn the_first_answer_to_reach_the_quorum_wins() {
    let two = Rule { quorum: 2, ..rule(Method::Quorum) };
    let mut ballots = [says(0, "A"), says(1, "B"), says(2, "B"), says(3, "A"), says(4, "A")];
    // B's second member answered at 2, A's at 3: B wins though A has more members now.
    let verdict = decide(&two, &ballots);
    assert_eq!((result(&verdict), verdict.tally().winner), (Some(&json!({ "answer": "B" })), Some(1)));
    ballots[3] = ballot(3, Vote::Answered { reply: json!({ "answer": "A" }), at: 1, judgement: None });
    assert_eq!(result(&decide(&two, &ballots)), Some(&json!({ "answer": "A" })));
}

#[test]
fn failures_within_the_tolerance_are_left_out_one_more_is_impossible() {
    let one = Rule { tolerated_failures: 1, ..rule(Method::Majority) };
    let verdict = decide(&one, &[says(0, "A"), says(1, "A"), says(2, "B"), failed(3), says(4, "A")]);
    assert_eq!(result(&verdict), Some(&json!({ "answer": "A" })));
    assert_eq!(verdict.tally().failed, [3]);
    let verdict = decide(&one, &[says(0, "A"), says(1, "A"), says(2, "A"), failed(3), failed(4)]);
    assert_eq!(reason(&verdict), Some(("members 3 and 4 failed; the squad tolerates 1", &[][..])));
}

#[test]
fn the_compare_pointer_compares_only_that_value() {
    let reply = |answer: &str, why: &str| json!({ "answer": { "x": answer, "n": 1 }, "why": why });
    let ballots = [
        ballot(0, Vote::Answered { reply: reply("A", "because"), at: 5, judgement: None }),
        ballot(1, Vote::Answered { reply: reply("A", "since"), at: 3, judgement: None }),
    ];
    let by_answer = Rule { compare: "/answer".to_string(), ..rule(Method::Unanimous) };
    let verdict = decide(&by_answer, &ballots);
    // The whole reply of the first member to answer (at 3).
    assert_eq!(result(&verdict), Some(&reply("A", "since")));
    assert_eq!(verdict.tally().answers[0].value, json!({ "n": 1, "x": "A" }));
    assert!(reason(&decide(&rule(Method::Unanimous), &ballots)).is_some());
}

#[test]
fn a_reply_without_the_compared_value_counts_as_failed() {
    let by_answer = Rule { compare: "/answer".to_string(), ..rule(Method::Majority) };
    let ballots =
        [says(0, "A"), ballot(1, Vote::Answered { reply: json!({ "other": 1 }), at: 1, judgement: None })];
    let verdict = decide(&by_answer, &ballots);
    assert_eq!(reason(&verdict), Some(("member 1 failed; the squad tolerates 0", &[][..])));
    assert_eq!(verdict.tally().failed, [1]);
    let mut led = ballots.clone();
    led[1].role = Role::Lead;
    let verdict = decide(&Rule { method: Method::Lead, tolerated_failures: 1, ..by_answer }, &led);
    assert_eq!(
        reason(&verdict).map(|r| r.0),
        Some("the lead (member 1) failed: the reply has no value at /answer")
    );
}

#[test]
fn a_tie_goes_to_the_first_listed_or_fails() {
    let ballots = [says(0, "A"), says(1, "B"), says(2, "B"), says(3, "A")];
    let verdict = decide(&rule(Method::Majority), &ballots);
    assert_eq!(result(&verdict), Some(&json!({ "answer": "A" })));
    let tie = "tie between 2 answers with 2 votes each: the answer of member 0, listed first, wins";
    assert_eq!(verdict.tally().tie.as_deref(), Some(tie));
    let fail = Rule { tie_break: TieBreak::Fail, ..rule(Method::Majority) };
    let verdict = decide(&fail, &ballots);
    assert_eq!(
        reason(&verdict).map(|r| r.0),
        Some("tie between 2 answers with 2 votes each, and the rule fails on a tie")
    );
}

#[test]
fn majority_is_reached_early_only_when_the_pending_cannot_change_it() {
    let majority = rule(Method::Majority);
    let early = [says(0, "A"), says(1, "A"), says(2, "A"), pending(3), pending(4)];
    assert_eq!(result(&decide(&majority, &early)), Some(&json!({ "answer": "A" })));
    let open = [says(0, "A"), says(1, "A"), says(2, "B"), pending(3), pending(4)];
    assert!(matches!(decide(&majority, &open), Verdict::Pending { .. }));
    // 2 against at most 2: a tie that member 0's answer wins, listed first; not with `fail`,
    // nor when a pending member is listed before it.
    let tie = [says(0, "A"), says(1, "A"), pending(2), pending(3)];
    assert!(result(&decide(&majority, &tie)).is_some());
    let fail = Rule { tie_break: TieBreak::Fail, ..majority.clone() };
    assert!(matches!(decide(&fail, &tie), Verdict::Pending { .. }));
    let lower = [pending(0), says(1, "A"), says(2, "A"), pending(3)];
    assert!(matches!(decide(&majority, &lower), Verdict::Pending { .. }));
    let none = [failed(0)];
    let verdict = decide(&Rule { tolerated_failures: 1, ..majority }, &none);
    assert_eq!(reason(&verdict).map(|r| r.0), Some("no member answered"));
}

#[test]
fn first_success_takes_the_first_answer_at_once() {
    let first = Rule { tolerated_failures: 2, ..rule(Method::FirstSuccess) };
    let ballots = [
        pending(0),
        ballot(1, Vote::Answered { reply: json!("late"), at: 9, judgement: None }),
        ballot(2, Vote::Answered { reply: json!("early"), at: 4, judgement: None }),
    ];
    assert_eq!(result(&decide(&first, &ballots)), Some(&json!("early")));
    let verdict = decide(&first, &[failed(0), failed(1)]);
    assert_eq!(reason(&verdict).map(|r| r.0), Some("no member succeeded"));
    assert!(matches!(decide(&first, &[failed(0), pending(1)]), Verdict::Pending { .. }));
}

#[test]
fn validator_picks_the_best_accepted_answer_once_all_are_judged() {
    let judged = |slot: u32, answer: &str, judgement: Option<(bool, f64)>| {
        let judgement = judgement.map(|(accepted, score)| Judgement { accepted, score });
        ballot(slot, Vote::Answered { reply: json!(answer), at: u64::from(slot), judgement })
    };
    let validator = Ballot { role: Role::Validator, ..pending(3) };
    let v = rule(Method::Validator);
    let ballots = vec![
        judged(0, "A", Some((true, 0.5))),
        judged(1, "B", Some((true, 0.9))),
        judged(2, "C", Some((false, 2.0))),
        validator,
    ];
    let verdict = decide(&v, &ballots);
    assert_eq!((result(&verdict), verdict.tally().pending.len()), (Some(&json!("B")), 0));

    let mut unjudged = ballots.clone();
    unjudged[0] = judged(0, "A", None);
    assert!(matches!(decide(&v, &unjudged), Verdict::Pending { .. }));
    let rejected = [judged(0, "A", Some((false, 1.0))), judged(1, "B", Some((false, 3.0)))];
    assert_eq!(reason(&decide(&v, &rejected)).map(|r| r.0), Some("no answer was accepted by the validator"));

    let tied = [judged(0, "A", Some((true, 1.0))), judged(1, "B", Some((true, 1.0)))];
    let verdict = decide(&v, &tied);
    assert_eq!(result(&verdict), Some(&json!("A")));
    let tie = "tie between 2 answers with score 1: the answer of member 0, listed first, wins";
    assert_eq!(verdict.tally().tie.as_deref(), Some(tie));
    let fail = Rule { tie_break: TieBreak::Fail, ..v };
    assert!(reason(&decide(&fail, &tied)).is_some());
    // The same answer twice at the top is no tie.
    let same = [judged(0, "A", Some((true, 1.0))), judged(1, "A", Some((true, 1.0)))];
    assert_eq!(decide(&fail, &same).tally().tie, None);
}

#[test]
fn lead_takes_the_reply_of_the_lead() {
    let lead = rule(Method::Lead);
    let mut ballots = vec![says(0, "A"), says(1, "A"), Ballot { role: Role::Lead, ..pending(2) }];
    assert!(matches!(decide(&lead, &ballots), Verdict::Pending { .. }));
    ballots[2] = Ballot { role: Role::Lead, ..says(2, "B") };
    let verdict = decide(&lead, &ballots);
    assert_eq!((result(&verdict), verdict.tally().winner), (Some(&json!({ "answer": "B" })), Some(1)));
    ballots[2] = Ballot { role: Role::Lead, ..failed(2) };
    let verdict = decide(&Rule { tolerated_failures: 1, ..lead.clone() }, &ballots);
    assert_eq!(reason(&verdict).map(|r| r.0), Some("the lead (member 2) failed: crashed"));
    assert_eq!(reason(&decide(&lead, &[says(0, "A")])).map(|r| r.0), Some("the squad has no lead"));
}

#[test]
fn collect_lists_the_items_in_slot_order() {
    let collect = Rule { tolerated_failures: 1, compare: "/answer".to_string(), ..rule(Method::Collect) };
    let verdict = decide(&collect, &[says(2, "C"), failed(1), says(0, "A")]);
    assert_eq!(result(&verdict), Some(&json!(["A", null, "C"])));
    assert_eq!(verdict.tally().winner, None);
    assert!(matches!(decide(&collect, &[says(0, "A"), pending(1)]), Verdict::Pending { .. }));
}

#[test]
fn malformed_rules_and_ballots_are_impossible() {
    let check = |rule: Rule, ballots: &[Ballot], expected: &str| {
        assert_eq!(reason(&decide(&rule, ballots)).map(|r| r.0), Some(expected));
    };
    let ok = [says(0, "A")];
    check(rule(Method::Quorum), &ok, "the rule is invalid: a quorum rule needs a quorum of at least 1");
    let pointer = |p: &str| Rule { compare: p.to_string(), ..rule(Method::Majority) };
    check(
        pointer("answer"),
        &ok,
        "the rule is invalid: compare `answer` is not a JSON pointer (\"\" or starting with \"/\")",
    );
    check(
        pointer("/a~2"),
        &ok,
        "the rule is invalid: compare `/a~2` is not a JSON pointer (\"\" or starting with \"/\")",
    );
    check(rule(Method::Majority), &[says(0, "A"), says(0, "B")], "slot 0 is given to two ballots");
    check(
        rule(Method::Weighted),
        &[Ballot { weight: 0, ..says(0, "A") }],
        "member 0 has weight 0; a weight is 1 to 1000",
    );
    let nan = ballot(
        0,
        Vote::Answered {
            reply: json!(1),
            at: 0,
            judgement: Some(Judgement { accepted: true, score: f64::NAN }),
        },
    );
    check(rule(Method::Validator), &[nan], "the score of member 0's answer is not a finite number");
    assert_eq!(compared(&json!({ "a/b": { "~": 1 } }), "/a~1b/~0"), Some(&json!(1)));
}

#[test]
fn canonical_sorts_keys_at_every_depth() {
    let value: Value = serde_json::from_str(r#"{"b":[{"d":1.5,"c":"é\n"}],"a":null}"#).unwrap();
    assert_eq!(canonical(&value), r#"{"a":null,"b":[{"c":"é\n","d":1.5}]}"#);
}

#[test]
fn rules_and_tallies_read_and_write_snake_case() {
    let read: Rule = serde_json::from_value(json!({ "method": "first_success" })).unwrap();
    assert_eq!(read, rule(Method::FirstSuccess));
    let tally = decide(&rule(Method::Majority), &five()).tally().clone();
    let text = serde_json::to_value(&tally).unwrap();
    assert_eq!(text["method"], "majority");
    assert_eq!(serde_json::from_value::<Tally>(text).ok(), Some(tally));
}

// --- Properties --------------------------------------------------------------------------

const METHODS: [Method; 8] = [
    Method::Majority,
    Method::Weighted,
    Method::Unanimous,
    Method::Quorum,
    Method::FirstSuccess,
    Method::Validator,
    Method::Lead,
    Method::Collect,
];

fn any_rule() -> impl Strategy<Value = Rule> {
    (prop::sample::select(&METHODS[..]), 1..=4u32, any::<bool>(), any::<bool>(), 0..=2u32).prop_map(
        |(method, quorum, whole, first, tolerated_failures)| Rule {
            method,
            quorum,
            compare: if whole { String::new() } else { "/answer".to_string() },
            tie_break: if first { TieBreak::FirstListed } else { TieBreak::Fail },
            tolerated_failures,
        },
    )
}

/// Mostly `{"answer": A|B|C, "note": x|y}`, sometimes without `answer`.
fn any_reply() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (prop::sample::select(&["A", "B", "C"][..]), prop::sample::select(&["x", "y"][..]))
            .prop_map(|(answer, note)| json!({ "answer": answer, "note": note })),
        1 => Just(json!({ "note": "none" })),
    ]
}

/// An answer (arriving at `at` from `times`) or a failure.
fn outcome(times: std::ops::Range<u64>) -> impl Strategy<Value = Vote> {
    let judgement = prop::option::of((any::<bool>(), 0..3u8))
        .prop_map(|j| j.map(|(accepted, s)| Judgement { accepted, score: f64::from(s) / 2.0 }));
    prop_oneof![
        4 => (any_reply(), times, judgement).prop_map(|(reply, at, judgement)| Vote::Answered { reply, at, judgement }),
        1 => Just(Vote::Failed { reason: "crashed".to_string() }),
    ]
}

fn any_ballots() -> impl Strategy<Value = Vec<Ballot>> {
    let role = prop::sample::select(&[Role::Lead, Role::Worker, Role::Worker, Role::Validator][..]);
    let vote = prop_oneof![2 => Just(Vote::Pending), 5 => outcome(0..4)];
    prop::collection::vec((role, 1..=3u32, vote), 1..=6).prop_map(|members| {
        (0..).zip(members).map(|(slot, (role, weight, vote))| Ballot { slot, role, weight, vote }).collect()
    })
}

/// `ballots` with some pending ones settled by `plan`, answering later than every answer in.
fn later(ballots: &[Ballot], plan: &[Option<Vote>]) -> Vec<Ballot> {
    let mut next = 4;
    let mut out = ballots.to_vec();
    for (b, settled) in out.iter_mut().zip(plan) {
        if let (Vote::Pending, Some(vote)) = (&b.vote, settled) {
            b.vote = vote.clone();
            if let Vote::Answered { at, .. } = &mut b.vote {
                *at = next;
                next += 1;
            }
        }
    }
    out
}

fn with_method(mut verdict: Verdict, method: Method) -> Verdict {
    match &mut verdict {
        Verdict::Reached { tally, .. } | Verdict::Pending { tally } | Verdict::Impossible { tally, .. } => {
            tally.method = method;
        }
    }
    verdict
}

proptest! {
    // Early verdicts hinge on rare cases (a tie the leader wins only by its slot): more runs.
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn early_verdicts_are_sound(
        rule in any_rule(),
        ballots in any_ballots(),
        plan in prop::collection::vec(prop::option::of(outcome(0..1)), 6),
    ) {
        let before = decide(&rule, &ballots);
        let after = decide(&rule, &later(&ballots, &plan));
        match &before {
            Verdict::Reached { result: settled, .. } if after.tally().failed.len() <= rule.tolerated_failures as usize => {
                prop_assert_eq!(result(&after), Some(settled), "{:?}", after);
            }
            Verdict::Impossible { .. } => prop_assert!(matches!(after, Verdict::Impossible { .. }), "{:?}", after),
            _ => {}
        }
    }
}

proptest! {
    #[test]
    fn the_order_of_the_ballots_does_not_matter(
        (rule, ballots, shuffled) in (any_rule(), any_ballots())
            .prop_flat_map(|(rule, ballots)| (Just(rule), Just(ballots.clone()), Just(ballots).prop_shuffle())),
    ) {
        prop_assert_eq!(decide(&rule, &ballots), decide(&rule, &shuffled));
    }

    #[test]
    fn weighted_with_unit_weights_is_majority(rule in any_rule(), mut ballots in any_ballots()) {
        for b in &mut ballots {
            b.weight = 1;
        }
        let weighted = decide(&Rule { method: Method::Weighted, ..rule.clone() }, &ballots);
        let majority = decide(&Rule { method: Method::Majority, ..rule }, &ballots);
        prop_assert_eq!(with_method(weighted, Method::Majority), majority);
    }

    #[test]
    fn unanimous_is_reached_iff_all_counted_answered_the_same(rule in any_rule(), ballots in any_ballots()) {
        let rule = Rule { method: Method::Unanimous, ..rule };
        let (mut failures, mut open, mut answers) = (0, false, Vec::new());
        for b in &ballots {
            match &b.vote {
                Vote::Pending => open = true,
                Vote::Answered { reply, .. } => match reply.pointer(&rule.compare) {
                    Some(value) => answers.push(canonical(value)),
                    None => failures += 1,
                },
                Vote::Failed { .. } => failures += 1,
            }
        }
        answers.sort();
        answers.dedup();
        let expected = failures <= rule.tolerated_failures && !open && answers.len() == 1;
        let verdict = decide(&rule, &ballots);
        prop_assert_eq!(result(&verdict).is_some(), expected);
    }

    #[test]
    fn collect_returns_the_items_in_slot_order(
        (items, shuffled) in prop::collection::btree_map(0..50u32, any_reply(), 1..8).prop_flat_map(|items| {
            let ballots: Vec<Ballot> = items
                .iter()
                .map(|(&slot, reply)| ballot(slot, Vote::Answered { reply: reply.clone(), at: 0, judgement: None }))
                .collect();
            (Just(items), Just(ballots).prop_shuffle())
        }),
    ) {
        let expected: Vec<Value> = items.values().cloned().collect();
        let verdict = decide(&rule(Method::Collect), &shuffled);
        prop_assert_eq!(result(&verdict), Some(&Value::Array(expected)));
    }
}
