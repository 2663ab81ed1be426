//! What `DeploymentStore` promises: records and their trail written together or not at
//! all, conditional transitions, listings newest first, write-once backups, and the
//! per-agent lock.
//!
//! Both backends also agree on what the port leaves open: a lock is held through its last
//! instant (`until == now` is still held), a transition of a deployment that does not
//! exist is a `Conflict`, and a listing with `limit` 0 is not limited.
//!
//! Every check names its agents and deployments with fresh ids, and listings are narrowed
//! to them, so runs can share a table.

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tdev_domain::agents::AgentTarget;
use tdev_domain::deploy::{
    AgentLock, Backup, Deployment, DeploymentEvent, DeploymentFilter, DeploymentKind, DeploymentStatus,
    DeploymentStore, RollbackReason, Snapshot,
};
use tdev_domain::ports::StoreError;

/// Runs every check.
pub async fn run_all<S: DeploymentStore>(store: &S) {
    round_trip(store).await;
    create_is_all_or_nothing(store).await;
    locks_on_create(store).await;
    transitions(store).await;
    listing(store).await;
    backups(store).await;
    locks(store).await;
}

fn base() -> Timestamp {
    // Nanoseconds on purpose: a backend must keep times exactly.
    Timestamp::from_nanosecond(1_700_000_000_123_456_789).unwrap()
}

fn secs(at: Timestamp, seconds: i64) -> Timestamp {
    at + SignedDuration::from_secs(seconds)
}

fn is_conflict<T>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict(_)))
}

/// A new deploy of `agent` (revision 1, pending) created at `at`.
fn deployment(agent: &str, at: Timestamp) -> Deployment {
    let spec = json!({ "name": agent, "target": { "kind": "local", "url": "http://127.0.0.1:9/" } });
    Deployment {
        id: super::unique("dep"),
        agent: agent.to_owned(),
        platform: "local".into(),
        kind: DeploymentKind::Deploy,
        status: DeploymentStatus::Pending,
        spec_hash: format!("{:064x}", 7),
        spec,
        version: None,
        previous_version: None,
        invoke_target: None,
        requested_by: "conformance".into(),
        created_at: at,
        updated_at: at,
        ended_at: None,
        deadline: secs(at, 1_800),
        error: None,
        rollback_reason: None,
        attempts: 0,
        revision: 1,
    }
}

/// The event of `deployment`'s latest change.
fn event(deployment: &Deployment, detail: &str) -> DeploymentEvent {
    DeploymentEvent {
        deployment_id: deployment.id.clone(),
        seq: deployment.revision,
        at: deployment.updated_at,
        status: deployment.status,
        detail: detail.to_owned(),
    }
}

/// `deployment` moved to `status` a second later: the next revision.
fn moved(deployment: &Deployment, status: DeploymentStatus) -> Deployment {
    Deployment {
        status,
        updated_at: secs(deployment.updated_at, 1),
        revision: deployment.revision + 1,
        ..deployment.clone()
    }
}

async fn create<S: DeploymentStore>(store: &S, deployment: &Deployment) {
    store
        .create_deployment(deployment, &event(deployment, "created"), deployment.created_at, None)
        .await
        .expect("create");
}

/// Every field comes back, a rollback's kind and an invoke target included.
pub async fn round_trip<S: DeploymentStore>(store: &S) {
    let agent = super::unique("agent");
    let mut record = deployment(&agent, base());
    record.kind = DeploymentKind::Rollback {
        to_version: "3".into(),
        reason: RollbackReason::HealthCheck,
        undoes: "dep-undone".into(),
    };
    record.status = DeploymentStatus::RollingBack;
    record.version = Some("3".into());
    record.previous_version = Some("4".into());
    record.invoke_target = Some(AgentTarget::BedrockAgent { agent_id: "AG1".into(), alias_id: "AL1".into() });
    record.ended_at = Some(secs(base(), 9));
    record.error = Some("the smoke test failed: 500".into());
    record.rollback_reason = Some(RollbackReason::Failure);
    record.attempts = 3;
    let first = event(&record, "requested");
    store.create_deployment(&record, &first, base(), Some(secs(base(), 600))).await.expect("create");
    assert_eq!(store.get_deployment(&record.id).await.expect("get"), Some(record.clone()), "round trip");
    assert_eq!(store.deployment_events(&record.id).await.expect("events"), vec![first], "its first event");

    let missing = super::unique("dep");
    assert_eq!(store.get_deployment(&missing).await.expect("get missing"), None);
    assert_eq!(store.deployment_events(&missing).await.expect("events of none"), vec![]);
}

