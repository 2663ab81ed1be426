//! Squad tasks on a real store and queue: the cases issue 14 names, each driven by
//! workers that receive messages from the queue, process them and settle them, with
//! scripted agents whose every call is counted.

use std::time::Duration;

use serde_json::{Value, json};
use tdev_domain::messaging::{Breaker, BreakerState};
use tdev_domain::ports::MessageQueue;
use tdev_domain::queue::{Delivery, Outcome};
use tdev_domain::runs::{
    AssignmentStatus, EngineStore, ParentStep, STEP_QUEUE, SquadTask, Task, TaskStatus, TaskView,
};
use tdev_domain::squads;
use tdev_domain::workflow::Format;

use crate::engine::{Behaviour, Harness};

const LIMIT: Duration = Duration::from_secs(20);

fn reply(answer: &str) -> Behaviour {
    Behaviour::Reply(vec![json!({"answer": answer, "detail": format!("because {answer}")})])
}

impl<S: EngineStore + Clone, Q: MessageQueue> Harness<S, Q> {
    /// Stores `squad` (given a unique id) and starts a task with `input`.
    pub async fn start_squad(&self, mut squad: Value, input: Value) -> SquadTask {
        squad["id"] = json!(crate::unique("sq"));
        squad["version"] = json!("1");
        let loaded = squads::load(&squad.to_string(), Format::Json).expect("a valid squad");
        let (stored, _) = self.engine.put_squad(loaded).await.expect("store squad");
        let Value::Object(input) = input else { panic!("input must be an object") };
        self.engine.start_task(&stored.id, None, input, None).await.expect("start task")
    }

    /// Workers process the queue until the task ends (or [`LIMIT`] passes), each batch
    /// concurrently; with `duplicate` every delivery is processed twice.
    pub async fn drive_task(&self, task_id: &str, duplicate: bool) -> SquadTask {
        self.drive_task_within(task_id, duplicate, LIMIT).await
    }

    /// As [`Harness::drive_task`], for at most `limit`. Workers take deliveries as they
    /// come, up to 16 at once, as the queue consumers of the local stack do: one slow call
    /// does not hold the others back.
    pub async fn drive_task_within(&self, task_id: &str, duplicate: bool, limit: Duration) -> SquadTask {
        let started = std::time::Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        loop {
            while let Some(done) = workers.try_join_next() {
                done.expect("worker task");
            }
            let task = self.engine.store().get_task(task_id).await.expect("get task").expect("task exists");
            // Done when it ended and no call is under way (whose end is recorded late).
            let busy = task.status.is_terminal()
                && self
                    .engine
                    .task_view(task_id)
                    .await
                    .expect("view")
                    .assignments
                    .iter()
                    .any(|a| a.status == AssignmentStatus::Running);
            if (task.status.is_terminal() && !busy) || started.elapsed() > limit {
                while let Some(done) = workers.join_next().await {
                    done.expect("worker task");
                }
                return self.engine.store().get_task(task_id).await.expect("get task").expect("task exists");
            }
            let room = 16usize.saturating_sub(workers.len());
            let batch = if room == 0 {
                Vec::new()
            } else {
                self.engine
                    .queue()
                    .receive(STEP_QUEUE, room.min(10), Duration::from_secs(30))
                    .await
                    .expect("receive")
            };
            if batch.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            for delivery in batch {
                let engine = self.engine.clone();
                workers.spawn(async move {
                    let outcome = engine.process(&delivery).await;
                    if duplicate {
                        let again = engine.process(&delivery).await;
                        assert!(
                            !matches!(again, Outcome::DeadLetter(_)),
                            "a duplicate is never dead-lettered"
                        );
                    }
                    let _ = engine.queue().settle(STEP_QUEUE, &delivery, outcome).await;
                });
            }
        }
    }

    fn calls_of(&self, agent: &str) -> usize {
        self.agents.calls(agent).len()
    }
}

/// `n` agents named `name-<i>`, each behaving as `behaviour`.
async fn some<S: EngineStore + Clone, Q: MessageQueue>(
    h: &Harness<S, Q>,
    name: &str,
    n: usize,
    behaviour: Behaviour,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(h.agent(&format!("{name}-{i}"), behaviour.clone(), &[]).await);
    }
    ids
}

