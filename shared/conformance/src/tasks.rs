//! What every `TaskStore` promises, races and long listings included.

use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt as _, TryStreamExt as _};
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use tdev_domain::events::{Event, EventFilter, EventStore};
use tdev_domain::ports::StoreError;
use tdev_domain::runs::{
    Assignment, AssignmentKind, AssignmentStatus, ParentStep, Replacement, RoundOutcome, Seat, SeatVote,
    SquadTask, TaskFilter, TaskStatus, TaskStore,
};
use tdev_domain::squads::{Method, Role, Tally, TallyEntry};

/// Assignments made for one task: more than one DynamoDB page (1 MB) holds.
const MANY: u32 = 1_100;

fn at(offset: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + offset).unwrap()
}

fn tally() -> Tally {
    Tally {
        method: Method::Weighted,
        answers: vec![
            TallyEntry { value: json!({"verdict": "approve"}), votes: 5, members: vec![0, 2] },
            TallyEntry { value: json!("reject"), votes: 1, members: vec![1] },
        ],
        failed: vec![3],
        pending: vec![],
        winner: Some(0),
        tie: None,
    }
}

fn seat(slot: u32, agent: &str, role: Role) -> Seat {
    Seat {
        slot,
        agent: agent.into(),
        role,
        weight: slot + 1,
        capabilities: vec!["review".into(), "rust".into()],
        generation: 0,
    }
}

/// A task as a broadcast squad leaves it after a round, a replacement and a tally.
fn task(id: &str, squad_id: &str, offset: i64) -> SquadTask {
    SquadTask {
        id: id.into(),
        squad_id: squad_id.into(),
        squad_version: "1.0.0".into(),
        status: TaskStatus::Running,
        round: 2,
        seats: vec![
            seat(0, "reviewer-a", Role::Worker),
            Seat { generation: 1, ..seat(1, "reviewer-c", Role::Worker) },
            seat(2, "judge", Role::Validator),
        ],
        replacements: vec![Replacement {
            slot: 1,
            replaced: "reviewer-b".into(),
            by: "reviewer-c".into(),
            reason: "circuit open".into(),
            at: at(offset + 1),
        }],
        handed_out: 3,
        finished: 1,
        finished_items: vec![0b10],
        finished_base: 64,
        in_flight: vec![1, 1, 0],
        assigned: vec![2, 1, 0],
        round_handed_out: 2,
        votes: vec![
            SeatVote { slot: 0, generation: 0, key: Some("5f0c3a".into()), at: 1_733_500_000_000_000 },
            SeatVote { slot: 1, generation: 1, key: None, at: 1_733_500_000_000_001 },
        ],
        rounds: vec![RoundOutcome { round: 1, outcome: "impossible: no majority".into(), tally: tally() }],
        result: None,
        tally: Some(tally()),
        error: None,
        parent: Some(ParentStep { run_id: "run-1".into(), step_id: "review".into(), attempt: 2 }),
        created_at: at(offset),
        deadline: at(offset + 600),
        finished_at: None,
        version: 1,
    }
}

/// What a task is started with: a diff, and items enough to make it about `bytes` long.
fn input(bytes: usize) -> Map<String, Value> {
    let items: Vec<Value> = (0..bytes / 20).map(|i| json!(format!("item {i:>12}"))).collect();
    Map::from_iter([("diff".to_owned(), json!("--- a/x.rs\n+++ b/x.rs")), ("items".to_owned(), json!(items))])
}

/// Assignment `id` for item `item`, with a reply of about `reply_bytes` bytes.
fn assignment(id: &str, item: u32, agent: &str, reply_bytes: usize) -> Assignment {
    Assignment {
        id: id.into(),
        kind: AssignmentKind::Answer,
        round: 1,
        slot: item % 3,
        item: Some(item),
        agent: agent.into(),
        status: AssignmentStatus::Queued,
        attempts: 0,
        queued_at: at(i64::from(item)),
        started_at: None,
        finished_at: None,
        result: (reply_bytes > 0).then(|| json!({"text": "x".repeat(reply_bytes), "item": item})),
        error: None,
        vote: None,
        late: false,
        version: 1,
    }
}

fn ids<'a>(records: impl IntoIterator<Item = &'a SquadTask>) -> Vec<&'a str> {
    records.into_iter().map(|task| task.id.as_str()).collect()
}

/// Tasks round-trip, update only from the version read (one of racing writers wins),
/// list newest first with filters; assignments are created once however many try, update
/// only from the version read, and list by id, all of them, apart per task.
pub async fn tasks<S: TaskStore + EventStore>(store: Arc<S>) {
    task_records(store.clone()).await;
    assignments(store.clone()).await;
    listing(&*store).await;
}