/// A create that cannot be whole writes nothing: a taken id leaves the first record, its
/// trail and the other agent's lock alone; a held lock leaves no record and no event.
pub async fn create_is_all_or_nothing<S: DeploymentStore>(store: &S) {
    let t = base();
    let first = deployment(&super::unique("agent"), t);
    let first_event = event(&first, "created");
    store.create_deployment(&first, &first_event, t, Some(secs(t, 600))).await.expect("create");

    let other_agent = super::unique("agent");
    let mut same_id = deployment(&other_agent, secs(t, 1));
    same_id.id = first.id.clone();
    let again = store.create_deployment(&same_id, &event(&same_id, "again"), t, Some(secs(t, 600))).await;
    assert!(is_conflict(&again), "the id is taken: {again:?}");
    assert_eq!(store.get_deployment(&first.id).await.expect("get"), Some(first.clone()), "unchanged");
    assert_eq!(store.deployment_events(&first.id).await.expect("events"), vec![first_event], "unchanged");
    assert_eq!(store.get_lock(&other_agent).await.expect("lock"), None, "no lock taken for it");

    let blocked = deployment(&first.agent, secs(t, 2));
    let result =
        store.create_deployment(&blocked, &event(&blocked, "created"), secs(t, 2), Some(secs(t, 602))).await;
    assert!(is_conflict(&result), "the agent is locked: {result:?}");
    assert_eq!(store.get_deployment(&blocked.id).await.expect("get"), None, "no record");
    assert_eq!(store.deployment_events(&blocked.id).await.expect("events"), vec![], "no event");
}

/// One deployment per agent holds the lock until it passes; then another takes it over. A
/// create without a lock neither checks nor takes it.
pub async fn locks_on_create<S: DeploymentStore>(store: &S) {
    let t = base();
    let agent = super::unique("agent");
    let first = deployment(&agent, t);
    store.create_deployment(&first, &event(&first, "created"), t, Some(secs(t, 600))).await.expect("first");
    let held = AgentLock { agent: agent.clone(), holder: first.id.clone(), until: secs(t, 600) };
    assert_eq!(store.get_lock(&agent).await.expect("lock"), Some(held.clone()));

    let second = deployment(&agent, secs(t, 10));
    for now in [secs(t, 10), secs(t, 600)] {
        let result =
            store.create_deployment(&second, &event(&second, "created"), now, Some(secs(now, 600))).await;
        assert!(is_conflict(&result), "held until its last instant, at {now}: {result:?}");
    }
    assert_eq!(store.get_deployment(&second.id).await.expect("get"), None);
    assert_eq!(store.get_lock(&agent).await.expect("lock"), Some(held), "still the first's");

    let unlocked = deployment(&agent, secs(t, 20));
    store
        .create_deployment(&unlocked, &event(&unlocked, "rejected"), secs(t, 20), None)
        .await
        .expect("a create without the lock ignores it");
    assert_eq!(store.get_lock(&agent).await.expect("lock").map(|l| l.holder), Some(first.id.clone()));

    let later = secs(t, 601);
    store
        .create_deployment(&second, &event(&second, "created"), later, Some(secs(later, 600)))
        .await
        .expect("an expired lock is taken over");
    let taken = AgentLock { agent: agent.clone(), holder: second.id.clone(), until: secs(later, 600) };
    assert_eq!(store.get_lock(&agent).await.expect("lock"), Some(taken));
    assert!(store.get_deployment(&second.id).await.expect("get").is_some());
    let renew = store.renew_lock(&agent, &first.id, secs(later, 900)).await;
    assert!(is_conflict(&renew), "the first lost its lock: {renew:?}");
}

