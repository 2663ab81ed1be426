//! What the messaging ports promise: `IdempotencyStore`, `AgentLoadStore`,
//! `DeadLetterStore` and `EventStore`, races included.
//!
//! Times are taken near the real clock: a backend may let a record go once its times have
//! passed (DynamoDB's TTL), and an event listing without `since` reaches back a week.
//! Listings are filtered to this run's records (a unique queue, reason or type prefix),
//! so runs can share a table.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tdev_domain::events::{
    Event, EventFilter, EventStore, Subscription, SubscriptionStore, SubscriptionTarget,
};
use tdev_domain::messaging::{
    AgentLoadStore, Breaker, BreakerState, Claim, DeadLetter, DeadLetterFilter, DeadLetterState,
    DeadLetterStore, FailureNote, IdempotencyStore, QueuedMessage,
};
use tdev_domain::ports::StoreError;
use tdev_domain::queue::Priority;

/// Runs every check of the four ports.
pub async fn run_all<S>(store: &S)
where
    S: IdempotencyStore + AgentLoadStore + DeadLetterStore + EventStore + SubscriptionStore,
{
    subscriptions(store).await;
    idempotency(store).await;
    idempotency_races(store).await;
    slots(store).await;
    slot_leases(store).await;
    breakers(store).await;
    dead_letters(store).await;
    failure_notes(store).await;
    events(store).await;
    events_in_append_order(store).await;
}

/// A stream's reads: events after a cursor come in the order appended, each once, with
/// the cursor that resumes after it; no cursor starts from now; a cursor the store never
/// gave is refused. (On DynamoDB an event is given once a couple of seconds old, so the
/// reads are repeated for a while.)
pub async fn events_in_append_order<S: EventStore>(store: &S) {
    let prefix = super::unique("live");
    let ours = |page: &tdev_domain::events::EventPage| -> Vec<(String, String)> {
        page.events
            .iter()
            .filter(|(_, e)| e.kind.starts_with(&prefix))
            .map(|(cursor, e)| (cursor.clone(), e.kind.clone()))
            .collect()
    };
    let start = store.events_after(None, 100).await.expect("from now");
    assert!(ours(&start).is_empty());
    let mut appended = Vec::new();
    for what in ["a", "b", "c"] {
        let event =
            Event::new(&format!("{prefix}.{what}"), "subject-1", Timestamp::now(), json!({"n": what}));
        store.append_event(&event).await.expect("append");
        appended.push(event.kind);
    }
    // Read two at a time from the start until ours are all in (others' events may be
    // in between: the log is shared), remembering the cursor after the second of ours.
    let mut cursor = start.cursor.clone();
    let mut seen: Vec<(String, String)> = Vec::new();
    let began = Instant::now();
    while seen.len() < 3 && began.elapsed() < Duration::from_secs(20) {
        let page = store.events_after(Some(&cursor), 2).await.expect("a page");
        assert!(page.events.len() <= 2, "at most the limit");
        if let Some((last, _)) = page.events.last() {
            assert_eq!(&page.cursor, last, "the page's cursor is after its last event");
        }
        seen.extend(ours(&page));
        cursor = page.cursor;
        if page.events.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let kinds: Vec<&String> = seen.iter().map(|(_, kind)| kind).collect();
    assert_eq!(kinds, appended.iter().collect::<Vec<_>>(), "in the order appended, each once");
    // Resuming after the second gives the third, and nothing before it.
    let mut resumed = Vec::new();
    let mut cursor = seen[1].0.clone();
    for _ in 0..10 {
        let page = store.events_after(Some(&cursor), 100).await.expect("resume");
        resumed.extend(ours(&page).into_iter().map(|(_, kind)| kind));
        cursor = page.cursor;
    }
    assert_eq!(resumed, vec![appended[2].clone()], "exactly what came after the cursor");
    // Nothing new: a cursor the next read goes on from (it may have moved past the quiet
    // time), and nothing of ours again.
    let idle = store.events_after(Some(&seen[2].0), 100).await.expect("idle");
    assert!(ours(&idle).is_empty());
    let again = store.events_after(Some(&idle.cursor), 100).await.expect("on from an idle page's cursor");
    assert!(ours(&again).is_empty());
    for bad in ["not a cursor", "99999999999999999999#x", "-1"] {
        let refused = store.events_after(Some(bad), 10).await;
        assert!(matches!(refused, Err(StoreError::NotFound)), "{bad}: {refused:?}");
    }
}

fn secs(base: Timestamp, seconds: i64) -> Timestamp {
    base + SignedDuration::from_secs(seconds)
}

fn is_conflict<T>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict(_)))
}

