//! The deployment pipeline end to end on the embedded backend and the local target, with
//! faults injected into the target: crashes between steps, unavailability, failures, and
//! preparations that never end.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tdev_domain::agents::AgentStore;
use tdev_domain::clock::{Clock, ManualClock, SystemClock};
use tdev_domain::deploy::{
    AgentDeployer, AgentSpec, DEPLOY_DEAD_LETTER_QUEUE, DEPLOY_MAX_RECEIVES, DEPLOY_QUEUE, DeployConfig,
    DeployError, DeployRequestError, Deployment, DeploymentEvent, DeploymentStatus, DeploymentStore,
    Deployments, PlatformKind, Published, Readiness, RollbackReason, Snapshot, Submitted,
};
use tdev_domain::ports::MessageQueue;
use tdev_domain::queue::Outcome;
use tdev_domain::queue::QueueSpec;
use tdev_embedded::{LocalPlatform, SqliteStore};
use tdev_invoke::{Invoker, default_http_client};

/// What the faulty target does on a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Works.
    None,
    /// Does the work, then the process dies before it can record it.
    CrashAfter,
    Unavailable,
    Failed,
    /// `prepare` never finishes.
    NeverReady,
    /// The resource is still changing after the call's own wait.
    Settling,
}

type Rule = Box<dyn FnMut(&str, usize) -> Fault + Send>;

/// The calls a target got, by operation name, in order.
type Calls = Arc<Mutex<Vec<String>>>;

/// The local target with faults: `rule(operation, call number)` decides each call.
struct Faulty {
    inner: LocalPlatform,
    calls: Calls,
    rule: Mutex<Rule>,
}

impl Faulty {
    fn new(inner: LocalPlatform, rule: impl FnMut(&str, usize) -> Fault + Send + 'static) -> Self {
        Self { inner, calls: Calls::default(), rule: Mutex::new(Box::new(rule)) }
    }

    fn fault(&self, operation: &str) -> Fault {
        let mut calls = self.calls.lock().unwrap();
        calls.push(operation.to_owned());
        let n = calls.len();
        drop(calls);
        (self.rule.lock().unwrap())(operation, n)
    }

    async fn around<T>(
        &self,
        operation: &str,
        work: impl Future<Output = Result<T, DeployError>>,
    ) -> Result<T, DeployError> {
        let fault = self.fault(operation);
        self.with(fault, operation, work).await
    }

    async fn with<T>(
        &self,
        fault: Fault,
        operation: &str,
        work: impl Future<Output = Result<T, DeployError>>,
    ) -> Result<T, DeployError> {
        match fault {
            Fault::Unavailable => Err(DeployError::Unavailable(format!("{operation}: throttled"))),
            Fault::Failed => Err(DeployError::Failed(format!("{operation}: access denied"))),
            Fault::Settling => Err(DeployError::Settling(format!("{operation}: the alias is UPDATING"))),
            Fault::CrashAfter => {
                let _ = work.await;
                panic!("injected crash after {operation}");
            }
            Fault::None | Fault::NeverReady => work.await,
        }
    }
}

impl AgentDeployer for Faulty {
    fn supports(&self, kind: PlatformKind) -> bool {
        self.inner.supports(kind)
    }
    async fn snapshot(&self, spec: &AgentSpec) -> Result<Option<Snapshot>, DeployError> {
        self.around("snapshot", self.inner.snapshot(spec)).await
    }
    async fn apply(&self, spec: &AgentSpec) -> Result<(), DeployError> {
        self.around("apply", self.inner.apply(spec)).await
    }
    async fn prepare(&self, spec: &AgentSpec) -> Result<Readiness, DeployError> {
        match self.fault("prepare") {
            Fault::NeverReady => Ok(Readiness::Pending("PREPARING".into())),
            fault => self.with(fault, "prepare", self.inner.prepare(spec)).await,
        }
    }
    async fn publish(&self, spec: &AgentSpec) -> Result<Published, DeployError> {
        self.around("publish", self.inner.publish(spec)).await
    }
    async fn point_to(&self, spec: &AgentSpec, version: &str) -> Result<Published, DeployError> {
        self.around("point_to", self.inner.point_to(spec, version)).await
    }
    async fn restore(&self, spec: &AgentSpec, snapshot: &Snapshot) -> Result<(), DeployError> {
        self.around("restore", self.inner.restore(spec, snapshot)).await
    }
}

