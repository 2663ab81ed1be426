//! A restart of the local stack: the data lock that makes one process the file's only
//! user, and what that process takes back at start-up from the one that stopped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use tdev_domain::messaging::{AgentLoadStore, Claim, IdempotencyStore};
use tdev_domain::ports::MessageQueue;
use tdev_domain::queue::QueueSpec;
use tdev_domain::queue::{MAX_RECEIVES_EXCEEDED, NewMessage, Priority, dead_letter_attributes};
use tdev_embedded::{DataLock, LockError, Reclaimed, SqliteStore};

const LONG: Duration = Duration::from_secs(300);
const MAX_RECEIVES: u32 = 3;

fn temp_db(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    std::env::temp_dir().join(format!("tdev-{name}-{}-{nanos}", std::process::id())).join("tdev.db")
}

fn open(path: &std::path::Path) -> SqliteStore {
    SqliteStore::open(path).unwrap().with_queues([QueueSpec::with_dead_letter(
        "work",
        "work-dlq",
        MAX_RECEIVES,
    )])
}

fn message(group: &str, body: &str) -> NewMessage {
    NewMessage {
        group: group.into(),
        dedup_id: body.into(),
        body: body.into(),
        priority: Priority::DEFAULT,
        attributes: BTreeMap::new(),
    }
}