/// A key is held by one claimant until its lease ends, then free again; done work is
/// answered `Done`; only the holder completes; release frees at once and is harmless
/// from anyone else.
pub async fn idempotency<S: IdempotencyStore>(store: &S) {
    let t = Timestamp::now();
    let key = super::unique("idem");
    let complete_unclaimed = store.complete(&key, "a", secs(t, 3600)).await;
    assert!(is_conflict(&complete_unclaimed), "nobody holds a key never claimed: {complete_unclaimed:?}");
    store.release(&key, "a").await.expect("releasing a key never claimed is harmless");

    assert_eq!(store.claim(&key, "a", t, secs(t, 30)).await.expect("claim"), Claim::Acquired);
    let held = Claim::Busy { until: secs(t, 30) };
    assert_eq!(store.claim(&key, "b", secs(t, 1), secs(t, 31)).await.expect("claim b"), held, "held");
    assert_eq!(
        store.claim(&key, "a", secs(t, 1), secs(t, 31)).await.expect("claim a again"),
        held,
        "a second claim is a second delivery, even from the holder"
    );
    assert_eq!(
        store.claim(&key, "b", secs(t, 30), secs(t, 60)).await.expect("claim at the lease's end"),
        held,
        "a lease ends only after its last instant"
    );
    let complete_other = store.complete(&key, "b", secs(t, 3600)).await;
    assert!(is_conflict(&complete_other), "only the holder completes: {complete_other:?}");
    store.release(&key, "b").await.expect("release by a non-holder is harmless");
    assert_eq!(store.claim(&key, "c", secs(t, 2), secs(t, 32)).await.expect("claim c"), held, "still a's");

    store.complete(&key, "a", secs(t, 3600)).await.expect("complete");
    assert_eq!(store.claim(&key, "b", secs(t, 3), secs(t, 33)).await.expect("claim done"), Claim::Done);
    assert_eq!(
        store.claim(&key, "b", secs(t, 300), secs(t, 330)).await.expect("claim done later"),
        Claim::Done,
        "done work is remembered past the lease, until keep_until"
    );
    store.release(&key, "a").await.expect("release after complete");
    assert_eq!(
        store.claim(&key, "b", secs(t, 301), secs(t, 331)).await.expect("claim after release"),
        Claim::Done,
        "releasing after completing does not undo the work"
    );

    // Released: the next claim acquires at once, and the old holder's release is harmless.
    let key = super::unique("idem");
    assert_eq!(store.claim(&key, "a", t, secs(t, 30)).await.expect("claim"), Claim::Acquired);
    store.release(&key, "a").await.expect("release");
    assert_eq!(store.claim(&key, "b", t, secs(t, 40)).await.expect("claim after release"), Claim::Acquired);
    store.release(&key, "a").await.expect("a second release by a is harmless");
    assert_eq!(
        store.claim(&key, "c", secs(t, 1), secs(t, 41)).await.expect("claim c"),
        Claim::Busy { until: secs(t, 40) },
        "a's late release did not free b's claim"
    );

    // A lease that ended is taken over; the old holder has lost the key.
    let key = super::unique("idem");
    assert_eq!(store.claim(&key, "a", t, secs(t, 10)).await.expect("claim"), Claim::Acquired);
    assert_eq!(
        store.claim(&key, "b", secs(t, 11), secs(t, 41)).await.expect("take over"),
        Claim::Acquired,
        "a's lease ended"
    );
    let late = store.complete(&key, "a", secs(t, 3600)).await;
    assert!(is_conflict(&late), "a no longer holds the key: {late:?}");
    store.release(&key, "a").await.expect("a's release is harmless");
    assert_eq!(
        store.claim(&key, "c", secs(t, 12), secs(t, 42)).await.expect("claim c"),
        Claim::Busy { until: secs(t, 41) },
        "b still holds it"
    );
    store.complete(&key, "b", secs(t, 3600)).await.expect("b completes");
    assert_eq!(store.claim(&key, "c", secs(t, 100), secs(t, 130)).await.expect("claim c"), Claim::Done);
}