/// Every squad case, on one store and queue; the split shares `split_items` items (1,000
/// on the embedded backend; fewer on moto, where each call of the store takes
/// milliseconds and 1,000 items take minutes).
pub async fn run_all<S, Q>(store: S, queue: Q, split_items: usize)
where
    S: EngineStore + Clone,
    Q: MessageQueue,
{
    let h = Harness::new(store, queue);
    // Each case boxed: their futures are large in a debug build, and the test polls this one
    // on its own thread's stack.
    Box::pin(majority_unanimous_and_weighted(&h)).await;
    Box::pin(a_failing_member_is_replaced(&h, false)).await;
    Box::pin(a_failing_member_is_replaced(&h, true)).await;
    Box::pin(tolerated_failures_decide_when_no_one_is_left(&h)).await;
    Box::pin(an_unreachable_quorum_fails_at_once(&h)).await;
    Box::pin(rounds_share_answers_and_stop_early(&h)).await;
    Box::pin(race_takes_the_first_success(&h)).await;
    Box::pin(validators_pick_the_best_accepted_answer(&h)).await;
    Box::pin(cancel_stops_the_task(&h)).await;
    Box::pin(split_shares_the_items_exactly_once(&h, split_items)).await;
    Box::pin(least_loaded_favours_the_faster_worker(&h)).await;
    Box::pin(least_loaded_counts_the_load_elsewhere(&h)).await;
    Box::pin(a_run_that_ends_cancels_its_squad_task(&h)).await;
    Box::pin(a_watch_renews_itself_and_waits_for_its_task(&h)).await;
    Box::pin(a_result_too_large_fails_the_task(&h)).await;
    Box::pin(a_broadcast_counts_its_votes_on_the_record(&h)).await;
    Box::pin(lead_plans_the_workers_run_it_and_the_lead_synthesizes(&h)).await;
}

/// Five members, three answering A and two B: the majority answer with its tally;
/// unanimity fails at the first dissenter, naming it; weights can overturn the plain
/// majority.
pub async fn majority_unanimous_and_weighted<S: EngineStore + Clone, Q: MessageQueue>(h: &Harness<S, Q>) {
    let mut members = Vec::new();
    for (name, answer) in [("m-a1", "A"), ("m-b1", "B"), ("m-a2", "A"), ("m-b2", "B"), ("m-a3", "A")] {
        members.push(h.agent(name, reply(answer), &[]).await);
    }
    let squad = |method: &str, weights: [u32; 5]| {
        json!({
            "members": members.iter().zip(weights).map(|(m, w)| json!({"agent": m, "weight": w})).collect::<Vec<_>>(),
            "aggregation": {"method": method, "compare": "/answer"},
            // One call at a time, in member order: what the tally has seen when it settles
            // does not depend on which call happens to finish first.
            "limits": {"max_concurrency": 1},
        })
    };
    let task = h.start_squad(squad("majority", [1; 5]), json!({"question": "A or B?"})).await;
    let done = h.drive_task(&task.id, false).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    assert_eq!(done.result.as_ref().unwrap()["answer"], "A");
    let tally = done.tally.as_ref().unwrap();
    let winner = &tally.answers[tally.winner.unwrap()];
    assert_eq!((winner.value.clone(), winner.votes, winner.members.clone()), (json!("A"), 3, vec![0, 2, 4]));
    assert_eq!(tally.answers.len(), 2, "{tally:?}");
    let TaskView { assignments, .. } = h.engine.task_view(&done.id).await.unwrap();
    let first = assignments.iter().find(|a| a.slot == 0).unwrap();
    assert_eq!(first.vote, Some(json!("A")), "each assignment shows its vote");

    // One call at a time, the two B members last: unanimity breaks at the first B, which
    // is named, and the last member is never called.
    let in_order: Vec<&String> = [0, 2, 4, 1, 3].iter().map(|&i| &members[i]).collect();
    let unanimous = json!({
        "members": in_order.iter().map(|m| json!({"agent": m})).collect::<Vec<_>>(),
        "aggregation": {"method": "unanimous", "compare": "/answer"},
        "limits": {"max_concurrency": 1},
    });
    let last_calls = h.calls_of(in_order[4]);
    let done = h.drive_task(&h.start_squad(unanimous, json!({})).await.id, false).await;
    assert_eq!(done.status, TaskStatus::Failed, "{done:?}");
    let error = done.error.unwrap();
    assert_eq!(error, "unanimity broken: member 3 answered otherwise");
    assert_eq!(h.calls_of(in_order[4]), last_calls, "the task failed at once: no further call");

    let task = h.start_squad(squad("weighted", [1, 2, 1, 2, 1]), json!({})).await;
    let done = h.drive_task(&task.id, false).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    assert_eq!(done.result.as_ref().unwrap()["answer"], "B", "weights 4 to 3 overturn the plain majority");
    for member in &members {
        assert!(h.calls_of(member) <= 3, "never more than one call per task");
    }
}