type Pipeline = Deployments<SqliteStore, SqliteStore, Faulty, Invoker>;

struct World {
    pipeline: Arc<Pipeline>,
    calls: Calls,
    store: SqliteStore,
}

fn world_with(
    rule: impl FnMut(&str, usize) -> Fault + Send + 'static,
    clock: Arc<dyn Clock>,
    config: DeployConfig,
) -> World {
    let store = SqliteStore::in_memory().expect("store").with_queues([QueueSpec::with_dead_letter(
        DEPLOY_QUEUE,
        DEPLOY_DEAD_LETTER_QUEUE,
        DEPLOY_MAX_RECEIVES,
    )]);
    let target = Faulty::new(LocalPlatform::new(store.clone()), rule);
    let calls = target.calls.clone();
    let invoker = Invoker::new(default_http_client().expect("http"), None);
    let pipeline = Deployments::new(store.clone(), store.clone(), target, invoker, clock, config);
    World { pipeline: Arc::new(pipeline), calls, store }
}

fn quick() -> DeployConfig {
    DeployConfig { first_pause: Duration::from_millis(1), ..DeployConfig::default() }
}

fn world(rule: impl FnMut(&str, usize) -> Fault + Send + 'static) -> World {
    world_with(rule, Arc::new(SystemClock), quick())
}

fn works(_: &str, _: usize) -> Fault {
    Fault::None
}

fn spec(url: &str) -> Submitted {
    Submitted::from_value(json!({
        "name": "support-bot",
        "description": "Answers support questions",
        "target": {"kind": "local", "url": url},
        "register": {"id": "support-bot", "capabilities": ["support"]},
    }))
}