/// A transition at the next revision writes the record and appends its event; a stale or
/// skipped revision, or a missing record, changes nothing. Events come back by `seq`.
pub async fn transitions<S: DeploymentStore>(store: &S) {
    let created = deployment(&super::unique("agent"), base());
    create(store, &created).await;
    let mut trail = vec![event(&created, "created")];

    let validating = moved(&created, DeploymentStatus::Validating);
    let moved_event = event(&validating, "validating");
    store.transition(&validating, &moved_event).await.expect("transition");
    trail.push(moved_event);
    assert_eq!(store.get_deployment(&created.id).await.expect("get"), Some(validating.clone()));
    assert_eq!(store.deployment_events(&created.id).await.expect("events"), trail);

    let stale = moved(&created, DeploymentStatus::Failed);
    let skipped = moved(&moved(&validating, DeploymentStatus::BackingUp), DeploymentStatus::Deploying);
    for wrong in [&stale, &skipped] {
        let result = store.transition(wrong, &event(wrong, "wrong revision")).await;
        assert!(is_conflict(&result), "revision {}: {result:?}", wrong.revision);
        assert_eq!(store.get_deployment(&created.id).await.expect("get"), Some(validating.clone()));
        assert_eq!(store.deployment_events(&created.id).await.expect("events"), trail, "no event");
    }
    let ghost = moved(&deployment(&created.agent, base()), DeploymentStatus::Validating);
    let result = store.transition(&ghost, &event(&ghost, "ghost")).await;
    assert!(is_conflict(&result), "no such deployment: {result:?}");
    assert_eq!(store.get_deployment(&ghost.id).await.expect("get ghost"), None);
    assert_eq!(store.deployment_events(&ghost.id).await.expect("ghost events"), vec![]);

    // Past seq 9: a store that orders seq as text would put 10 before 2.
    let mut current = validating;
    while current.revision < 12 {
        current = moved(&current, DeploymentStatus::BackingUp);
        let next_event = event(&current, &format!("retry {}", current.revision));
        store.transition(&current, &next_event).await.expect("retry");
        trail.push(next_event);
    }
    assert_eq!(store.get_deployment(&created.id).await.expect("get"), Some(current));
    let events = store.deployment_events(&created.id).await.expect("events");
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=12).collect::<Vec<_>>());
    assert_eq!(events, trail);
}

/// Newest first (ties by id, descending), by agent and by status, with a limit; `limit` 0
/// lists everything.
pub async fn listing<S: DeploymentStore>(store: &S) {
    // Far ahead of every other check's records, so that this run's are the newest.
    let t = Timestamp::from_second(7_000_000_000).unwrap();
    let (agent, other) = (super::unique("agent"), super::unique("agent"));
    let oldest = deployment(&agent, t);
    let older = deployment(&agent, secs(t, 1));
    let (mut tie_a, mut tie_b) = (deployment(&agent, secs(t, 2)), deployment(&agent, secs(t, 2)));
    let tie = super::unique("dep");
    (tie_a.id, tie_b.id) = (format!("{tie}-a"), format!("{tie}-b"));
    let elsewhere = deployment(&other, secs(t, 3));
    for record in [&older, &tie_b, &oldest, &elsewhere, &tie_a] {
        create(store, record).await;
    }
    let mut validating = Vec::new();
    for record in [&older, &tie_a, &elsewhere] {
        let next = moved(record, DeploymentStatus::Validating);
        store.transition(&next, &event(&next, "validating")).await.expect("transition");
        validating.push(next);
    }
    let [older, tie_a, elsewhere] = <[Deployment; 3]>::try_from(validating).unwrap();

    let list = |agent: Option<&str>, status: Option<DeploymentStatus>, limit: usize| {
        let filter = DeploymentFilter { agent: agent.map(str::to_owned), status, limit };
        async move { store.list_deployments(&filter).await.expect("list") }
    };
    let ours = |listed: Vec<Deployment>| -> Vec<Deployment> {
        listed.into_iter().filter(|d| d.agent == agent || d.agent == other).collect()
    };

    let all = vec![tie_b.clone(), tie_a.clone(), older.clone(), oldest.clone()];
    assert_eq!(list(Some(&agent), None, 0).await, all, "newest first, ties by id, every field");
    assert_eq!(list(Some(&agent), None, 2).await, all[..2], "limited");
    assert_eq!(list(Some(&agent), None, 10).await, all, "a limit past the end");
    let by_status = vec![tie_a.clone(), older.clone()];
    assert_eq!(list(Some(&agent), Some(DeploymentStatus::Validating), 0).await, by_status, "by status");
    assert_eq!(list(Some(&agent), Some(DeploymentStatus::Validating), 1).await, by_status[..1]);
    assert_eq!(list(Some(&agent), Some(DeploymentStatus::Deployed), 0).await, vec![], "none match");
    assert_eq!(list(Some(&super::unique("agent")), None, 0).await, vec![], "an agent without any");

    let everyone = vec![elsewhere.clone(), tie_b.clone(), tie_a.clone(), older.clone(), oldest.clone()];
    assert_eq!(ours(list(None, None, 0).await), everyone, "every agent's, newest first");
    let validating = vec![elsewhere.clone(), tie_a, older];
    assert_eq!(ours(list(None, Some(DeploymentStatus::Validating), 0).await), validating);
    assert_eq!(
        list(None, Some(DeploymentStatus::Validating), 2).await,
        validating[..2],
        "by status, limited"
    );
    assert_eq!(list(None, None, 1).await, vec![elsewhere], "the newest of all");
}