/// Twenty claims of one key at once: exactly one acquires, fresh or after a lease ended.
pub async fn idempotency_races<S: IdempotencyStore>(store: &S) {
    let t = Timestamp::now();
    let key = super::unique("idem-race");
    let holders: Vec<String> = (0..20).map(|i| format!("holder-{i}")).collect();
    let claims = join_all(holders.iter().map(|h| store.claim(&key, h, t, secs(t, 30)))).await;
    let claims: Vec<Claim> = claims.into_iter().map(|c| c.expect("claim")).collect();
    let acquired = claims.iter().filter(|c| **c == Claim::Acquired).count();
    assert_eq!(acquired, 1, "exactly one of 20 claims acquires: {claims:?}");
    assert!(
        claims.iter().all(|c| matches!(c, Claim::Acquired) || *c == Claim::Busy { until: secs(t, 30) }),
        "the others see the winner's lease: {claims:?}"
    );

    let later = secs(t, 31);
    let claims = join_all(holders.iter().map(|h| store.claim(&key, h, later, secs(later, 30)))).await;
    let claims: Vec<Claim> = claims.into_iter().map(|c| c.expect("claim after the lease")).collect();
    let acquired = claims.iter().filter(|c| **c == Claim::Acquired).count();
    assert_eq!(acquired, 1, "exactly one takes over an ended lease: {claims:?}");
}

/// Slots count work in flight per agent, each held by one holder: never more than `max`
/// at once however many race; a holder keeps its slot (its lease renewed); giving a slot
/// back is idempotent.
pub async fn slots<S: AgentLoadStore>(store: &S) {
    let t = Timestamp::now();
    let lease = secs(t, 60);
    let agent = super::unique("load");
    let in_flight = |agent: &str| {
        let agent = agent.to_owned();
        async move { store.in_flight(&agent, t).await.expect("in flight") }
    };
    assert_eq!(in_flight(&agent).await, 0, "nothing recorded is zero");
    store.release_slot(&agent, "nobody").await.expect("release with nothing recorded");
    assert_eq!(in_flight(&agent).await, 0, "never below zero");
    assert!(
        !store.acquire_slot(&agent, "h", 0, t, lease).await.expect("acquire of 0"),
        "max 0 admits nothing"
    );

    let holders: Vec<String> = (0..20).map(|i| format!("holder-{i}")).collect();
    let taken = join_all(holders.iter().map(|h| store.acquire_slot(&agent, h, 3, t, lease))).await;
    let winners: Vec<&String> =
        holders.iter().zip(taken).filter_map(|(h, taken)| taken.expect("acquire").then_some(h)).collect();
    assert_eq!(winners.len(), 3, "exactly max of 20 concurrent acquires succeed");
    assert_eq!(in_flight(&agent).await, 3);
    assert!(!store.acquire_slot(&agent, "late", 3, t, lease).await.expect("acquire when full"), "all taken");
    assert!(
        store.acquire_slot(&agent, "late", 4, t, lease).await.expect("below a higher max"),
        "max is per call"
    );
    assert_eq!(in_flight(&agent).await, 4);
    assert!(
        store.acquire_slot(&agent, winners[0], 1, secs(t, 1), secs(t, 90)).await.expect("acquire again"),
        "a holder keeps its slot, whatever max"
    );
    assert_eq!(in_flight(&agent).await, 4, "holding a slot again takes no second one");

    let other = super::unique("load");
    assert!(store.acquire_slot(&other, "h", 1, t, lease).await.expect("other agent"), "slots are per agent");
    assert_eq!(in_flight(&other).await, 1);

    store.release_slot(&agent, winners[0]).await.expect("release");
    assert_eq!(in_flight(&agent).await, 3);
    store.release_slot(&agent, winners[0]).await.expect("release again");
    store.release_slot(&agent, "never-held").await.expect("release of a holder without a slot");
    assert_eq!(in_flight(&agent).await, 3, "giving a slot back twice, or one never taken, frees no other");
    let rest = [winners[1], winners[2], "late"];
    for released in join_all(rest.iter().chain(&rest).map(|h| store.release_slot(&agent, h))).await {
        released.expect("concurrent release");
    }
    assert_eq!(in_flight(&agent).await, 0, "each released twice, concurrently");
    assert!(store.acquire_slot(&agent, "a", 1, t, lease).await.expect("acquire after releases"));
    assert!(!store.acquire_slot(&agent, "b", 1, t, lease).await.expect("acquire of 1 when 1 is taken"));
    assert_eq!(in_flight(&agent).await, 1);
    assert_eq!(in_flight(&other).await, 1, "untouched by the other agent");
}