impl World {
    /// Works the deploy queue until it is empty: receive, process, settle. A crash (a
    /// panic in the target) loses the worker: its task is not settled and comes back
    /// after its visibility timeout, as on SQS.
    async fn drain(&self) -> usize {
        let mut crashes = 0;
        for _ in 0..10_000 {
            let batch =
                self.store.receive(DEPLOY_QUEUE, 1, Duration::from_millis(30)).await.expect("receive");
            let Some(delivery) = batch.into_iter().next() else {
                // Hidden tasks (a crashed worker's, or one waiting to poll) come back.
                tokio::time::sleep(Duration::from_millis(35)).await;
                if self.store.receive(DEPLOY_QUEUE, 1, Duration::ZERO).await.expect("peek").is_empty() {
                    return crashes;
                }
                continue;
            };
            let pipeline = self.pipeline.clone();
            let task = delivery.clone();
            match tokio::spawn(async move { pipeline.process(&task).await }).await {
                Ok(outcome) => {
                    let outcome = match outcome {
                        Outcome::RetryAfter(pause) => {
                            Outcome::RetryAfter(pause.min(Duration::from_millis(5)))
                        }
                        other => other,
                    };
                    self.pipeline.queue().settle(DEPLOY_QUEUE, &delivery, outcome).await.expect("settle");
                }
                Err(crash) if crash.is_panic() => crashes += 1,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("the queue never drained");
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    async fn deploy(&self, url: &str) -> String {
        self.pipeline.deploy(spec(url), "key-1", None).await.expect("queued").id
    }

    /// Deploys `A`, then `B` over it, each worked to its end; the id of `B`'s deployment.
    async fn update(&self) -> String {
        self.deploy(A).await;
        self.drain().await;
        let update = self.deploy(B).await;
        self.drain().await;
        update
    }

    async fn record(&self, id: &str) -> Deployment {
        self.pipeline.get(id).await.expect("get").expect("the deployment")
    }

    async fn events(&self, id: &str) -> Vec<DeploymentEvent> {
        self.store.deployment_events(id).await.expect("events")
    }

    async fn statuses(&self, id: &str) -> Vec<DeploymentStatus> {
        self.events(id).await.into_iter().map(|e| e.status).collect()
    }

    async fn serving_url(&self) -> String {
        let agent = self.store.get_agent("support-bot").await.expect("get").expect("registered");
        match agent.target {
            tdev_domain::agents::AgentTarget::Http { url } => url,
            other => panic!("{other:?}"),
        }
    }

    /// The trail is whole: seq 1, 2, 3, … and every move legal, ending where the record is.
    async fn assert_consistent(&self, id: &str) {
        let record = self.pipeline.get(id).await.unwrap().unwrap();
        let events = self.events(id).await;
        assert_eq!(events.len() as u64, record.revision, "{events:#?}");
        for (i, pair) in events.windows(2).enumerate() {
            assert_eq!(pair[0].seq + 1, pair[1].seq, "gap at {i}: {events:#?}");
            assert!(
                pair[0].status.can_move_to(pair[1].status),
                "{:?} → {:?}",
                pair[0].status,
                pair[1].status
            );
            assert!(pair[0].at <= pair[1].at);
        }
        assert_eq!(events.last().unwrap().status, record.status);
        assert!(record.status.is_terminal(), "{record:?}");
        assert!(self.store.get_lock(&record.agent).await.unwrap().is_none_or(|l| l.holder != record.id));
    }
}

const A: &str = "http://127.0.0.1:9/a";
const B: &str = "http://127.0.0.1:9/b";

#[tokio::test]
async fn a_deploy_goes_through_every_step_and_keeps_its_trail() {
    let w = world(works);
    let id = w.deploy(A).await;
    assert_eq!(w.drain().await, 0);
    use DeploymentStatus::*;
    assert_eq!(
        w.statuses(&id).await,
        [Pending, Validating, BackingUp, Deploying, Preparing, Versioning, Verifying, Deployed]
    );
    let record = w.pipeline.get(&id).await.unwrap().unwrap();
    assert_eq!((record.version.as_deref(), record.previous_version.as_deref()), (Some("1"), None));
    assert_eq!(record.requested_by, "key-1");
    assert!(record.ended_at.is_some() && record.error.is_none());
    assert_eq!(w.serving_url().await, A);
    assert_eq!(w.calls(), ["snapshot", "apply", "prepare", "publish"]);
    w.assert_consistent(&id).await;
    let backup = w.store.get_backup(&id).await.unwrap().unwrap();
    assert_eq!(backup.snapshot, None, "the agent did not exist before");
}

#[tokio::test]
async fn an_update_then_a_rollback_puts_the_previous_version_back() {
    let w = world(works);
    let first = w.deploy(A).await;
    w.drain().await;
    let second = w.deploy(B).await;
    w.drain().await;
    let record = w.pipeline.get(&second).await.unwrap().unwrap();
    assert_eq!((record.version.as_deref(), record.previous_version.as_deref()), (Some("2"), Some("1")));
    assert_eq!(w.serving_url().await, B);
    let backup = w.store.get_backup(&second).await.unwrap().unwrap().snapshot.unwrap();
    assert_eq!(backup.serving_version.as_deref(), Some("1"));

    let rollback = w.pipeline.rollback(&second, None, RollbackReason::Manual, "key-2", None).await.unwrap();
    w.drain().await;
    let rolled = w.pipeline.get(&rollback.id).await.unwrap().unwrap();
    assert_eq!(rolled.status, DeploymentStatus::RolledBack);
    assert_eq!(rolled.version.as_deref(), Some("1"));
    assert_eq!(w.serving_url().await, A);
    use DeploymentStatus::*;
    assert_eq!(w.statuses(&rollback.id).await, [Pending, BackingUp, RollingBack, RolledBack]);
    let detail = &w.events(&rollback.id).await[3].detail;
    assert!(detail.contains(&format!("restored the draft from the backup of {second}")), "{detail}");
    w.assert_consistent(&rollback.id).await;

    let history = w.pipeline.history("support-bot").await.unwrap();
    let versions: Vec<_> = history.iter().map(|v| (v.version.as_str(), v.kind, v.current)).collect();
    assert_eq!(versions, [("1", "rollback", true), ("2", "deploy", false), ("1", "deploy", false)]);
    assert_eq!(history[2].deployment_id, first);
    // Rolling back to a chosen version works the same way.
    let again = w
        .pipeline
        .rollback(&first, Some("2".into()), RollbackReason::ErrorRate, "key-2", None)
        .await
        .unwrap();
    w.drain().await;
    assert_eq!(w.pipeline.get(&again.id).await.unwrap().unwrap().version.as_deref(), Some("2"));
    assert_eq!(w.serving_url().await, B);
}

#[tokio::test]
async fn a_spec_over_the_size_limit_is_refused_before_the_target_is_called() {
    let w = world(works);
    let mut document = spec(A).document;
    document["description"] = json!("d".repeat(150));
    document["register"]["capabilities"] =
        json!((0..400).map(|i| format!("capability-{i}")).collect::<Vec<_>>());
    let Err(DeployRequestError::Invalid { errors, deployment: Some(id) }) =
        w.pipeline.deploy(Submitted::from_value(document), "key-1", None).await
    else {
        panic!("accepted")
    };
    let message = &errors.errors()[0].message;
    assert!(message.contains("the limit is 6656 bytes"), "{message}");
    assert!(w.calls().is_empty(), "the target was called: {:?}", w.calls());
    assert_eq!(w.drain().await, 0);
    let record = w.pipeline.get(&id).await.unwrap().unwrap();
    assert_eq!(record.status, DeploymentStatus::Failed);
    assert!(record.error.as_deref().unwrap().contains("6656"));
    use DeploymentStatus::*;
    assert_eq!(w.statuses(&id).await, [Pending, Validating, Failed]);
    assert!(w.events(&id).await[2].detail.contains("the spec was rejected"));
}

#[tokio::test]
async fn a_rejected_spec_sent_again_with_its_idempotency_key_is_rejected_again() {
    let w = world(works);
    let document = json!({"guardrail": "not an object", "verify": null});
    let first = w.pipeline.deploy(Submitted::from_value(document.clone()), "key-1", Some("k1")).await;
    let Err(DeployRequestError::Invalid { errors, deployment: Some(id) }) = first else {
        panic!("accepted: {first:?}")
    };
    let again = w.pipeline.deploy(Submitted::from_value(document), "key-1", Some("k1")).await;
    let Err(DeployRequestError::Invalid { errors: errors_again, deployment: Some(id_again) }) = again else {
        panic!("the replay was accepted: {again:?}")
    };
    assert_eq!(id_again, id);
    assert_eq!(errors_again.errors(), errors.errors());
    assert!(w.calls().is_empty(), "the target was called: {:?}", w.calls());
    use DeploymentStatus::*;
    assert_eq!(w.statuses(&id).await, [Pending, Validating, Failed]);
}

#[tokio::test]
async fn only_one_deployment_of_an_agent_runs_at_a_time() {
    let w = world(works);
    let first = w.deploy(A).await;
    let (a, b) =
        tokio::join!(w.pipeline.deploy(spec(B), "key-1", None), w.pipeline.deploy(spec(B), "key-2", None),);
    for loser in [a, b] {
        match loser {
            Err(DeployRequestError::Busy { holder, .. }) => assert_eq!(holder, first),
            other => panic!("{other:?}"),
        }
    }
    w.drain().await;
    // Once it has ended, the next one proceeds.
    let next = w.deploy(B).await;
    w.drain().await;
    assert_eq!(w.pipeline.get(&next).await.unwrap().unwrap().status, DeploymentStatus::Deployed);
}

#[tokio::test]
async fn an_idempotency_key_gives_the_same_deployment_and_refuses_another_spec() {
    let w = world(works);
    let first = w.pipeline.deploy(spec(A), "key-1", Some("k")).await.unwrap();
    let again = w.pipeline.deploy(spec(A), "key-1", Some("k")).await.unwrap();
    assert_eq!(first.id, again.id);
    let other_caller = w.pipeline.deploy(spec(A), "key-2", Some("k")).await;
    assert!(matches!(other_caller, Err(DeployRequestError::Busy { .. })), "{other_caller:?}");
    let reused = w.pipeline.deploy(spec(B), "key-1", Some("k")).await;
    assert!(matches!(reused, Err(DeployRequestError::KeyReused(ref id)) if *id == first.id), "{reused:?}");
    w.drain().await;
    assert_eq!(w.calls().iter().filter(|c| *c == "publish").count(), 1);
}

#[tokio::test]
async fn an_unavailable_target_is_retried_and_a_failure_rolls_back() {
    // The first deploy works; the second meets two throttled applies, then a publish
    // that is refused: it rolls back to version 1.
    let w = world(|op, n| match (op, n) {
        ("apply", 6 | 7) => Fault::Unavailable,
        ("publish", _) if n > 4 => Fault::Failed,
        _ => Fault::None,
    });
    let second = w.update().await;
    let record = w.record(&second).await;
    assert_eq!(record.status, DeploymentStatus::RolledBack, "{record:?}");
    assert_eq!(record.rollback_reason, Some(RollbackReason::Failure));
    assert_eq!(record.version.as_deref(), Some("1"));
    assert!(record.error.as_deref().unwrap().contains("publish: access denied"));
    let details: Vec<String> = w.events(&second).await.into_iter().map(|e| e.detail).collect();
    assert!(details.iter().filter(|d| d.contains("failed, retrying")).count() == 2, "{details:#?}");
    assert_eq!(w.serving_url().await, A, "the previous version keeps serving");
    w.assert_consistent(&second).await;
}

#[tokio::test]
async fn a_failed_smoke_test_rolls_back_automatically() {
    let agent = axum::Router::new()
        .route("/good", axum::routing::post(|| async { axum::Json(json!({"answer": "all good"})) }))
        .route("/bad", axum::routing::post(|| async { axum::Json(json!({"answer": "nonsense"})) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, agent).await });
    let w = world(works);
    let with_check = |path: &str| {
        let mut document = spec(&format!("{base}{path}")).document;
        document["verify"] = json!({"input": {"question": "ok?"}, "expect": "good"});
        Submitted::from_value(document)
    };
    let good = w.pipeline.deploy(with_check("/good"), "key-1", None).await.unwrap();
    w.drain().await;
    assert_eq!(w.pipeline.get(&good.id).await.unwrap().unwrap().status, DeploymentStatus::Deployed);
    let bad = w.pipeline.deploy(with_check("/bad"), "key-1", None).await.unwrap();
    w.drain().await;
    let record = w.pipeline.get(&bad.id).await.unwrap().unwrap();
    assert_eq!(record.status, DeploymentStatus::RolledBack);
    assert_eq!(record.rollback_reason, Some(RollbackReason::HealthCheck));
    assert!(record.error.as_deref().unwrap().contains("does not match \"good\""), "{record:?}");
    assert_eq!(w.serving_url().await, format!("{base}/good"));
}

#[tokio::test]
async fn a_resource_still_settling_is_waited_for_without_using_up_the_attempts() {
    // The alias stays UPDATING through twice as many publishes as a step's attempts.
    let settling = 2 * quick().max_attempts as usize;
    let mut publishes = 0;
    let w = world(move |op, _| {
        if op != "publish" {
            return Fault::None;
        }
        publishes += 1;
        if publishes <= settling { Fault::Settling } else { Fault::None }
    });
    let id = w.deploy(A).await;
    w.drain().await;
    let record = w.pipeline.get(&id).await.unwrap().unwrap();
    assert_eq!(record.status, DeploymentStatus::Deployed, "{record:?}");
    assert_eq!(record.attempts, 0);
    let details: Vec<String> = w.events(&id).await.into_iter().map(|e| e.detail).collect();
    assert!(!details.iter().any(|d| d.contains("retrying")), "waiting is not a failed attempt: {details:#?}");
    let calls = w.calls();
    assert_eq!(calls.iter().filter(|c| *c == "publish").count(), settling + 1, "{calls:?}");
    w.assert_consistent(&id).await;
}

#[tokio::test]
async fn a_deployment_past_its_deadline_is_rolled_back_for_timeout() {
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::now()));
    let config = DeployConfig { deadline: Duration::from_secs(60), ..quick() };
    let w = world_with(
        |op, n| if op == "prepare" && n > 4 { Fault::NeverReady } else { Fault::None },
        clock.clone(),
        config,
    );
    w.deploy(A).await;
    w.drain().await;
    let second = w.deploy(B).await;
    let ticking = clock.clone();
    let polls = tokio::spawn(async move {
        // While it polls, time passes.
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            ticking.advance(jiff::SignedDuration::from_secs(10));
        }
    });
    w.drain().await;
    polls.await.unwrap();
    let record = w.pipeline.get(&second).await.unwrap().unwrap();
    assert_eq!(record.status, DeploymentStatus::RolledBack, "{record:?}");
    assert_eq!(record.rollback_reason, Some(RollbackReason::Timeout));
    assert_eq!(w.serving_url().await, A);
}