/// A backup is written once and comes back whole; none is `None`.
pub async fn backups<S: DeploymentStore>(store: &S) {
    let id = super::unique("dep");
    assert_eq!(store.get_backup(&id).await.expect("get none"), None);
    let backup = Backup {
        deployment_id: id.clone(),
        agent: super::unique("agent"),
        taken_at: base(),
        snapshot: Some(Snapshot {
            serving_version: Some("7".into()),
            config: json!({ "agent": { "instruction": "be kind" }, "action_groups": [{ "name": "orders" }] }),
        }),
    };
    store.put_backup(&backup).await.expect("put");
    assert_eq!(store.get_backup(&id).await.expect("get"), Some(backup.clone()), "round trip");

    let replacement = Backup { snapshot: None, taken_at: secs(base(), 5), ..backup.clone() };
    let again = store.put_backup(&replacement).await;
    assert!(is_conflict(&again), "a backup is never replaced: {again:?}");
    assert_eq!(store.get_backup(&id).await.expect("get"), Some(backup), "the first kept");

    let nothing = Backup { deployment_id: super::unique("dep"), ..replacement };
    store.put_backup(&nothing).await.expect("put a backup of no agent");
    assert_eq!(store.get_backup(&nothing.deployment_id).await.expect("get"), Some(nothing.clone()));
}

/// Only the holder renews; release by anyone else leaves the lock; the holder's release
/// frees it, and releasing again is harmless.
pub async fn locks<S: DeploymentStore>(store: &S) {
    let t = base();
    let agent = super::unique("agent");
    assert_eq!(store.get_lock(&agent).await.expect("no lock"), None);
    store.release_lock(&agent, "nobody").await.expect("releasing no lock is harmless");
    let renew_none = store.renew_lock(&agent, "nobody", secs(t, 60)).await;
    assert!(is_conflict(&renew_none), "nobody holds it: {renew_none:?}");

    let holder = deployment(&agent, t);
    store
        .create_deployment(&holder, &event(&holder, "created"), t, Some(secs(t, 600)))
        .await
        .expect("create");
    store.renew_lock(&agent, &holder.id, secs(t, 900)).await.expect("the holder renews");
    let renewed = AgentLock { agent: agent.clone(), holder: holder.id.clone(), until: secs(t, 900) };
    assert_eq!(store.get_lock(&agent).await.expect("lock"), Some(renewed.clone()));

    let other = super::unique("dep");
    let stolen = store.renew_lock(&agent, &other, secs(t, 1_200)).await;
    assert!(is_conflict(&stolen), "only the holder renews: {stolen:?}");
    store.release_lock(&agent, &other).await.expect("a release by another is harmless");
    assert_eq!(store.get_lock(&agent).await.expect("lock"), Some(renewed), "and changes nothing");

    store.release_lock(&agent, &holder.id).await.expect("release");
    assert_eq!(store.get_lock(&agent).await.expect("released"), None);
    store.release_lock(&agent, &holder.id).await.expect("releasing again is harmless");
    let late = store.renew_lock(&agent, &holder.id, secs(t, 1_500)).await;
    assert!(is_conflict(&late), "a released lock is not renewed: {late:?}");
}