/// A broadcast with every answer handed out at once counts each answer on the task's
/// record as it comes (a digest of its compared value), so the pass after an answer reads
/// one record; the result and tally are those of the replies themselves.
pub async fn a_broadcast_counts_its_votes_on_the_record<S: EngineStore + Clone, Q: MessageQueue>(
    h: &Harness<S, Q>,
) {
    let mut members = Vec::new();
    for (i, answer) in ["A", "B", "A", "B", "A", "B", "A"].into_iter().enumerate() {
        members.push(h.agent(&format!("v-{i}"), reply(answer), &[]).await);
    }
    let squad = json!({
        "members": members.iter().map(|m| json!({"agent": m})).collect::<Vec<_>>(),
        "aggregation": {"method": "unanimous", "compare": "/answer"},
    });
    let task = h.start_squad(squad, json!({"question": "A or B?"})).await;
    let done = h.drive_task(&task.id, false).await;
    assert_eq!(done.status, TaskStatus::Failed, "{done:?}");
    assert_eq!(done.round_handed_out, 1, "every answer was handed out by the first pass");
    assert!(!done.votes.is_empty() && done.votes.len() <= members.len(), "{:?}", done.votes);
    let keys: std::collections::HashSet<_> = done.votes.iter().map(|v| v.key.clone()).collect();
    assert!(keys.iter().all(|k| k.as_ref().is_some_and(|k| k.len() == 32)), "{keys:?}");
    // The tally the task ended with is over the replies: A and B by name.
    let tally = done.tally.expect("a tally");
    let values: Vec<&Value> = tally.answers.iter().map(|a| &a.value).collect();
    assert!(values.iter().all(|v| **v == json!("A") || **v == json!("B")), "{values:?}");
    assert!(done.error.unwrap().starts_with("unanimity broken"));

    // Four A and three B under majority, every delivery twice: A with its four members,
    // the A answers counted on the record under one digest.
    let squad = json!({
        "members": members.iter().map(|m| json!({"agent": m})).collect::<Vec<_>>(),
        "aggregation": {"method": "majority", "compare": "/answer"},
    });
    let task = h.start_squad(squad, json!({"question": "A or B?"})).await;
    let done = h.drive_task(&task.id, true).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    let tally = done.tally.expect("a tally");
    let winner = &tally.answers[tally.winner.expect("a winner")];
    assert_eq!(
        (winner.value.clone(), winner.votes, winner.members.clone()),
        (json!("A"), 4, vec![0, 2, 4, 6])
    );
    let a_keys: std::collections::HashSet<_> =
        done.votes.iter().filter(|v| v.slot % 2 == 0).map(|v| v.key.clone()).collect();
    assert_eq!(a_keys.len(), 1, "equal answers, one digest: {:?}", done.votes);
}

