//! What every `RunStore` and `DefinitionStore` promises, races included.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, json};
use tdev_domain::events::{Event, EventFilter, EventStore};
use tdev_domain::ports::StoreError;
use tdev_domain::runs::{
    DefinitionKind, DefinitionStore, Run, RunFilter, RunStatus, RunStore, StepRun, StepStatus,
    StoredDefinition,
};

fn at(offset: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + offset).unwrap()
}

fn run(id: &str, workflow_id: &str, offset: i64) -> Run {
    Run {
        id: id.into(),
        workflow_id: workflow_id.into(),
        workflow_version: "1.0.0".into(),
        status: RunStatus::Running,
        inputs: Map::from_iter([("source".to_owned(), json!("s3://bucket/raw.csv"))]),
        created_at: at(offset),
        deadline: Some(at(offset) + SignedDuration::from_secs(600)),
        finished_at: None,
        error: None,
        version: 1,
    }
}

/// Runs round-trip, update only from the version read, list newest first with filters;
/// a step is created once however many try at the same moment. The events a write takes
/// are appended with it, and not when the write is refused.
pub async fn runs<S: RunStore + EventStore>(store: Arc<S>) {
    let workflow = super::unique("wf");
    let tag = super::unique("told");
    let told =
        |what: &str| Event::new(&format!("{tag}.{what}"), "run", Timestamp::now(), json!({"what": what}));
    let first = run(&super::unique("run"), &workflow, 0);
    let second = run(&super::unique("run"), &workflow, 10);
    store.create_run(&first, &[told("created")]).await.expect("create run");
    store.create_run(&second, &[]).await.expect("create second run");
    assert!(
        matches!(store.create_run(&first, &[told("created-twice")]).await, Err(StoreError::Conflict(_))),
        "run ids are unique"
    );
    let (read, steps) = store.get_run(&first.id).await.expect("get run").expect("stored");
    assert_eq!((read, steps), (first.clone(), Vec::new()));
    assert_eq!(store.get_run("no-such-run").await.expect("get missing"), None);

    let mut finished = first.clone();
    finished.status = RunStatus::Succeeded;
    finished.finished_at = Some(at(60));
    finished.version = 2;
    store
        .update_run(&finished, &[told("finished"), told("finished-too")])
        .await
        .expect("update from version 1");
    let stale = Run { error: Some("late".into()), ..finished.clone() };
    assert!(
        matches!(store.update_run(&stale, &[told("stale")]).await, Err(StoreError::Conflict(_))),
        "version 1 is gone"
    );
    assert_eq!(store.get_run(&first.id).await.expect("get").expect("stored").0, finished);

    let all = RunFilter { workflow_id: Some(workflow.clone()), status: None };
    let ids: Vec<String> = store.list_runs(&all).await.expect("list").into_iter().map(|r| r.id).collect();
    assert_eq!(ids, [second.id.clone(), first.id.clone()], "newest first");
    let running = RunFilter { workflow_id: Some(workflow.clone()), status: Some(RunStatus::Running) };
    let ids: Vec<String> =
        store.list_runs(&running).await.expect("list running").into_iter().map(|r| r.id).collect();
    assert_eq!(ids, std::slice::from_ref(&second.id));

    // Ten workers see the last parent finish at once: exactly one queues the step.
    let attempts = (0..10).map(|_| {
        let store = store.clone();
        let run_id = second.id.clone();
        let event = Event::new(&format!("{tag}.queued"), "run", Timestamp::now(), json!({}));
        async move { store.create_step(&run_id, &StepRun::queued("load", at(20)), &[event]).await }
    });
    let created = super::race(attempts, "create_step").await;
    assert_eq!(created.len(), 1, "exactly one worker makes a step ready");

    let queued = store.get_step(&second.id, "load").await.expect("get step").expect("created");
    assert_eq!(queued, StepRun::queued("load", at(20)));
    let running =
        StepRun { status: StepStatus::Running, attempts: 1, started_at: Some(at(21)), version: 2, ..queued };
    store.update_step(&second.id, &running, &[told("started")]).await.expect("start");
    assert!(
        matches!(
            store.update_step(&second.id, &running, &[told("started-twice")]).await,
            Err(StoreError::Conflict(_))
        ),
        "only once"
    );
    let done = StepRun {
        status: StepStatus::Succeeded,
        finished_at: Some(at(22)),
        outputs: Some(Map::from_iter([("clean_data".to_owned(), json!({"rows": [1, 2, 3], "ok": true}))])),
        version: 3,
        ..running
    };
    store.update_step(&second.id, &done, &[]).await.expect("finish");
    store.create_step(&second.id, &StepRun::queued("extract", at(5)), &[]).await.expect("another step");
    let filter = EventFilter { pattern: Some(format!("{tag}.*")), limit: 100, ..EventFilter::default() };
    let mut kinds: Vec<String> =
        store.list_events(&filter).await.expect("events").into_iter().map(|e| e.kind).collect();
    kinds.sort();
    let expected: Vec<String> = ["created", "finished", "finished-too", "queued", "started"]
        .iter()
        .map(|w| format!("{tag}.{w}"))
        .collect();
    assert_eq!(
        kinds, expected,
        "each written with its change, none with a refused one, one for the race's winner"
    );
    let (_, steps) = store.get_run(&second.id).await.expect("get").expect("stored");
    let ids: Vec<&str> = steps.iter().map(|s| s.step_id.as_str()).collect();
    assert_eq!(ids, ["extract", "load"], "steps by id");
    assert_eq!(steps[1], done, "outputs round-trip");
    assert_eq!(
        store.get_step(&second.id, "transform").await.expect("get waiting"),
        None,
        "no record: waiting"
    );
}