/// A slot counts only while its lease is live (through its last instant): the slot of a
/// consumer that died holding it is free again once its lease has run out, and that
/// consumer's late release frees nobody else's.
pub async fn slot_leases<S: AgentLoadStore>(store: &S) {
    let t = Timestamp::now();
    let agent = super::unique("lease");
    assert!(store.acquire_slot(&agent, "dies", 1, t, secs(t, 10)).await.expect("acquire"));
    assert!(
        !store.acquire_slot(&agent, "next", 1, secs(t, 10), secs(t, 70)).await.expect("acquire at the end"),
        "a lease is live through its last instant"
    );
    assert_eq!(store.in_flight(&agent, secs(t, 10)).await.expect("in flight"), 1);
    assert_eq!(
        store.in_flight(&agent, secs(t, 11)).await.expect("in flight after the lease"),
        0,
        "a slot whose lease ran out no longer counts"
    );
    assert!(
        store.acquire_slot(&agent, "next", 1, secs(t, 11), secs(t, 71)).await.expect("acquire after"),
        "the dead holder's slot is free once its lease ran out"
    );
    assert_eq!(store.in_flight(&agent, secs(t, 11)).await.expect("in flight"), 1);
    store.release_slot(&agent, "dies").await.expect("a late release");
    assert_eq!(
        store.in_flight(&agent, secs(t, 12)).await.expect("in flight"),
        1,
        "the dead holder's late release frees nobody else's slot"
    );
    assert!(
        store.acquire_slot(&agent, "next", 1, secs(t, 60), secs(t, 120)).await.expect("renew"),
        "a holder renews its lease"
    );
    assert_eq!(store.in_flight(&agent, secs(t, 100)).await.expect("in flight"), 1, "renewed to 120");
    store.release_slot(&agent, "next").await.expect("release");
    assert_eq!(store.in_flight(&agent, secs(t, 12)).await.expect("in flight"), 0);
}