/// A member that answers 500 is replaced by another agent of its capability, and the task
/// succeeds; the replacement and its reason are recorded, and no agent is called twice
/// for one attempt even when every delivery arrives twice.
pub async fn a_failing_member_is_replaced<S: EngineStore + Clone, Q: MessageQueue>(
    h: &Harness<S, Q>,
    duplicate: bool,
) {
    let capability = crate::unique("cap-answer");
    let good1 = h.agent("good-1", reply("yes"), &[&capability]).await;
    let broken = h.agent("broken", Behaviour::AlwaysFail, &[&capability]).await;
    let good2 = h.agent("good-2", reply("yes"), &[&capability]).await;
    let spare = h.agent("spare", reply("yes"), &[&capability]).await;
    // First by id, but its breaker is open (message routing saw it fail): passed over.
    let tripped = h.agent("a-tripped", reply("yes"), &[&capability]).await;
    let open = Breaker {
        state: BreakerState::Open { until: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1) },
        version: 1,
        ..Breaker::default()
    };
    h.engine.store().put_breaker(&tripped, &open).await.expect("open the breaker");
    let squad = json!({
        "members": [{"agent": good1}, {"agent": broken, "capability": capability}, {"agent": good2}],
        "aggregation": {"method": "unanimous", "compare": "/answer"},
        "on_failure": {"retries": 1, "replacements": 1},
    });
    let task = h.start_squad(squad, json!({})).await;
    let done = h.drive_task(&task.id, duplicate).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    assert_eq!(done.replacements.len(), 1, "{:?}", done.replacements);
    let replacement = &done.replacements[0];
    assert_eq!(
        (replacement.slot, replacement.replaced.as_str(), replacement.by.as_str()),
        (1, broken.as_str(), spare.as_str())
    );
    assert!(replacement.reason.contains("unavailable"), "{}", replacement.reason);
    assert_eq!(h.calls_of(&broken), 2, "two attempts (one retry), each called once");
    assert_eq!(h.calls_of(&spare), 1, "the spare answers once");
    assert_eq!(h.calls_of(&tripped), 0, "an agent whose breaker is open replaces no one");
    let TaskView { assignments, .. } = h.engine.task_view(&done.id).await.unwrap();
    let ids: Vec<&str> = assignments.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["r01-s0000-g0", "r01-s0001-g0", "r01-s0001-g1", "r01-s0002-g0"]);
    let failed = &assignments[1];
    assert_eq!(
        (failed.status, failed.attempts, failed.agent.as_str()),
        (AssignmentStatus::Failed, 2, broken.as_str())
    );
    // The squad's figures: one call of four failed, one replacement, all three agreed.
    let figures = h.metrics.of(&[("Squad", &done.squad_id)]);
    assert_eq!(figures["SquadTasks"], 1.0);
    assert_eq!(figures["SquadReplacements"], 1.0);
    assert_eq!(figures["SquadMemberFailureRate"], 25.0);
    assert_eq!(figures["SquadAgreementRate"], 100.0);
    assert!(figures["SquadTaskLatency"] > 0.0, "{figures:?}");
}

/// No agent left to replace a failed member: the tolerance decides.
pub async fn tolerated_failures_decide_when_no_one_is_left<S: EngineStore + Clone, Q: MessageQueue>(
    h: &Harness<S, Q>,
) {
    let ok1 = h.agent("ok-1", reply("x"), &[]).await;
    let ok2 = h.agent("ok-2", reply("x"), &[]).await;
    let broken = h.agent("broken", Behaviour::AlwaysFail, &[]).await;
    let squad = |tolerate: u32| {
        json!({
            "members": [{"agent": ok1}, {"agent": broken}, {"agent": ok2}],
            "aggregation": {"compare": "/answer"},
            "limits": {"max_concurrency": 1},
            "on_failure": {"retries": 0, "tolerate": tolerate},
        })
    };
    let done = h.drive_task(&h.start_squad(squad(1), json!({})).await.id, false).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "one failure tolerated: {done:?}");
    assert!(done.replacements.is_empty());
    assert_eq!(done.tally.as_ref().unwrap().failed, vec![1]);
    let done = h.drive_task(&h.start_squad(squad(0), json!({})).await.id, false).await;
    assert_eq!(done.status, TaskStatus::Failed, "{done:?}");
    assert!(done.error.as_ref().unwrap().contains("tolerates 0"), "{:?}", done.error);
}

/// A quorum that can no longer be reached fails the task at once, with the reason, and
/// no further agent is called.
pub async fn an_unreachable_quorum_fails_at_once<S: EngineStore + Clone, Q: MessageQueue>(h: &Harness<S, Q>) {
    let broken = h.agent("broken", Behaviour::AlwaysFail, &[]).await;
    let later: Vec<String> = some(h, "later", 3, reply("x")).await;
    let mut members = vec![json!({"agent": broken})];
    members.extend(later.iter().map(|a| json!({"agent": a})));
    let squad = json!({
        "members": members,
        "aggregation": {"method": "quorum", "quorum": 4, "compare": "/answer"},
        "limits": {"max_concurrency": 1},
        "on_failure": {"retries": 0, "tolerate": 0},
    });
    let done = h.drive_task(&h.start_squad(squad, json!({})).await.id, false).await;
    assert_eq!(done.status, TaskStatus::Failed, "{done:?}");
    assert!(done.error.as_ref().unwrap().contains("fail"), "{:?}", done.error);
    for agent in &later {
        assert_eq!(h.calls_of(agent), 0, "no agent is called once the quorum is out of reach");
    }
}