/// And the events a write takes go with it, not with a refused one.
async fn task_records<S: TaskStore + EventStore>(store: Arc<S>) {
    let first = task(&super::unique("task"), &super::unique("squad"), 0);
    let tag = super::unique("told");
    let told = |what: &str| Event::new(&format!("{tag}.{what}"), &first.id, Timestamp::now(), json!({}));
    // The largest input a task may have, kept apart from the record.
    let started_with = input(tdev_domain::runs::MAX_TASK_INPUT_BYTES - 1024);
    store.create_task(&first, &started_with, &[told("created")]).await.expect("create task");
    let again = store.create_task(&first, &input(100), &[told("created-twice")]).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "task ids are unique: {again:?}");
    assert_eq!(store.get_task(&first.id).await.expect("get task"), Some(first.clone()), "round trip");
    let kept = store.get_task_input(&first.id).await.expect("get input");
    assert_eq!(kept.as_ref(), Some(&started_with), "the input round-trips, and a second create leaves it");
    assert_eq!(store.get_task("no-such-task").await.expect("get missing"), None);
    assert_eq!(store.get_task_input("no-such-task").await.expect("get missing input"), None);

    let next = SquadTask { round: 3, version: 2, ..first.clone() };
    store.update_task(&next, &[told("updated")]).await.expect("update from version 1");
    let stale = SquadTask { error: Some("late".into()), ..next.clone() };
    assert!(
        matches!(store.update_task(&stale, &[told("stale")]).await, Err(StoreError::Conflict(_))),
        "version 1 is gone"
    );
    let filter = EventFilter { pattern: Some(format!("{tag}.*")), limit: 10, ..EventFilter::default() };
    let mut kinds: Vec<String> =
        store.list_events(&filter).await.expect("events").into_iter().map(|e| e.kind).collect();
    kinds.sort();
    assert_eq!(kinds, [format!("{tag}.created"), format!("{tag}.updated")], "with their writes only");
    let missing = SquadTask { id: super::unique("never-created"), ..next.clone() };
    assert!(
        matches!(store.update_task(&missing, &[]).await, Err(StoreError::Conflict(_))),
        "no task to update"
    );
    assert_eq!(store.get_task(&first.id).await.expect("get").expect("stored"), next);
    let kept = store.get_task_input(&first.id).await.expect("get input");
    assert_eq!(kept.as_ref(), Some(&started_with), "updates leave the input as it was");

    // Eight workers read version 2 at once and each writes its own version 3: one wins.
    let writers: Vec<SquadTask> = (0..8)
        .map(|i| SquadTask {
            status: TaskStatus::Succeeded,
            result: Some(json!({"writer": i})),
            finished_at: Some(at(30)),
            version: 3,
            ..next.clone()
        })
        .collect();
    let attempts = writers.iter().cloned().map(|task| {
        let store = store.clone();
        async move { store.update_task(&task, &[]).await }
    });
    let won = super::race(attempts, "update_task").await;
    assert_eq!(won.len(), 1, "exactly one of the racing writers wins");
    let stored = store.get_task(&first.id).await.expect("get");
    assert_eq!(stored.as_ref(), Some(&writers[won[0]]), "the winner is stored");
}