/// A breaker round-trips every field and is written only over the version it was made
/// from: a stale or skipped version is a `Conflict`, and of racing writers one wins.
pub async fn breakers<S: AgentLoadStore>(store: &S) {
    let agent = super::unique("breaker");
    let t = Timestamp::now();
    assert_eq!(store.get_breaker(&agent).await.expect("get"), None, "never stored");
    let unbumped = store.put_breaker(&agent, &Breaker::default()).await;
    assert!(is_conflict(&unbumped), "version 0 is the breaker never stored: {unbumped:?}");
    let skipped =
        Breaker { state: BreakerState::Open { until: secs(t, 30) }, version: 2, ..Breaker::default() };
    let skipped_result = store.put_breaker(&agent, &skipped).await;
    assert!(is_conflict(&skipped_result), "none stored counts as version 0: {skipped_result:?}");
    assert_eq!(store.get_breaker(&agent).await.expect("get"), None, "a lost write stores nothing");

    let first = Breaker {
        state: BreakerState::Closed { consecutive_failures: 1 },
        last_failure_at: Some(t),
        ..Breaker { version: 1, ..Breaker::default() }
    };
    store.put_breaker(&agent, &first).await.expect("version 1 over none");
    assert_eq!(store.get_breaker(&agent).await.expect("get"), Some(first), "round trip");
    let rival = Breaker { state: BreakerState::Closed { consecutive_failures: 7 }, ..first };
    let rival_result = store.put_breaker(&agent, &rival).await;
    assert!(is_conflict(&rival_result), "a second writer of version 1 loses: {rival_result:?}");
    assert_eq!(store.get_breaker(&agent).await.expect("get"), Some(first), "the loser changed nothing");

    let probing = Breaker {
        state: BreakerState::HalfOpen { probe_until: secs(t, 60) },
        last_success_at: Some(secs(t, -5)),
        last_failure_at: Some(t),
        version: 2,
    };
    store.put_breaker(&agent, &probing).await.expect("version 2 over 1");
    assert_eq!(store.get_breaker(&agent).await.expect("get"), Some(probing), "every field round-trips");
    let stale = store.put_breaker(&agent, &Breaker { version: 2, ..first }).await;
    assert!(is_conflict(&stale), "version 2 is taken: {stale:?}");
    let ahead = store.put_breaker(&agent, &Breaker { version: 4, ..first }).await;
    assert!(is_conflict(&ahead), "version 3 is not stored: {ahead:?}");

    // Ten consumers see the probe's time run out at once: one of them probes.
    let candidates: Vec<Breaker> = (0..10)
        .map(|i| Breaker {
            state: BreakerState::HalfOpen { probe_until: secs(t, 120 + i) },
            version: 3,
            ..probing
        })
        .collect();
    let results = join_all(candidates.iter().map(|b| store.put_breaker(&agent, b))).await;
    let winners: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "exactly one of ten racing writers wins: {results:?}");
    assert!(
        results.iter().all(|r| r.is_ok() || is_conflict(r)),
        "the others lose with Conflict: {results:?}"
    );
    assert_eq!(store.get_breaker(&agent).await.expect("get"), Some(candidates[winners[0]]), "the winner's");

    let other = super::unique("breaker");
    assert_eq!(store.get_breaker(&other).await.expect("get other"), None, "breakers are per agent");
}

fn dead_letter(id: String, queue: &str, reason: &str, at: Timestamp, state: DeadLetterState) -> DeadLetter {
    DeadLetter {
        message: QueuedMessage {
            group: "customer-42".into(),
            dedup_id: format!("{id}-dedup"),
            body: r#"{"v":1,"payload":"aGVsbG8="}"#.into(),
            priority: Priority::new(2).expect("priority 2"),
            attributes: BTreeMap::from([("tdev-source-queue".to_owned(), queue.to_owned())]),
        },
        id,
        source_queue: queue.into(),
        reason: reason.into(),
        detail: Some("the agent answered 503".into()),
        attempts: 3,
        first_failure_at: Some(at - SignedDuration::from_secs(60)),
        last_failure_at: Some(at - SignedDuration::from_secs(1)),
        dead_lettered_at: at,
        state,
        version: 1,
    }
}

