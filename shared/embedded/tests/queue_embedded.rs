//! The embedded queue against the queue conformance suite, plus what only it promises:
//! strict priority, and surviving a restart.

use std::collections::BTreeMap;
use std::time::Duration;

use tdev_conformance::queue::MAX_RECEIVES;
use tdev_domain::ports::MessageQueue;
use tdev_domain::queue::QueueSpec;
use tdev_domain::queue::{NewMessage, Priority};
use tdev_embedded::SqliteStore;

fn queues() -> [QueueSpec; 1] {
    [QueueSpec::with_dead_letter("work", "work-dlq", MAX_RECEIVES)]
}

#[tokio::test]
async fn the_embedded_queue_conforms() {
    let store = SqliteStore::in_memory().unwrap().with_queues(queues());
    tdev_conformance::queue::run_all(&store, "work", "work-dlq").await;
}

fn message(priority: u8, body: &str) -> NewMessage {
    NewMessage {
        group: "same-group".into(),
        dedup_id: body.into(),
        body: body.into(),
        priority: Priority::new(priority).unwrap(),
        attributes: BTreeMap::new(),
    }
}

#[tokio::test]
async fn strict_priority_then_send_order_within_a_group() {
    let store = SqliteStore::in_memory().unwrap().with_queues(queues());
    for (i, priority) in [5, 1, 5, 5, 10, 1].into_iter().enumerate() {
        store.send("work", message(priority, &format!("{i}:p{priority}"))).await.unwrap();
    }
    let mut order = Vec::new();
    loop {
        let batch = store.receive("work", 1, Duration::from_secs(30)).await.unwrap();
        let Some(delivery) = batch.into_iter().next() else { break };
        order.push(delivery.body.clone());
        store.ack("work", &delivery.receipt).await.unwrap();
    }
    assert_eq!(order, ["1:p1", "5:p1", "0:p5", "2:p5", "3:p5", "4:p10"]);
}

#[tokio::test]
async fn messages_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("tdev-queue-{}", std::process::id()));
    let path = dir.join("tdev.db");
    let store = SqliteStore::open(&path).unwrap().with_queues(queues());
    store.send("work", message(5, "kept")).await.unwrap();
    let in_flight = store.receive("work", 1, Duration::ZERO).await.unwrap();
    assert_eq!(in_flight.len(), 1);
    drop(store);
    let reopened = SqliteStore::open(&path).unwrap().with_queues(queues());
    let again = reopened.receive("work", 1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(again[0].body, "kept");
    assert_eq!(again[0].receive_count, 2, "a delivery cut off by the restart counts");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn an_unknown_queue_is_an_error_not_a_silent_drop() {
    let store = SqliteStore::in_memory().unwrap();
    assert!(store.send("nowhere", message(5, "x")).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_engine_runs_workflows_durably_on_the_embedded_backend() {
    let store = engine_backend();
    tdev_conformance::engine::run_all(store.clone(), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_engine_runs_squad_tasks_durably_on_the_embedded_backend() {
    let store = engine_backend();
    tdev_conformance::squads::run_all(store.clone(), store, 1_000).await;
}

/// A worker killed at every squad task write in turn (each delivery processed twice): the
/// task ends as it would have, and no agent is called twice for one attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn squad_tasks_survive_a_crash_between_any_two_writes_on_the_embedded_backend() {
    let store = engine_backend();
    tdev_conformance::crash::a_crash_between_any_two_writes_changes_nothing(store.clone(), store, 1).await;
}

#[tokio::test]
async fn the_fifo_batch_rule_holds_on_the_embedded_queue() {
    let store = SqliteStore::in_memory().unwrap().with_queues(queues());
    tdev_conformance::worker::fifo_batch_rule(&store, "work").await;
}

/// A worker that dies between recording an assignment and sending its message: the watch
/// sends it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_assignment_message_is_sent_again_on_the_embedded_backend() {
    let store = engine_backend();
    tdev_conformance::crash::a_lost_assignment_message_is_sent_again_by_the_watch(store.clone(), store).await;
}

/// An in-memory store with the step queue and its dead-letter queue: the engine's backend.
fn engine_backend() -> SqliteStore {
    SqliteStore::in_memory().unwrap().with_queues([QueueSpec::with_dead_letter(
        tdev_domain::runs::STEP_QUEUE,
        "steps-dlq",
        tdev_domain::runs::STEP_MAX_RECEIVES,
    )])
}