/// Round 2 members receive round 1's answers; a round that reaches the aggregation ends
/// the task.
pub async fn rounds_share_answers_and_stop_early<S: EngineStore + Clone, Q: MessageQueue>(h: &Harness<S, Q>) {
    let steady = h.agent("steady", reply("yes"), &[]).await;
    let convinced = h
        .agent("convinced", Behaviour::Reply(vec![json!({"answer": "no"}), json!({"answer": "yes"})]), &[])
        .await;
    let squad = json!({
        "members": [{"agent": steady}, {"agent": convinced}],
        "collaboration": {"rounds": 3},
        "aggregation": {"method": "unanimous", "compare": "/answer"},
    });
    let done = h.drive_task(&h.start_squad(squad, json!({"q": 1})).await.id, false).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    assert_eq!((done.round, done.rounds.len()), (2, 2), "round 2 reached it; no round 3");
    assert!(done.rounds[0].outcome.starts_with("impossible"), "{:?}", done.rounds[0]);
    let calls = h.agents.calls(&convinced);
    assert_eq!(calls.len(), 2);
    assert!(calls[0].get("previous_round").is_none());
    let previous = calls[1]["previous_round"].as_array().unwrap();
    let answers: Vec<(&Value, &Value)> =
        previous.iter().map(|p| (&p["slot"], &p["answer"]["answer"])).collect();
    assert_eq!(answers, [(&json!(0), &json!("yes")), (&json!(1), &json!("no"))]);
}

/// A race: the first success wins, and no member is started after the win.
pub async fn race_takes_the_first_success<S: EngineStore + Clone, Q: MessageQueue>(h: &Harness<S, Q>) {
    let fast = h.agent("fast", reply("first"), &[]).await;
    let others: Vec<String> = some(h, "slow", 3, reply("other")).await;
    let mut members = vec![json!({"agent": fast})];
    members.extend(others.iter().map(|a| json!({"agent": a})));
    let squad =
        json!({"members": members, "distribution": {"mode": "race"}, "limits": {"max_concurrency": 1}});
    let done = h.drive_task(&h.start_squad(squad, json!({})).await.id, false).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    assert_eq!(done.result.as_ref().unwrap()["answer"], "first");
    for agent in &others {
        assert_eq!(h.calls_of(agent), 0, "nothing starts after the win");
    }
}

/// Validators judge every answer; the best accepted one wins.
pub async fn validators_pick_the_best_accepted_answer<S: EngineStore + Clone, Q: MessageQueue>(
    h: &Harness<S, Q>,
) {
    let a = h.agent("writer-a", reply("short"), &[]).await;
    let b = h.agent("writer-b", reply("long"), &[]).await;
    let c = h.agent("writer-c", reply("wrong"), &[]).await;
    let judge = h
        .agent(
            "judge",
            Behaviour::Judge { accept: vec![json!("short"), json!("long")], scores: vec![0.4, 0.9] },
            &[],
        )
        .await;
    let squad = json!({
        "members": [{"agent": a}, {"agent": b}, {"agent": c}, {"agent": judge, "role": "validator"}],
        "aggregation": {"method": "validator", "compare": "/answer"},
    });
    let done = h.drive_task(&h.start_squad(squad, json!({})).await.id, false).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{done:?}");
    assert_eq!(done.result.as_ref().unwrap()["answer"], "long");
    assert_eq!(h.calls_of(&judge), 3, "one judgement per answer");
}

/// Cancel: nothing new starts, and a cancelled task cannot be cancelled again.
pub async fn cancel_stops_the_task<S: EngineStore + Clone, Q: MessageQueue>(h: &Harness<S, Q>) {
    let agents: Vec<String> = some(h, "c", 3, reply("x")).await;
    let squad = json!({"members": agents.iter().map(|a| json!({"agent": a})).collect::<Vec<_>>()});
    let task = h.start_squad(squad, json!({})).await;
    let cancelled = h.engine.cancel_task(&task.id).await.expect("cancel");
    assert_eq!(cancelled.status, TaskStatus::Cancelled);
    assert!(h.engine.cancel_task(&task.id).await.is_err(), "already ended");
    let done = h.drive_task(&task.id, false).await;
    assert_eq!(done.status, TaskStatus::Cancelled);
    for agent in &agents {
        assert_eq!(h.calls_of(agent), 0, "nothing starts after a cancel");
    }
    let TaskView { assignments, .. } = h.engine.task_view(&task.id).await.unwrap();
    assert!(assignments.iter().all(|a| a.status == AssignmentStatus::Cancelled), "{assignments:?}");
}