/// Dead letters are archived once, round-trip every field, list oldest first (by time,
/// then id) with every filter and the limit applied after it, and change only from the
/// version read.
pub async fn dead_letters<S: DeadLetterStore>(store: &S) {
    let prefix = super::unique("dl");
    let queue = format!("{prefix}-queue");
    let other_queue = format!("{prefix}-other-queue");
    let reason = format!("{prefix}-no_agent");
    let other_reason = format!("{prefix}-signature_invalid");
    let t = Timestamp::now();
    let id = |suffix: &str| format!("{prefix}-{suffix}");
    let dead = || DeadLetterState::Dead;
    // `a` and `b` share an instant, so the id orders them; `f` is a nanosecond later,
    // so it comes after both although its id sorts first.
    let a = dead_letter(id("a"), &queue, &reason, t, dead());
    let b = dead_letter(id("b"), &queue, &reason, t, dead());
    let f = dead_letter(id("0"), &queue, &reason, t + SignedDuration::from_nanos(1), dead());
    let c = dead_letter(id("c"), &other_queue, &reason, t + SignedDuration::from_millis(500), dead());
    let d = dead_letter(id("d"), &queue, &other_reason, secs(t, 1), dead());
    let redriven =
        DeadLetterState::Redriven { to_queue: queue.clone(), message_id: "m-1".into(), at: secs(t, 3) };
    let e = dead_letter(id("e"), &queue, &reason, secs(t, 2), redriven);
    for dead_letter in [&e, &d, &b, &c, &a, &f] {
        store.put_dead_letter(dead_letter).await.expect("put dead letter");
    }
    let again = store.put_dead_letter(&a).await;
    assert!(is_conflict(&again), "each is archived once: {again:?}");
    let changed = DeadLetter { detail: None, ..a.clone() };
    let again = store.put_dead_letter(&changed).await;
    assert!(is_conflict(&again), "a put never overwrites: {again:?}");
    assert_eq!(store.get_dead_letter(&a.id).await.expect("get"), Some(a.clone()), "round trip");
    assert_eq!(store.get_dead_letter(&e.id).await.expect("get"), Some(e.clone()), "round trip, redriven");
    assert_eq!(store.get_dead_letter(&id("missing")).await.expect("get missing"), None);

    let list = |source_queue: Option<&str>, reason: Option<&str>, state: Option<&str>, limit: usize| {
        let filter = DeadLetterFilter {
            source_queue: source_queue.map(str::to_owned),
            reason: reason.map(str::to_owned),
            state: state.map(str::to_owned),
            limit,
        };
        async move {
            let listed = store.list_dead_letters(&filter).await.expect("list dead letters");
            assert!(listed.len() <= limit, "at most the limit");
            listed.into_iter().map(|d| d.id).collect::<Vec<_>>()
        }
    };
    let ids = |letters: &[&DeadLetter]| letters.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        list(Some(&queue), None, None, 100).await,
        ids(&[&a, &b, &f, &d, &e]),
        "by queue, oldest first"
    );
    assert_eq!(
        list(Some(&queue), Some(&reason), None, 100).await,
        ids(&[&a, &b, &f, &e]),
        "queue and reason"
    );
    assert_eq!(list(None, Some(&reason), None, 100).await, ids(&[&a, &b, &f, &c, &e]), "by reason");
    assert_eq!(list(Some(&queue), None, Some("redriven"), 100).await, ids(&[&e]), "by state");
    assert_eq!(list(Some(&queue), None, Some("dead"), 2).await, ids(&[&a, &b]), "state and limit");
    assert_eq!(list(None, Some(&reason), None, 4).await, ids(&[&a, &b, &f, &c]), "limit after the filter");
    assert_eq!(list(Some(&other_queue), None, None, 100).await, ids(&[&c]));
    assert_eq!(list(Some(&queue), None, None, 1).await, ids(&[&a]), "limit 1");
    assert_eq!(
        store
            .list_dead_letters(&DeadLetterFilter { source_queue: Some(queue.clone()), ..Default::default() })
            .await
            .expect("list with limit 0"),
        Vec::new(),
        "at most filter.limit, even 0"
    );

    let redriving = DeadLetter {
        state: DeadLetterState::Redriving {
            to_queue: queue.clone(),
            dedup_id: "redrive-a".into(),
            priority: Priority::new(2).expect("priority 2"),
        },
        version: 2,
        ..a.clone()
    };
    store.update_dead_letter(&redriving).await.expect("update from version 1");
    assert_eq!(store.get_dead_letter(&a.id).await.expect("get"), Some(redriving.clone()), "updated");
    assert_eq!(list(Some(&queue), None, Some("redriving"), 100).await, ids(&[&a]), "listed by its new state");
    assert_eq!(
        list(Some(&queue), None, Some("dead"), 100).await,
        ids(&[&b, &f, &d]),
        "and not by its old one"
    );
    let stale = store.update_dead_letter(&DeadLetter { detail: None, ..redriving.clone() }).await;
    assert!(is_conflict(&stale), "version 1 is gone: {stale:?}");
    let ahead = store.update_dead_letter(&DeadLetter { version: 4, ..redriving.clone() }).await;
    assert!(is_conflict(&ahead), "version 3 was never stored: {ahead:?}");
    assert_eq!(
        store.get_dead_letter(&a.id).await.expect("get"),
        Some(redriving.clone()),
        "losers change nothing"
    );
    let missing = DeadLetter { id: id("missing"), version: 2, ..a.clone() };
    let update_missing = store.update_dead_letter(&missing).await;
    assert!(matches!(update_missing, Err(StoreError::NotFound)), "{update_missing:?}");
    assert_eq!(store.get_dead_letter(&missing.id).await.expect("get missing"), None, "no upsert");

    store.delete_dead_letter(&d.id).await.expect("delete");
    assert_eq!(store.get_dead_letter(&d.id).await.expect("get deleted"), None);
    let again = store.delete_dead_letter(&d.id).await;
    assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
    let update_deleted = store.update_dead_letter(&DeadLetter { version: 2, ..d.clone() }).await;
    assert!(matches!(update_deleted, Err(StoreError::NotFound)), "{update_deleted:?}");
    assert_eq!(list(Some(&queue), None, None, 100).await, ids(&[&a, &b, &f, &e]), "deleted is not listed");
}