async fn assignments<S: TaskStore>(store: Arc<S>) {
    let squad = super::unique("squad");
    let owner = task(&super::unique("task"), &squad, 0);
    // An id that begins with the other's: the two must not mix.
    let neighbour = task(&format!("{}-b", owner.id), &squad, 1);
    store.create_task(&owner, &input(0), &[]).await.expect("create task");
    store.create_task(&neighbour, &input(0), &[]).await.expect("create neighbour");

    // Ten workers make the same assignment at once: exactly one does.
    let makers: Vec<Assignment> =
        (0..10).map(|i| assignment("judge-s0002-r01", 2, &format!("judge-{i}"), 0)).collect();
    let attempts = makers.iter().cloned().map(|made| {
        let store = store.clone();
        let task_id = owner.id.clone();
        async move { store.create_assignment(&task_id, &made).await }
    });
    let won = super::race(attempts, "create_assignment").await;
    assert_eq!(won.len(), 1, "exactly one worker makes the assignment");
    let judge = makers[won[0]].clone();
    assert_eq!(
        store.get_assignment(&owner.id, &judge.id).await.expect("get assignment"),
        Some(judge.clone()),
        "the winner's assignment is stored"
    );
    assert_eq!(store.get_assignment(&owner.id, "i999999").await.expect("get missing"), None);
    assert_eq!(store.get_assignment(&neighbour.id, &judge.id).await.expect("get elsewhere"), None);

    let started = Assignment {
        status: AssignmentStatus::Running,
        attempts: 1,
        started_at: Some(at(5)),
        version: 2,
        ..judge.clone()
    };
    store.update_assignment(&owner.id, &started, &[]).await.expect("start");
    assert!(
        matches!(store.update_assignment(&owner.id, &started, &[]).await, Err(StoreError::Conflict(_))),
        "version 1 is gone"
    );
    assert!(
        matches!(store.update_assignment(&neighbour.id, &started, &[]).await, Err(StoreError::Conflict(_))),
        "no such assignment in the other task"
    );
    let done = Assignment {
        status: AssignmentStatus::Succeeded,
        finished_at: Some(at(6)),
        result: Some(json!({"verdict": "approve", "scores": [0.9, 0.7]})),
        late: true,
        version: 3,
        ..started
    };
    store.update_assignment(&owner.id, &done, &[]).await.expect("finish");
    assert_eq!(store.get_assignment(&owner.id, &done.id).await.expect("get"), Some(done.clone()));

    // More than a page of split items, made out of order and a few at a time; the
    // neighbour has some of the same ids.
    let items: Vec<Assignment> =
        (0..MANY).map(|i| assignment(&format!("i{i:06}"), i, "worker", 1_200)).collect();
    let made = Instant::now();
    futures::stream::iter(items.iter().rev())
        .map(|item| store.create_assignment(&owner.id, item))
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .expect("create the items");
    let made = made.elapsed();
    let theirs = [assignment("i000001", 1, "other", 10), assignment("plan", 0, "lead", 0)];
    for assignment in &theirs {
        store.create_assignment(&neighbour.id, assignment).await.expect("the neighbour's");
    }

    let listing = Instant::now();
    let listed = store.list_assignments(&owner.id).await.expect("list assignments");
    let listing = listing.elapsed();
    eprintln!("{MANY} assignments: made in {made:?}, listed in {listing:?}");
    let mut expected = items.clone();
    expected.push(done);
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(listed.len(), expected.len(), "every assignment, on every page");
    let wrong = listed.iter().zip(&expected).position(|(read, made)| read != made);
    assert_eq!(wrong, None, "every assignment whole, by id: the first wrong one's index");
    assert_eq!(store.list_assignments(&neighbour.id).await.expect("list the neighbour's"), theirs);
    assert_eq!(store.list_assignments("no-such-task").await.expect("list missing"), Vec::new());
    assert_eq!(store.get_task(&owner.id).await.expect("get task"), Some(owner), "the task is apart");
}

async fn listing<S: TaskStore>(store: &S) {
    let squad = super::unique("squad");
    let other_squad = super::unique("squad");
    let oldest = task(&super::unique("task"), &squad, 0);
    let middle = task(&super::unique("task"), &other_squad, 10);
    let newest = task(&super::unique("task"), &squad, 20);
    for task in [&middle, &oldest, &newest] {
        store.create_task(task, &input(0), &[]).await.expect("create");
    }
    let failed = SquadTask {
        status: TaskStatus::Failed,
        error: Some("no majority".into()),
        version: 2,
        ..oldest.clone()
    };
    store.update_task(&failed, &[]).await.expect("fail the oldest");

    let everything = store.list_tasks(&TaskFilter::default()).await.expect("list all");
    let ours: Vec<&str> = ids(everything.iter().filter(|t| [&squad, &other_squad].contains(&&t.squad_id)));
    assert_eq!(ours, [&*newest.id, &*middle.id, &*oldest.id], "newest first");
    let is_newer = |pair: &[SquadTask]| pair[0].created_at >= pair[1].created_at;
    assert!(everything.windows(2).all(is_newer), "the whole list newest first");

    let of_squad = TaskFilter { squad_id: Some(squad.clone()), status: None };
    let listed = store.list_tasks(&of_squad).await.expect("list the squad's");
    assert_eq!(listed, [newest.clone(), failed.clone()], "one squad's, whole, newest first");

    let running = TaskFilter { squad_id: Some(squad.clone()), status: Some(TaskStatus::Running) };
    assert_eq!(store.list_tasks(&running).await.expect("list running"), std::slice::from_ref(&newest));
    let failures = TaskFilter { squad_id: None, status: Some(TaskStatus::Failed) };
    let listed = store.list_tasks(&failures).await.expect("list failed");
    assert!(listed.iter().all(|t| t.status == TaskStatus::Failed), "only failed tasks");
    assert!(listed.contains(&failed), "ours among them");
    let nobody = TaskFilter { squad_id: Some(super::unique("squad")), status: None };
    assert_eq!(store.list_tasks(&nobody).await.expect("list nobody's"), Vec::new());
}