#[test]
fn one_process_at_a_time_holds_the_data_lock_and_a_dropped_lock_is_free_again() {
    let path = temp_db("lock");
    let first = DataLock::take(&path).expect("the first takes the lock");
    assert_eq!(first.path(), path.with_file_name("tdev.db.lock"));
    match DataLock::take(&path) {
        Err(LockError::Held { database, lock }) => {
            assert_eq!((database, lock), (path.clone(), first.path().to_owned()));
        }
        other => panic!("a second lock of the same file must be refused: {other:?}"),
    }
    let other = DataLock::take(&path.with_file_name("other.db")).expect("another file has its own lock");
    drop((first, other));
    DataLock::take(&path).expect("free again once dropped");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// What a consumer held is back at once, marked, its receive counted; what a consumer
/// handed back with a delay keeps its delay.
#[tokio::test]
async fn a_restart_takes_back_held_deliveries_at_once_and_keeps_delays() {
    let path = temp_db("reclaim");
    let store = open(&path);
    for (group, body) in [("held", "held"), ("kept", "kept-hidden"), ("delayed", "delayed")] {
        store.send("work", message(group, body)).await.unwrap();
    }
    let batch = store.receive("work", 10, LONG).await.unwrap();
    assert_eq!(batch.len(), 3);
    for delivery in &batch {
        assert!(!delivery.reclaimed, "a first delivery is not reclaimed");
        match delivery.body.as_str() {
            "kept-hidden" => store.keep_hidden("work", &delivery.receipt, LONG).await.unwrap(),
            "delayed" => store.retry_after("work", &delivery.receipt, LONG).await.unwrap(),
            _ => {}
        }
    }
    drop(store);

    let lock = DataLock::take(&path).unwrap();
    let store = open(&path);
    let reclaimed = store.reclaim_after_restart(&lock).unwrap();
    assert_eq!(reclaimed, Reclaimed { deliveries: 2, claims: 0, slots: 0 });
    let mut again = store.receive("work", 10, LONG).await.unwrap();
    again.sort_by(|a, b| a.body.cmp(&b.body));
    let seen: Vec<(&str, u32, bool)> =
        again.iter().map(|d| (d.body.as_str(), d.receive_count, d.reclaimed)).collect();
    assert_eq!(seen, [("held", 2, true), ("kept-hidden", 2, true)], "the delayed one keeps its delay");

    // The mark is for the delivery after the restart only.
    for delivery in &again {
        store.retry_after("work", &delivery.receipt, Duration::ZERO).await.unwrap();
    }
    let later = store.receive("work", 10, LONG).await.unwrap();
    assert_eq!(later.len(), 2);
    assert!(later.iter().all(|d| !d.reclaimed && d.receive_count == 3), "{later:?}");
    assert_eq!(store.reclaim_after_restart(&lock).unwrap().deliveries, 2, "held again, taken again");
    drop((store, lock));
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// A message that stops the process on every delivery does not loop for ever: each
/// restart counts its receive, and it ends in the dead-letter queue with the reason.
#[tokio::test]
async fn a_message_that_stops_the_process_every_time_ends_in_the_dead_letter_queue() {
    let path = temp_db("poison");
    let store = open(&path);
    store.send("work", message("p", "kills-the-process")).await.unwrap();
    drop(store);
    for restart in 1..=MAX_RECEIVES {
        let lock = DataLock::take(&path).unwrap();
        let store = open(&path);
        store.reclaim_after_restart(&lock).unwrap();
        let batch = store.receive("work", 10, LONG).await.unwrap();
        assert_eq!(batch.len(), 1, "delivered after restart {restart}");
        assert_eq!((batch[0].receive_count, batch[0].reclaimed), (restart, restart > 1));
        // The process dies holding it.
    }
    let lock = DataLock::take(&path).unwrap();
    let store = open(&path);
    store.reclaim_after_restart(&lock).unwrap();
    assert!(store.receive("work", 10, LONG).await.unwrap().is_empty(), "no longer delivered");
    let dead = store.receive("work-dlq", 10, LONG).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "kills-the-process");
    let attributes = &dead[0].attributes;
    assert_eq!(
        attributes.get(dead_letter_attributes::REASON).map(String::as_str),
        Some(MAX_RECEIVES_EXCEEDED)
    );
    assert_eq!(attributes.get(dead_letter_attributes::RECEIVE_COUNT).map(String::as_str), Some("3"));
    drop((store, lock));
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// The idempotency claims and agent slots of work in progress belong to the process
/// that stopped: free again at once. Work done stays done.
#[tokio::test]
async fn a_restart_frees_the_claims_and_slots_of_work_in_progress() {
    let path = temp_db("leases");
    let store = open(&path);
    let now = Timestamp::now();
    let lease = now + jiff::SignedDuration::from_secs(80);
    assert_eq!(store.claim("message/in-progress", "dead", now, lease).await.unwrap(), Claim::Acquired);
    assert_eq!(store.claim("message/done", "dead", now, lease).await.unwrap(), Claim::Acquired);
    store.complete("message/done", "dead", now + jiff::SignedDuration::from_secs(86_400)).await.unwrap();
    assert!(store.acquire_slot("agent", "dead", 1, now, lease).await.unwrap());
    drop(store);

    let lock = DataLock::take(&path).unwrap();
    let store = open(&path);
    assert_eq!(store.reclaim_after_restart(&lock).unwrap(), Reclaimed { deliveries: 0, claims: 1, slots: 1 });
    let now = Timestamp::now();
    assert_eq!(store.claim("message/in-progress", "new", now, lease).await.unwrap(), Claim::Acquired);
    assert_eq!(store.claim("message/done", "new", now, lease).await.unwrap(), Claim::Done);
    assert!(store.acquire_slot("agent", "new", 1, now, lease).await.unwrap(), "the slot is free");
    drop((store, lock));
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// A file made before deliveries were marked held gets the columns on open.
#[tokio::test]
async fn a_file_of_an_older_version_gets_the_new_columns() {
    let path = temp_db("older");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let old = rusqlite::Connection::open(&path).unwrap();
    old.execute_batch(
        "CREATE TABLE queue_messages (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, id TEXT NOT NULL UNIQUE,
            grp TEXT NOT NULL, dedup_id TEXT NOT NULL, body TEXT NOT NULL, priority INTEGER NOT NULL,
            attributes TEXT NOT NULL, sent_at TEXT NOT NULL, visible_at_ms INTEGER NOT NULL,
            receive_count INTEGER NOT NULL DEFAULT 0, receipt TEXT UNIQUE);
         INSERT INTO queue_messages (queue, id, grp, dedup_id, body, priority, attributes, sent_at, visible_at_ms)
         VALUES ('work', 'm1', 'g', 'd', 'from before', 5, '{}', '2026-01-01T00:00:00Z', 0);",
    )
    .unwrap();
    drop(old);
    let store = open(&path);
    let batch = store.receive("work", 10, LONG).await.unwrap();
    assert_eq!(
        batch.iter().map(|d| (d.body.as_str(), d.reclaimed)).collect::<Vec<_>>(),
        [("from before", false)]
    );
    drop(store);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}