/// Failure notes count every failure of a message, racing ones included, keeping the
/// first time and the last time with its reason.
pub async fn failure_notes<S: DeadLetterStore>(store: &S) {
    let id = super::unique("note");
    let t = Timestamp::now();
    assert_eq!(store.failures(&id).await.expect("failures"), None, "nothing noted");
    store.note_failure(&id, "timeout", t).await.expect("note");
    let one = FailureNote { attempts: 1, first_at: t, last_at: t, last_reason: "timeout".into() };
    assert_eq!(store.failures(&id).await.expect("failures"), Some(one));
    store.note_failure(&id, "agent answered 503", secs(t, 5)).await.expect("note again");
    let two = FailureNote {
        attempts: 2,
        first_at: t,
        last_at: secs(t, 5),
        last_reason: "agent answered 503".into(),
    };
    assert_eq!(store.failures(&id).await.expect("failures"), Some(two.clone()));
    let other = super::unique("note");
    assert_eq!(store.failures(&other).await.expect("other"), None, "notes are per message");

    let reasons: Vec<String> = (0..10).map(|i| format!("reason {i}")).collect();
    let noted =
        join_all(reasons.iter().enumerate().map(|(i, r)| store.note_failure(&other, r, secs(t, i as i64))))
            .await;
    for result in noted {
        result.expect("concurrent note");
    }
    let note = store.failures(&other).await.expect("failures").expect("noted");
    assert_eq!(note.attempts, 10, "no failure is lost in a race: {note:?}");
    let noted_at = |reason: &str| reasons.iter().position(|r| r == reason).map(|i| secs(t, i as i64));
    assert_eq!(noted_at(&note.last_reason), Some(note.last_at), "the last reason goes with the last time");
    assert!(note.first_at >= t && note.first_at <= secs(t, 9), "{note:?}");
    assert_eq!(store.failures(&id).await.expect("failures"), Some(two), "untouched by the other message");
}