fn workflow(id: &str, version: &str, offset: i64, steps: usize) -> StoredDefinition {
    StoredDefinition {
        id: id.into(),
        version: version.into(),
        definition: json!({"id": id, "name": "n", "version": version, "steps": vec![json!({"id": "s"}); steps]}),
        content_hash: format!("hash-{version}-{steps}"),
        created_at: at(offset),
    }
}

/// Versions are immutable; the latest is the last stored.
pub async fn workflows<S: DefinitionStore>(store: &S) {
    let id = super::unique("workflow");
    let v1 = workflow(&id, "1.0.0", 0, 1);
    let v2 = workflow(&id, "1.1.0", 10, 2);
    store.put_definition(DefinitionKind::Workflow, &v1).await.expect("put v1");
    store.put_definition(DefinitionKind::Workflow, &v2).await.expect("put v2");
    store.put_definition(DefinitionKind::Workflow, &v1).await.expect("the same content again is harmless");
    let changed = workflow(&id, "1.0.0", 20, 3);
    assert!(
        matches!(
            store.put_definition(DefinitionKind::Workflow, &changed).await,
            Err(StoreError::Conflict(_))
        ),
        "versions are immutable"
    );
    assert_eq!(
        store.get_definition(DefinitionKind::Workflow, &id, Some("1.0.0")).await.expect("get v1"),
        Some(v1)
    );
    assert_eq!(
        store.get_definition(DefinitionKind::Workflow, &id, None).await.expect("get latest"),
        Some(v2)
    );
    assert_eq!(
        store
            .get_definition(DefinitionKind::Workflow, &id, Some("9.9.9"))
            .await
            .expect("get missing version"),
        None
    );
    assert_eq!(
        store.get_definition(DefinitionKind::Workflow, "no-such-workflow", None).await.expect("get missing"),
        None
    );
    kinds_apart(store).await;
    large_workflows(store).await;
}