/// A split of `n` items over four workers, two at a time each: every item processed
/// exactly once, never more than two calls under way per worker (counted by the agents),
/// and the results in input order.
pub async fn split_shares_the_items_exactly_once<S: EngineStore + Clone, Q: MessageQueue>(
    h: &Harness<S, Q>,
    n: usize,
) {
    let work = Behaviour::Work { over: "items".into(), millis: 2 };
    let workers = some(h, "worker", 4, work).await;
    let squad = json!({
        "members": workers.iter().map(|w| json!({"agent": w})).collect::<Vec<_>>(),
        "distribution": {"mode": "split", "over": "items"},
        "aggregation": {"compare": "/answer"},
        "limits": {"max_per_member": 2, "max_concurrency": 100},
    });
    let items: Vec<Value> = (0..n).map(|i| json!(format!("item-{i}"))).collect();
    let task = h.start_squad(squad, json!({"items": items, "note": "kept"})).await;
    let done = h.drive_task_within(&task.id, false, Duration::from_secs(180)).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?} {:?}", done.status, done.error);
    assert_eq!(done.result, Some(Value::Array(items.clone())), "results in input order");
    let mut seen = std::collections::HashMap::new();
    for worker in &workers {
        assert!(h.agents.most_at_once(worker) <= 2, "{worker}: {} at once", h.agents.most_at_once(worker));
        for call in h.agents.calls(worker) {
            assert_eq!(call["inputs"]["note"], "kept", "the rest of the input travels with each item");
            *seen.entry(call["inputs"]["items"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.len(), n, "every item processed");
    assert!(seen.values().all(|&times| times == 1), "each exactly once");
    assert_eq!(done.finished as usize, n);
}

/// `least_loaded` gives more items to the worker that finishes sooner.
pub async fn least_loaded_favours_the_faster_worker<S: EngineStore + Clone, Q: MessageQueue>(
    h: &Harness<S, Q>,
) {
    let fast = h.agent("fast", Behaviour::Work { over: "items".into(), millis: 1 }, &[]).await;
    // Slow enough that the store's own time per item (milliseconds on moto, more when
    // the machine is busy) does not even the two out.
    let slow = h.agent("slow", Behaviour::Work { over: "items".into(), millis: 400 }, &[]).await;
    let squad = json!({
        "members": [{"agent": slow}, {"agent": fast}],
        "distribution": {"mode": "split", "over": "items", "strategy": "least_loaded"},
        "limits": {"max_per_member": 1},
    });
    let items: Vec<Value> = (0..24).map(|i| json!(i)).collect();
    let done =
        h.drive_task_within(&h.start_squad(squad, json!({"items": items})).await.id, false, LIMIT).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let (fast_calls, slow_calls) = (h.calls_of(&fast), h.calls_of(&slow));
    assert_eq!(fast_calls + slow_calls, 24);
    assert!(fast_calls > slow_calls, "the faster worker takes more: {fast_calls} against {slow_calls}");
}

/// `least_loaded` counts what message routing has in flight on each worker's agent: of two
/// idle workers, the one whose agent is busy elsewhere gets nothing while the other has
/// room.
pub async fn least_loaded_counts_the_load_elsewhere<S: EngineStore + Clone, Q: MessageQueue>(
    h: &Harness<S, Q>,
) {
    let busy = h.agent("busy", Behaviour::Work { over: "items".into(), millis: 1 }, &[]).await;
    let idle = h.agent("idle", Behaviour::Work { over: "items".into(), millis: 1 }, &[]).await;
    let now = jiff::Timestamp::now();
    for holder in 0..3 {
        let until = now + jiff::SignedDuration::from_hours(1);
        let taken = h.engine.store().acquire_slot(&busy, &format!("message-{holder}"), 10, now, until).await;
        assert_eq!(taken.ok(), Some(true), "message routing holds a slot of the busy agent");
    }
    let squad = json!({
        "members": [{"agent": busy}, {"agent": idle}],
        "distribution": {"mode": "split", "over": "items", "strategy": "least_loaded"},
        "limits": {"max_per_member": 1, "max_concurrency": 1},
    });
    let items: Vec<Value> = (0..6).map(|i| json!(i)).collect();
    let done =
        h.drive_task_within(&h.start_squad(squad, json!({"items": items})).await.id, false, LIMIT).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    assert_eq!((h.calls_of(&busy), h.calls_of(&idle)), (0, 6), "every item goes to the idle agent");
    for holder in 0..3 {
        h.engine.store().release_slot(&busy, &format!("message-{holder}")).await.expect("release");
    }
}

/// A workflow run that ends while its squad step runs cancels the step's task: the
/// assignments not started are cancelled, and no agent is called after.
pub async fn a_run_that_ends_cancels_its_squad_task<S: EngineStore + Clone, Q: MessageQueue>(
    h: &Harness<S, Q>,
) {
    let worker = h.agent("worker", Behaviour::Work { over: "items".into(), millis: 100 }, &[]).await;
    let squad = json!({
        "id": crate::unique("sq"), "version": "1",
        "members": [{"agent": worker}],
        "distribution": {"mode": "split", "over": "items"},
        "limits": {"max_concurrency": 1},
    });
    let loaded = squads::load(&squad.to_string(), Format::Json).expect("a valid squad");
    let (stored, _) = h.engine.put_squad(loaded).await.expect("store squad");
    let workflow = json!({"name": "squad-step", "steps": [{
        "id": "split", "name": "Split", "type": "squad", "parameters": {"squad": stored.id},
        "inputs": ["items"], "outputs": ["results"],
    }]});
    let items: Vec<Value> = (0..50).map(|i| json!(i)).collect();
    let run = h.start(workflow, json!({"items": items})).await;
    // The step's first delivery starts its task.
    let delivery = h.receive_task_of(&run.id).await;
    let outcome = h.engine.process(&delivery).await;
    assert_eq!(
        outcome,
        Outcome::Done,
        "a squad step's message does not wait on the queue: the task's end wakes it"
    );
    h.engine.queue().settle(STEP_QUEUE, &delivery, outcome).await.expect("settle");
    let task_id = ParentStep { run_id: run.id.clone(), step_id: "split".into(), attempt: 1 }.task_id();
    assert!(h.engine.store().get_task(&task_id).await.expect("get").is_some(), "the step started its task");

    h.engine.cancel_run(&run.id).await.expect("cancel the run");
    let done = h.drive_task(&task_id, false).await;
    assert_eq!(done.status, TaskStatus::Cancelled, "{done:?}");
    let why = done.error.unwrap_or_default();
    assert!(why.contains(&run.id) && why.ends_with("cancelled"), "{why}");
    let calls = h.calls_of(&worker);
    assert!(calls < 50, "the task stopped before its items ran out: {calls} calls");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.calls_of(&worker), calls, "no call after the task was cancelled");
    // The task's end wakes the step, which ends with its run.
    for _ in 0..100 {
        if h.steps(&run.id).await["split"].0 == tdev_domain::runs::StepStatus::Cancelled {
            break;
        }
        for delivery in h.engine.queue().receive(STEP_QUEUE, 10, Duration::from_secs(30)).await.unwrap() {
            let outcome = h.engine.process(&delivery).await;
            h.engine.queue().settle(STEP_QUEUE, &delivery, outcome).await.expect("settle");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.steps(&run.id).await["split"].0, tdev_domain::runs::StepStatus::Cancelled);
}

/// A result larger than a task may keep (a split of many large answers) fails the task
/// with the reason; every answer stays on its assignment.
pub async fn a_result_too_large_fails_the_task<S: EngineStore + Clone, Q: MessageQueue>(h: &Harness<S, Q>) {
    let big = "x".repeat(3_000);
    let worker = h.agent("wordy", Behaviour::Reply(vec![json!({"answer": big})]), &[]).await;
    let squad = json!({
        "members": [{"agent": worker}],
        "distribution": {"mode": "split", "over": "items"},
        "limits": {"max_per_member": 8, "max_concurrency": 8},
    });
    let items: Vec<Value> = (0..90).map(|i| json!(i)).collect();
    let task = h.start_squad(squad, json!({"items": items})).await;
    let done = h.drive_task_within(&task.id, false, LIMIT).await;
    assert_eq!(done.status, TaskStatus::Failed, "{done:?}");
    assert_eq!(done.result, None);
    let why = done.error.unwrap_or_default();
    assert!(why.contains("a task's result may be at most 262144"), "{why}");
    let TaskView { assignments, .. } = h.engine.task_view(&task.id).await.unwrap();
    assert_eq!(assignments.iter().filter(|a| a.status == AssignmentStatus::Succeeded).count(), 90);
}

/// A task's watch comes back every minute for as long as the task runs, and the queue
/// dead-letters a message received too often: a watch received many times sends its next
/// generation and ends. A watch sent before its task is recorded waits a little for it.
pub async fn a_watch_renews_itself_and_waits_for_its_task<S: EngineStore + Clone, Q: MessageQueue>(
    h: &Harness<S, Q>,
) {
    let watch = |task_id: &str, receive_count: u32| Delivery {
        message_id: crate::unique("watch"),
        receipt: "never-received".into(),
        group: format!("{task_id}/watch"),
        dedup_id: format!("{task_id}/watch"),
        body: serde_json::to_string(&Task::TaskWatch { task_id: task_id.into(), generation: 0 }).unwrap(),
        priority: Default::default(),
        attributes: Default::default(),
        receive_count,
        sent_at: jiff::Timestamp::now(),
        reclaimed: false,
    };
    let missing = crate::unique("task");
    assert!(
        matches!(h.engine.process(&watch(&missing, 1)).await, Outcome::RetryAfter(_)),
        "a watch that finds no task yet waits for it"
    );
    assert_eq!(h.engine.process(&watch(&missing, 5)).await, Outcome::Done, "but not for ever");

    let worker = h.agent("worker", Behaviour::Work { over: "items".into(), millis: 1 }, &[]).await;
    let squad = json!({
        "members": [{"agent": worker}],
        "distribution": {"mode": "split", "over": "items"},
    });
    let task = h.start_squad(squad, json!({"items": [1, 2, 3]})).await;
    let often = watch(&task.id, tdev_domain::runs::STEP_MAX_RECEIVES / 2);
    assert_eq!(h.engine.process(&often).await, Outcome::Done, "a watch received often ends");
    let renewed = Task::TaskWatch { task_id: task.id.clone(), generation: 1 };
    let mut found = false;
    for _ in 0..50 {
        for delivery in h.engine.queue().receive(STEP_QUEUE, 10, Duration::from_secs(30)).await.unwrap() {
            found |= serde_json::from_str::<Task>(&delivery.body).is_ok_and(|t| t == renewed);
            h.engine
                .queue()
                .settle(STEP_QUEUE, &delivery, Outcome::RetryAfter(Duration::ZERO))
                .await
                .unwrap();
        }
        if found {
            break;
        }
    }
    assert!(found, "after sending its next generation");
    assert_eq!(h.drive_task(&task.id, false).await.status, TaskStatus::Succeeded);
}

/// lead_plans: the lead's plan runs on the workers, the lead receives the results, and
/// its synthesis is the answer; all of it recorded.
pub async fn lead_plans_the_workers_run_it_and_the_lead_synthesizes<
    S: EngineStore + Clone,
    Q: MessageQueue,
>(
    h: &Harness<S, Q>,
) {
    let lead = h.agent("lead", Behaviour::Lead { subtasks: 3 }, &[]).await;
    let workers = some(h, "part-worker", 2, Behaviour::Work { over: "part".into(), millis: 1 }).await;
    let mut members = vec![json!({"agent": lead, "role": "lead"})];
    members.extend(workers.iter().map(|w| json!({"agent": w})));
    let squad = json!({"members": members, "distribution": {"mode": "lead_plans"}});
    let done = h.drive_task(&h.start_squad(squad, json!({"topic": "t"})).await.id, false).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    assert_eq!(done.result.as_ref().unwrap()["answer"], "3 parts: 0, 1, 2");
    let calls = h.agents.calls(&lead);
    assert_eq!(calls.len(), 2, "plan, then synthesize");
    assert_eq!(calls[1]["results"].as_array().unwrap().len(), 3, "the lead receives every result");
    let TaskView { assignments, .. } = h.engine.task_view(&done.id).await.unwrap();
    let ids: Vec<&str> = assignments.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["plan-g0", "sub0000-g0", "sub0001-g0", "sub0002-g0", "synth-g0"]);
    assert_eq!(h.calls_of(&workers[0]) + h.calls_of(&workers[1]), 3);
}