/// Events append and list oldest first (by time, then id) across days, by type pattern,
/// `since <= time < until`, at most `limit`.
pub async fn events<S: EventStore>(store: &S) {
    let prefix = super::unique("ev");
    // An hour ago, so that every event (one two days earlier) is in the last week.
    let t = Timestamp::now() - SignedDuration::from_hours(1);
    let event = |id: &str, kind: &str, at: Timestamp| Event {
        id: format!("{prefix}-{id}"),
        ..Event::new(
            &format!("{prefix}.{kind}"),
            &format!("message-{id}"),
            at,
            json!({ "queue": "steps", "attempt": 2, "nested": { "list": [1, "two", null, 4.5] } }),
        )
    };
    let old = event("0", "message.dead_lettered", t - SignedDuration::from_hours(50));
    let accepted = event("1", "message.accepted", t);
    // Two events of one instant: the id orders them.
    let failed = event("2", "message.failed", secs(t, 1));
    let routed = event("3", "message.routed", secs(t, 1));
    let started = event("4", "run.started", secs(t, 2));
    let delivered = event("5", "message.delivered", secs(t, 3));
    for e in [&started, &routed, &old, &delivered, &accepted, &failed] {
        store.append_event(e).await.expect("append event");
    }

    let list = |pattern: &str, since: Option<Timestamp>, until: Option<Timestamp>, limit: usize| {
        let filter = EventFilter { pattern: Some(format!("{prefix}.{pattern}")), since, until, limit };
        async move { store.list_events(&filter).await.expect("list events") }
    };
    let all = [&old, &accepted, &failed, &routed, &started, &delivered].map(Clone::clone).to_vec();
    assert_eq!(list("*", None, None, 100).await, all, "every field, oldest first, ties by id, across days");
    let messages = [&old, &accepted, &failed, &routed, &delivered].map(Clone::clone).to_vec();
    assert_eq!(list("message.*", None, None, 100).await, messages, "by type pattern");
    assert_eq!(list("*.failed", None, None, 100).await, vec![failed.clone()], "a star in the middle");
    assert_eq!(list("run.started", None, None, 100).await, vec![started.clone()], "an exact type");
    assert_eq!(list("run.stopped", None, None, 100).await, Vec::new(), "no such type");
    assert_eq!(
        list("*", Some(secs(t, 1)), None, 100).await,
        vec![failed.clone(), routed.clone(), started.clone(), delivered.clone()],
        "since is inclusive"
    );
    let three_days_ago = t - SignedDuration::from_hours(72);
    assert_eq!(
        list("*", Some(three_days_ago), Some(secs(t, 2)), 100).await,
        vec![old.clone(), accepted.clone(), failed.clone(), routed.clone()],
        "until is exclusive"
    );
    assert_eq!(
        list("*", Some(t), Some(secs(t, 2)), 2).await,
        vec![accepted.clone(), failed.clone()],
        "limit"
    );
    assert_eq!(
        list("*", Some(three_days_ago), None, 2).await,
        vec![old.clone(), accepted.clone()],
        "across days"
    );
    assert_eq!(
        list("message.*", Some(secs(t, 1)), None, 3).await,
        vec![failed, routed, delivered],
        "all at once"
    );
    assert_eq!(list("*", None, None, 0).await, Vec::new(), "at most filter.limit, even 0");
}

/// Subscriptions round-trip both target kinds; ids are unique; delete works once.
pub async fn subscriptions<S: SubscriptionStore>(store: &S) {
    let prefix = super::unique("sub");
    let webhook = Subscription {
        id: format!("{prefix}-a"),
        pattern: "message.*".into(),
        target: SubscriptionTarget::Webhook { url: "https://example.com/hook".into() },
        created_at: Timestamp::from_second(1_700_000_000).unwrap(),
    };
    let queue = Subscription {
        id: format!("{prefix}-b"),
        pattern: "*".into(),
        target: SubscriptionTarget::Sqs { queue_url: "https://sqs.us-east-1.amazonaws.com/1/q".into() },
        created_at: Timestamp::from_second(1_700_000_001).unwrap(),
    };
    for subscription in [&queue, &webhook] {
        store.insert_subscription(subscription).await.expect("insert subscription");
    }
    let again = store.insert_subscription(&webhook).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let listed = store.list_subscriptions().await.expect("list subscriptions");
    let ours: Vec<&Subscription> = listed.iter().filter(|s| s.id.starts_with(&prefix)).collect();
    assert_eq!(ours, vec![&webhook, &queue], "listed by id, every field");
    store.delete_subscription(&webhook.id).await.expect("delete");
    let gone = store.delete_subscription(&webhook.id).await;
    assert!(matches!(gone, Err(StoreError::NotFound)), "{gone:?}");
    let listed = store.list_subscriptions().await.expect("list subscriptions");
    assert!(!listed.iter().any(|s| s.id == webhook.id));
}