/// A squad and a workflow may share an id and a version: each kind has its own versions.
async fn kinds_apart<S: DefinitionStore>(store: &S) {
    let id = super::unique("shared-id");
    let as_workflow = workflow(&id, "1", 0, 1);
    let as_squad = StoredDefinition {
        definition: json!({"id": id, "version": "1", "members": [{"agent": "a"}]}),
        content_hash: "squad-hash".into(),
        ..workflow(&id, "1", 5, 1)
    };
    assert_eq!(store.get_definition(DefinitionKind::Squad, &id, None).await.expect("get squad"), None);
    store.put_definition(DefinitionKind::Workflow, &as_workflow).await.expect("put the workflow");
    assert_eq!(
        store.get_definition(DefinitionKind::Squad, &id, None).await.expect("get squad"),
        None,
        "kinds apart"
    );
    store.put_definition(DefinitionKind::Squad, &as_squad).await.expect("the same id and version as a squad");
    assert_eq!(
        store.get_definition(DefinitionKind::Squad, &id, Some("1")).await.expect("get squad"),
        Some(as_squad.clone())
    );
    assert_eq!(
        store.get_definition(DefinitionKind::Squad, &id, None).await.expect("latest squad"),
        Some(as_squad)
    );
    assert_eq!(
        store.get_definition(DefinitionKind::Workflow, &id, None).await.expect("latest workflow"),
        Some(as_workflow)
    );
    let changed = StoredDefinition { content_hash: "other".into(), ..workflow(&id, "1", 9, 2) };
    assert!(
        matches!(store.put_definition(DefinitionKind::Squad, &changed).await, Err(StoreError::Conflict(_))),
        "squad versions are immutable too"
    );
}

/// A definition of `bytes` bytes or more: `metadata` holds text that differs per `seed`
/// (multi-byte characters included, so a split inside one would show).
pub fn large_definition(id: &str, version: &str, bytes: usize, seed: &str) -> serde_json::Value {
    let line = format!("{seed} — größer als ein DynamoDB-Eintrag, 400 KB ✓\n");
    let text = line.repeat(bytes / line.len() + 1);
    json!({"id": id, "name": "large", "version": version, "steps": [{"id": "s"}],
           "metadata": {"notes": text}})
}

fn large(id: &str, version: &str, offset: i64, seed: &str) -> StoredDefinition {
    StoredDefinition {
        definition: large_definition(id, version, 2 << 20, seed),
        content_hash: format!("hash-{version}-{seed}"),
        ..workflow(id, version, offset, 1)
    }
}

/// Definitions far larger than one DynamoDB item (400 KB): 2 MiB round-trips whole, is
/// immutable like any other, and writers racing to store the same version all succeed
/// while writers of other content all fail.
pub async fn large_workflows<S: DefinitionStore>(store: &S) {
    let id = super::unique("large-workflow");
    let v1 = large(&id, "1.0.0", 0, "first");
    let v2 = large(&id, "2.0.0", 10, "second");
    store.put_definition(DefinitionKind::Workflow, &v1).await.expect("put a 2 MiB definition");
    assert_eq!(
        store.get_definition(DefinitionKind::Workflow, &id, Some("1.0.0")).await.expect("get v1"),
        Some(v1.clone())
    );
    store.put_definition(DefinitionKind::Workflow, &v1).await.expect("the same content again is harmless");
    let other = large(&id, "1.0.0", 20, "other");
    assert!(
        matches!(store.put_definition(DefinitionKind::Workflow, &other).await, Err(StoreError::Conflict(_))),
        "immutable"
    );
    assert_eq!(
        store.get_definition(DefinitionKind::Workflow, &id, Some("1.0.0")).await.expect("get v1 again"),
        Some(v1.clone())
    );

    let same =
        futures::future::join_all((0..4).map(|_| store.put_definition(DefinitionKind::Workflow, &v2))).await;
    assert!(same.iter().all(Result::is_ok), "racing writers of the same content: {same:?}");
    assert_eq!(
        store.get_definition(DefinitionKind::Workflow, &id, None).await.expect("get latest"),
        Some(v2.clone())
    );

    let racers: Vec<StoredDefinition> =
        (0..4).map(|i| large(&id, "3.0.0", 30, &format!("racer {i}"))).collect();
    let raced =
        futures::future::join_all(racers.iter().map(|w| store.put_definition(DefinitionKind::Workflow, w)))
            .await;
    let winners: Vec<&StoredDefinition> =
        racers.iter().zip(&raced).filter(|(_, r)| r.is_ok()).map(|(w, _)| w).collect();
    assert_eq!(winners.len(), 1, "one of several contents wins a version: {raced:?}");
    assert_eq!(
        store.get_definition(DefinitionKind::Workflow, &id, Some("3.0.0")).await.expect("get v3"),
        Some(winners[0].clone())
    );
}