/// The heart of durability: for every call the target gets in a deploy, an update and a
/// rollback, a crash right after that call's effect (before the pipeline records it)
/// ends the same way as no crash, with no extra version on the target and a whole trail.
#[tokio::test]
async fn a_crash_between_any_two_steps_is_resumed() {
    // The calls of the uninterrupted scenario.
    let plain = world(works);
    plain.deploy(A).await;
    plain.drain().await;
    let second = plain.deploy(B).await;
    plain.drain().await;
    plain.pipeline.rollback(&second, None, RollbackReason::Manual, "key-1", None).await.unwrap();
    plain.drain().await;
    let calls = plain.calls().len();
    assert!(calls >= 10, "{:?}", plain.calls());

    for crash_at in 1..=calls {
        let w = world(move |_, n| if n == crash_at { Fault::CrashAfter } else { Fault::None });
        let first = w.deploy(A).await;
        let mut crashes = w.drain().await;
        let second = w.deploy(B).await;
        crashes += w.drain().await;
        let rollback =
            w.pipeline.rollback(&second, None, RollbackReason::Manual, "key-1", None).await.unwrap();
        crashes += w.drain().await;
        assert_eq!(crashes, 1, "crash at call {crash_at}");
        for id in [&first, &second, &rollback.id] {
            w.assert_consistent(id).await;
        }
        let statuses = [&first, &second, &rollback.id].map(|id| {
            let pipeline = w.pipeline.clone();
            let id = id.clone();
            async move { pipeline.get(&id).await.unwrap().unwrap().status }
        });
        let statuses = futures::future::join_all(statuses).await;
        use DeploymentStatus::*;
        assert_eq!(statuses, [Deployed, Deployed, RolledBack], "crash at call {crash_at}");
        assert_eq!(w.serving_url().await, A, "crash at call {crash_at}");
        let history = w.pipeline.history("support-bot").await.unwrap();
        let versions: Vec<&str> = history.iter().map(|v| v.version.as_str()).collect();
        assert_eq!(versions, ["1", "2", "1"], "crash at call {crash_at}: no version made twice");
    }
}

#[tokio::test]
async fn a_task_that_is_not_a_task_is_dead_lettered() {
    let w = world(works);
    let delivery = tdev_domain::queue::Delivery {
        message_id: "m".into(),
        receipt: "r".into(),
        group: "g".into(),
        dedup_id: "d".into(),
        body: "{\"nope\": 1}".into(),
        priority: Default::default(),
        attributes: Default::default(),
        receive_count: 1,
        sent_at: jiff::Timestamp::now(),
        reclaimed: false,
    };
    assert_eq!(w.pipeline.process(&delivery).await, Outcome::DeadLetter("malformed_task".into()));
}

/// A refusal at any target call of an update ends the update — failed before the target
/// changed, rolled back after — and version 1 keeps serving.
#[tokio::test]
async fn a_refusal_at_any_call_of_an_update_keeps_the_previous_version_serving() {
    let plain = world(works);
    plain.deploy(A).await;
    plain.drain().await;
    let first_calls = plain.calls().len();
    plain.deploy(B).await;
    plain.drain().await;
    let update_calls = plain.calls()[first_calls..].to_vec();
    assert_eq!(update_calls, ["snapshot", "apply", "prepare", "publish"]);

    for (i, operation) in update_calls.iter().enumerate() {
        let refuse_at = first_calls + i + 1;
        let w = world(move |_, n| if n == refuse_at { Fault::Failed } else { Fault::None });
        let update = w.update().await;
        let record = w.record(&update).await;
        let expected =
            if operation == "snapshot" { DeploymentStatus::Failed } else { DeploymentStatus::RolledBack };
        assert_eq!(record.status, expected, "refused at {operation}: {record:?}");
        assert!(
            record.error.as_deref().unwrap().contains(&format!("{operation}: access denied")),
            "{record:?}"
        );
        assert_eq!(w.serving_url().await, A, "refused at {operation}");
        let history = w.pipeline.history("support-bot").await.unwrap();
        assert_eq!(history[0].version, "1", "refused at {operation}: {history:?}");
        w.assert_consistent(&update).await;
    }
}

/// A rollback that the target refuses ends `failed`, and says both why the deployment
/// failed and why the rollback did.
#[tokio::test]
async fn a_refused_rollback_ends_failed_and_says_why() {
    let w = world(|op, n| match op {
        "publish" if n > 4 => Fault::Failed,
        "point_to" => Fault::Failed,
        _ => Fault::None,
    });
    let update = w.update().await;
    let record = w.record(&update).await;
    assert_eq!(record.status, DeploymentStatus::Failed, "{record:?}");
    let error = record.error.unwrap();
    assert!(
        error.contains("publish: access denied") && error.contains("the rollback failed: point_to"),
        "{error}"
    );
    use DeploymentStatus::*;
    let statuses = w.statuses(&update).await;
    assert_eq!(statuses[statuses.len() - 2..], [RollingBack, Failed]);
}
