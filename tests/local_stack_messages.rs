//! Messaging through the local stack's HTTP surface, on the embedded backend: priorities
//! and order, envelopes refused with their reason, one effect per message, held messages
//! behind an open circuit breaker, dead letters and their redrive, and ten thousand
//! messages with failing agents of which none is lost.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Stack, problem, serve, test_messaging};
use tdev_domain::messaging::envelope::{self, EnvelopeKey, Keyring};
use tdev_domain::messaging::{BreakerSettings, Message, MessagingConfig, Recipient};
use tdev_domain::ports::{MessageQueue, SecretStore};
use tdev_domain::queue::{NewMessage, Priority};

/// What the scripted agents did: every successful call, in order.
#[derive(Default)]
struct Agents {
    done: Mutex<Vec<Value>>,
    /// Every call as it arrived, with its `Idempotency-Key` header as `idempotency_key_header`.
    received: Mutex<Vec<Value>>,
    calls: Mutex<HashMap<String, u32>>,
    /// While set, every call fails with 503.
    down: Mutex<bool>,
}

/// The scripted agents' HTTP server. A message's payload steers its agent:
/// `{"fail_times": n}` fails the first n calls for it with 503, `{"reject": true}`
/// answers 400, `{"flaky": p}` fails a call with probability p (by a hash of the id and
/// the call's number), `{"slow_first_ms": ms}` does the first call's work and answers
/// only after `ms`.
async fn agents() -> (Arc<Agents>, String) {
    async fn call(
        State(agents): State<Arc<Agents>>,
        Path(name): Path<String>,
        headers: HeaderMap,
        Json(message): Json<Value>,
    ) -> Result<Json<Value>, (StatusCode, String)> {
        let id = message["id"].as_str().unwrap_or_default().to_owned();
        let n = {
            let mut calls = agents.calls.lock().unwrap();
            let n = calls.entry(id.clone()).or_default();
            *n += 1;
            *n
        };
        let mut received = message.clone();
        received["idempotency_key_header"] =
            json!(headers.get("idempotency-key").map(|v| v.to_str().unwrap()));
        agents.received.lock().unwrap().push(received);
        let payload = &message["payload"];
        if let Some(ms) = payload["slow_first_ms"].as_u64().filter(|_| n == 1) {
            let mut record = message.clone();
            record["agent"] = json!(name);
            agents.done.lock().unwrap().push(record);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return Ok(Json(json!({"ok": true})));
        }
        let down = *agents.down.lock().unwrap();
        let fail_times = payload["fail_times"].as_u64().unwrap_or(0) as u32;
        let flaky = payload["flaky"].as_f64().is_some_and(|p| {
            let hash = id.bytes().fold(u64::from(n) * 0x9E37_79B9, |h, b| h.rotate_left(5) ^ u64::from(b));
            (hash % 1000) as f64 / 1000.0 < p
        });
        if down || n <= fail_times || flaky {
            return Err((StatusCode::SERVICE_UNAVAILABLE, "busy".into()));
        }
        // The agent at `/fixed` takes everything: where an operator points a fixed agent.
        if payload["reject"] == true && name != "fixed" {
            return Err((StatusCode::BAD_REQUEST, "I will never take this".into()));
        }
        let mut record = message.clone();
        record["agent"] = json!(name);
        agents.done.lock().unwrap().push(record);
        Ok(Json(json!({"ok": true})))
    }
    let agents = Arc::new(Agents::default());
    let base =
        serve(axum::Router::new().route("/{name}", axum::routing::post(call)).with_state(agents.clone()))
            .await;
    (agents, base)
}

async fn register<Q>(stack: &Stack<tdev_embedded::SqliteStore, Q>, body: Value) {
    let response = send(stack, "/v1/agents", body).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

/// A registered HTTP agent `worker` at `{base}/worker`.
async fn register_worker<Q>(stack: &Stack<tdev_embedded::SqliteStore, Q>, base: &str) {
    register(
        stack,
        json!({"id": "worker", "name": "W", "target": {"kind": "http", "url": format!("{base}/worker")}}),
    )
    .await;
}

async fn send<Q>(stack: &Stack<tdev_embedded::SqliteStore, Q>, path: &str, body: Value) -> reqwest::Response {
    stack.post_json(path, &stack.admin_key, &body).await
}

async fn get<Q>(stack: &Stack<tdev_embedded::SqliteStore, Q>, path: &str) -> Value {
    let response =
        stack.request(Method::GET, path).header("x-api-key", &stack.admin_key).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// The stack, with `admin_key` swapped for an admin key without a practical rate limit:
/// these tests poll.
async fn start_messaging(messaging: MessagingConfig) -> Stack {
    let (stack, workers) = start_paused(messaging).await;
    workers();
    stack
}

async fn start_paused(messaging: MessagingConfig) -> (Stack, Box<dyn FnOnce() + Send>) {
    let (mut stack, workers) = support::start_paused(messaging).await;
    let (_, key) = stack.create_key(&["admin"], Some((1_000_000, 1_000_000))).await;
    stack.admin_key = key;
    (stack, workers)
}

/// Waits until `done` holds, or fails after `limit`.
async fn eventually(limit: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn dead_letters<Q>(stack: &Stack<tdev_embedded::SqliteStore, Q>, query: &str) -> Vec<Value> {
    get(stack, &format!("/v1/dead-letters?{query}")).await["dead_letters"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_group_is_processed_by_priority_then_in_send_order() {
    let (agents, base) = agents().await;
    let (stack, workers) = start_paused(test_messaging()).await;
    register_worker(&stack, &base).await;
    let priorities = [5, 1, 5, 5, 10, 1];
    for (seq, priority) in priorities.iter().enumerate() {
        let body = json!({"to_agent": "worker", "type": "task", "priority": priority, "group": "g", "payload": {"seq": seq}});
        assert_eq!(send(&stack, "/v1/messages", body).await.status(), 202);
    }
    workers();
    eventually(Duration::from_secs(10), "six deliveries", async || agents.done.lock().unwrap().len() == 6)
        .await;
    let done = agents.done.lock().unwrap().clone();
    let order: Vec<(u64, u64)> = done
        .iter()
        .map(|m| (m["priority"].as_u64().unwrap(), m["payload"]["seq"].as_u64().unwrap()))
        .collect();
    assert_eq!(order, [(1, 1), (1, 5), (5, 0), (5, 2), (5, 3), (10, 4)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_refuses_what_it_can_know_is_undeliverable() {
    let stack = start_messaging(test_messaging()).await;
    register(&stack, json!({"id": "idle", "name": "I", "status": "inactive", "capabilities": ["sum"], "target": {"kind": "http", "url": "http://127.0.0.1:9/x"}})).await;
    let missing = send(&stack, "/v1/messages", json!({"to_agent": "nobody", "type": "t"})).await;
    problem(missing, 404).await;
    let inactive =
        problem(send(&stack, "/v1/messages", json!({"to_agent": "idle", "type": "t"})).await, 422).await;
    assert_eq!(inactive["errors"][0]["path"], "$.to_agent");
    let no_capable =
        problem(send(&stack, "/v1/messages", json!({"capability": "sum", "type": "t"})).await, 422).await;
    assert_eq!(no_capable["errors"][0]["path"], "$.capability");
    let bad = json!({"messages": [{"to_agent": "idle", "type": "ok", "priority": 3}, {"to_agent": "idle", "type": "t", "priority": 11}]});
    let batch = problem(send(&stack, "/v1/messages:batch", bad).await, 422).await;
    assert_eq!(batch["errors"][0]["path"], "$.messages[1].priority", "{batch}");
    let none = stack.messenger.queue().receive("messages", 10, Duration::from_secs(1)).await.unwrap();
    assert!(none.is_empty(), "nothing was sent: {none:?}");
}

/// A message sealed with the stack's own key, for putting straight on the queue.
async fn sealed(stack: &Stack, id: &str, created_at: jiff::Timestamp, encrypt: bool) -> (String, Keyring) {
    let versions = stack.store.secret_versions(&stack.messenger.config().envelope_secret).await.unwrap();
    let keys = Keyring::from_secret(&versions);
    let message = Message {
        id: id.into(),
        kind: "task".into(),
        to: Recipient::Agent("worker".into()),
        payload: json!({"text": "héllo", "n": 1.5}),
        priority: Priority::DEFAULT,
        group: "g".into(),
        idempotency_key: id.into(),
        metadata: Default::default(),
        sender: Some("a-service".into()),
        created_at,
    };
    (envelope::seal(&message, &keys, encrypt), keys)
}

/// An encrypted envelope under `keys`.
fn envelope_from(keys: &Keyring, now: jiff::Timestamp) -> String {
    let message = Message {
        id: "foreign".into(),
        kind: "task".into(),
        to: Recipient::Agent("worker".into()),
        payload: json!({"secret": true}),
        priority: Priority::DEFAULT,
        group: "g".into(),
        idempotency_key: "foreign".into(),
        metadata: Default::default(),
        sender: None,
        created_at: now,
    };
    envelope::seal(&message, keys, true)
}

/// Signs `envelope` again with the keyring's current key, as the specification says.
fn resign(mut envelope: Value, keys: &Keyring) -> String {
    use hmac::Mac as _;
    envelope.as_object_mut().unwrap().remove("sig");
    let canonical = envelope::canonical::to_canonical(&envelope);
    let key = keys.key(keys.current_kid()).unwrap().signing_key();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(canonical.as_bytes());
    envelope["sig"] = json!(hex::encode(mac.finalize().into_bytes()));
    envelope.to_string()
}

async fn put_on_queue(stack: &Stack, body: String, dedup_id: &str) {
    let message = NewMessage {
        group: "g".into(),
        dedup_id: dedup_id.into(),
        body,
        priority: Priority::DEFAULT,
        attributes: BTreeMap::new(),
    };
    stack.messenger.queue().send("messages", message).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_envelopes_are_dead_lettered_with_their_reason_and_duplicates_have_one_effect() {
    let (agents, base) = agents().await;
    let stack = start_messaging(test_messaging()).await;
    register_worker(&stack, &base).await;
    let now = jiff::Timestamp::now();

    let (good, _) = sealed(&stack, "good", now, true).await;
    let mut tampered: Value = serde_json::from_str(&sealed(&stack, "tampered", now, false).await.0).unwrap();
    tampered["payload"]["text"] = json!("changed");
    let (stale, _) = sealed(&stack, "stale", now - jiff::SignedDuration::from_mins(10), true).await;
    let other_key = Keyring::new(EnvelopeKey::new("not-ours", "another secret entirely"), vec![]);
    let wrong_key = {
        let message: Message = Message {
            id: "wrong-key".into(),
            kind: "task".into(),
            to: Recipient::Agent("worker".into()),
            payload: json!({}),
            priority: Priority::DEFAULT,
            group: "g".into(),
            idempotency_key: "wrong-key".into(),
            metadata: Default::default(),
            sender: None,
            created_at: now,
        };
        envelope::seal(&message, &other_key, false)
    };
    // Signed correctly, over a ciphertext no key of ours decrypts.
    let (encrypted, keys) = sealed(&stack, "undecryptable", now, true).await;
    let foreign = {
        let mut message: Value = serde_json::from_str(&envelope_from(&other_key, now)).unwrap();
        message["ciphertext"].take()
    };
    let mut undecryptable: Value = serde_json::from_str(&encrypted).unwrap();
    undecryptable["ciphertext"] = foreign;
    let undecryptable = resign(undecryptable, &keys);

    put_on_queue(&stack, undecryptable, "undecryptable").await;
    put_on_queue(&stack, tampered.to_string(), "tampered").await;
    put_on_queue(&stack, stale, "stale").await;
    put_on_queue(&stack, wrong_key, "wrong-key").await;
    put_on_queue(&stack, "not json at all".into(), "junk").await;
    for copy in 0..3 {
        put_on_queue(&stack, good.clone(), &format!("good-copy-{copy}")).await;
    }

    eventually(Duration::from_secs(10), "five dead letters", async || {
        dead_letters(&stack, "").await.len() == 5
    })
    .await;
    let mut reasons: Vec<String> =
        dead_letters(&stack, "").await.iter().map(|d| d["reason"].as_str().unwrap().to_owned()).collect();
    reasons.sort();
    assert_eq!(reasons, ["malformed", "signature_invalid", "stale", "undecryptable", "unknown_key"]);
    eventually(Duration::from_secs(5), "the good message", async || agents.done.lock().unwrap().len() == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let done = agents.done.lock().unwrap().clone();
    assert_eq!(done.len(), 1, "three copies, one effect: {done:?}");
    assert_eq!(done[0]["payload"], json!({"text": "héllo", "n": 1.5}));
    let refused: HashSet<String> =
        ["tampered", "stale", "wrong-key", "undecryptable"].map(String::from).into();
    assert!(done.iter().all(|m| !refused.contains(m["id"].as_str().unwrap())));
    let events = get(&stack, "/v1/events?type=message.duplicate").await;
    assert_eq!(events["events"].as_array().unwrap().len(), 2, "{events}");
}

/// The agent does the work but its answer comes after the attempt timeout, as if the
/// consumer had died before hearing it: the message is delivered again, and every call
/// carries the message's idempotency key, as the header and in the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_called_again_after_its_answer_was_lost_gets_the_same_idempotency_key() {
    let (agents, base) = agents().await;
    let messaging = MessagingConfig { attempt_timeout: Duration::from_millis(500), ..test_messaging() };
    let stack = start_messaging(messaging).await;
    register(
        &stack,
        json!({"id": "ledger", "name": "L", "target": {"kind": "http", "url": format!("{base}/ledger")}}),
    )
    .await;
    let body = json!({"to_agent": "ledger", "type": "credit", "dedup_id": "credit-42", "payload": {"slow_first_ms": 1500}});
    assert_eq!(send(&stack, "/v1/messages", body).await.status(), 202);
    let other = json!({"to_agent": "ledger", "type": "credit", "group": "other", "payload": {}});
    let accepted: Value = send(&stack, "/v1/messages", other).await.json().await.unwrap();

    eventually(Duration::from_secs(15), "the second call of credit-42", async || {
        agents.received.lock().unwrap().iter().filter(|m| m["idempotency_key"] == "credit-42").count() == 2
            && get(&stack, "/v1/events?type=message.delivered").await["events"].as_array().unwrap().len() == 2
    })
    .await;
    let keys: Vec<(Value, Value)> = agents
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|m| (m["idempotency_key_header"].clone(), m["idempotency_key"].clone()))
        .collect();
    let default_key = accepted["id"].clone();
    assert_eq!(keys.len(), 3, "{keys:?}");
    for expected in [json!("credit-42"), default_key] {
        let calls = keys.iter().filter(|(_, field)| *field == expected).count();
        let with_header =
            keys.iter().filter(|(header, field)| *field == expected && *header == expected).count();
        assert_eq!(with_header, calls, "every call carries the key as the header too: {keys:?}");
    }
    let failed = get(&stack, "/v1/events?type=message.failed").await;
    assert_eq!(failed["events"].as_array().unwrap().len(), 1, "the lost answer: {failed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_in_a_group_holds_back_only_that_group() {
    let (agents, base) = agents().await;
    let (stack, workers) = start_paused(test_messaging()).await;
    register_worker(&stack, &base).await;
    let messages = [("a", "g1", 0), ("b", "g1", 1), ("c", "g1", 0), ("d", "g2", 0), ("e", "g2", 0)];
    for (name, group, fail_times) in messages {
        let body = json!({"to_agent": "worker", "type": "t", "group": group, "payload": {"name": name, "fail_times": fail_times}});
        assert_eq!(send(&stack, "/v1/messages", body).await.status(), 202);
    }
    workers();
    eventually(Duration::from_secs(10), "five deliveries", async || agents.done.lock().unwrap().len() == 5)
        .await;
    let done = agents.done.lock().unwrap().clone();
    let names = |group: &str| -> Vec<String> {
        done.iter()
            .filter(|m| m["group"] == group)
            .map(|m| m["payload"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names("g1"), ["a", "b", "c"], "order holds in the failing group");
    assert_eq!(names("g2"), ["d", "e"]);
    let position = |name: &str| done.iter().position(|m| m["payload"]["name"] == name).unwrap();
    assert!(position("e") < position("b"), "the other group did not wait for the retry: {done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_holds_messages_without_dead_lettering_them_then_closes() {
    let (agents, base) = agents().await;
    let messaging = MessagingConfig {
        max_receives: 3,
        breaker: BreakerSettings {
            failure_threshold: 2,
            open_for: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(10),
        },
        ..test_messaging()
    };
    let stack = start_messaging(messaging).await;
    register_worker(&stack, &base).await;
    *agents.down.lock().unwrap() = true;
    for i in 0..4 {
        let body = json!({"to_agent": "worker", "type": "t", "group": format!("g{i}"), "payload": {"i": i}});
        assert_eq!(send(&stack, "/v1/messages", body).await.status(), 202);
    }
    eventually(Duration::from_secs(10), "the breaker to open", async || {
        !get(&stack, "/v1/events?type=agent.circuit_opened").await["events"].as_array().unwrap().is_empty()
    })
    .await;
    let health = &get(&stack, "/v1/agents/worker").await["health"];
    assert_ne!(health["breaker"]["state"], "closed", "the registry shows the breaker: {health}");
    // Longer than three receives' worth of holds: the messages wait, none is dead-lettered.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(dead_letters(&stack, "state=all").await.is_empty(), "held messages were dead-lettered");
    let calls_while_open: u32 = agents.calls.lock().unwrap().values().sum();
    *agents.down.lock().unwrap() = false;
    eventually(Duration::from_secs(15), "all four delivered", async || {
        agents.done.lock().unwrap().len() == 4
    })
    .await;
    let closed = get(&stack, "/v1/events?type=agent.circuit_closed").await;
    assert_eq!(closed["events"].as_array().unwrap().len(), 1, "{closed}");
    // While open, only probes reached the agent (one per open period, at most).
    assert!(calls_while_open <= 2 + 5, "{calls_while_open} calls reached an agent behind an open breaker");
    assert!(dead_letters(&stack, "state=all").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_with_why_and_redriven_exactly_once() {
    let (agents, base) = agents().await;
    let stack = start_messaging(test_messaging()).await;
    register_worker(&stack, &base).await;
    for i in 0..3 {
        let body = json!({"to_agent": "worker", "type": "t", "group": format!("g{i}"), "payload": {"i": i, "reject": true}});
        assert_eq!(send(&stack, "/v1/messages", body).await.status(), 202);
    }
    eventually(Duration::from_secs(10), "three dead letters", async || {
        dead_letters(&stack, "").await.len() == 3
    })
    .await;
    let listed = dead_letters(&stack, "reason=agent_rejected").await;
    assert_eq!(listed.len(), 3);
    let first = &listed[0];
    assert_eq!(first["source_queue"], "messages");
    assert_eq!(first["attempts"], 1);
    assert!(first["first_failure_at"].is_string() && first["last_failure_at"].is_string(), "{first}");
    assert!(first["detail"].as_str().unwrap().contains("never take this"), "{first}");
    let id = first["id"].as_str().unwrap();
    assert_eq!(get(&stack, &format!("/v1/dead-letters/{id}")).await["id"], *id);
    assert!(agents.done.lock().unwrap().is_empty());

    let ids: Vec<Value> = listed.iter().map(|d| d["id"].clone()).collect();
    let refuse = problem(send(&stack, "/v1/dead-letters:redrive", json!({})).await, 422).await;
    assert_eq!(refuse["errors"][0]["path"], "$.ids");
    {
        // The operator points the agent at a fixed deployment.
        let response = stack
            .request(Method::PATCH, "/v1/agents/worker")
            .header("x-api-key", &stack.admin_key)
            .json(&json!({"target": {"kind": "http", "url": format!("{base}/fixed")}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let response = send(&stack, "/v1/dead-letters:redrive", json!({"ids": ids, "priority": 2})).await;
    assert_eq!(response.status(), 200);
    let redriven: Value = response.json().await.unwrap();
    assert_eq!(redriven["redriven"].as_array().unwrap().len(), 3, "{redriven}");
    let again: Value =
        send(&stack, "/v1/dead-letters:redrive", json!({"ids": ids})).await.json().await.unwrap();
    assert!(again["redriven"].as_array().unwrap().is_empty(), "a second redrive sends nothing: {again}");
    eventually(Duration::from_secs(10), "the redriven messages", async || {
        agents.done.lock().unwrap().len() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let done = agents.done.lock().unwrap().clone();
    assert_eq!(done.len(), 3, "each redriven message processed once: {done:?}");
    assert!(done.iter().all(|m| m["agent"] == "fixed" && m["priority"] == 2), "{done:?}");
    let states: Vec<Value> =
        dead_letters(&stack, "state=redriven").await.iter().map(|d| d["state"].clone()).collect();
    assert_eq!(states.len(), 3);
    assert!(dead_letters(&stack, "").await.is_empty(), "none left dead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_with_failing_agents_none_lost() {
    let (agents, base) = agents().await;
    let messaging = MessagingConfig {
        max_receives: 3,
        breaker: BreakerSettings { failure_threshold: 1000, ..BreakerSettings::default() },
        ..test_messaging()
    };
    let stack = start_messaging(messaging).await;
    for name in ["a", "b", "c"] {
        register(&stack, json!({"id": name, "name": name, "capabilities": ["work"], "target": {"kind": "http", "url": format!("{base}/{name}")}})).await;
    }
    const TOTAL: usize = 10_000;
    let key = stack.admin_key.clone();
    let mut accepted = HashSet::new();
    // Batches small enough for the test stack's 4 KiB body limit.
    const BATCH: usize = 16;
    for batch in 0..TOTAL.div_ceil(BATCH) {
        let messages: Vec<Value> = (0..BATCH)
            .map(|i| batch * BATCH + i)
            .filter(|n| *n < TOTAL)
            .map(|n| {
                json!({"capability": "work", "type": "t", "group": format!("g{}", n % 1000), "priority": 1 + n % 10,
                       "payload": {"n": n, "flaky": 0.2, "reject": n % 97 == 0}})
            })
            .collect();
        let response = stack
            .request(Method::POST, "/v1/messages:batch")
            .header("x-api-key", &key)
            .json(&json!({"messages": messages}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        for m in body["messages"].as_array().unwrap() {
            accepted.insert(m["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(accepted.len(), TOTAL);
    let settled = async || {
        let done = agents.done.lock().unwrap().len();
        let dead = stack
            .messenger
            .dead_letters(&tdev_domain::messaging::DeadLetterFilter {
                limit: 1_000_000,
                ..Default::default()
            })
            .await
            .unwrap()
            .len();
        done + dead >= TOTAL
    };
    eventually(Duration::from_secs(300), "every message processed or dead-lettered", settled).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let done = agents.done.lock().unwrap().clone();
    let mut processed: HashMap<String, u32> = HashMap::new();
    for m in &done {
        *processed.entry(m["id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let twice: Vec<_> = processed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "processed more than once: {twice:?}");
    let all = tdev_domain::messaging::DeadLetterFilter { limit: 1_000_000, ..Default::default() };
    let dead = stack.messenger.dead_letters(&all).await.unwrap();
    let versions = stack.store.secret_versions(&stack.messenger.config().envelope_secret).await.unwrap();
    let opener = envelope::Opener {
        keys: Keyring::from_secret(&versions),
        compat: None,
        freshness: Duration::from_secs(3600),
    };
    let mut dead_ids = HashSet::new();
    for d in &dead {
        assert!(!d.reason.is_empty());
        let opened = opener.open(&d.message.body, jiff::Timestamp::now()).expect("a dead letter opens");
        assert!(dead_ids.insert(opened.message.id.clone()), "dead-lettered twice");
        assert!(!processed.contains_key(&opened.message.id), "both processed and dead-lettered");
    }
    let rejected = dead.iter().filter(|d| d.reason == "agent_rejected").count();
    assert!(rejected > 0, "an agent refused some");
    assert!(processed.len() > TOTAL / 2, "most went through");
    let refusals: HashSet<u64> = (0..TOTAL as u64).filter(|n| n % 97 == 0).collect();
    assert!(
        done.iter().all(|m| !refusals.contains(&m["payload"]["n"].as_u64().unwrap())),
        "a refused one was processed"
    );
    let accounted: HashSet<&String> = processed.keys().chain(dead_ids.iter()).collect();
    assert_eq!(accounted.len(), TOTAL, "processed {} + dead {} != sent", processed.len(), dead_ids.len());
    assert!(accounted.iter().all(|id| accepted.contains(*id)));
    println!("processed {}, dead-lettered {} ({} rejected)", processed.len(), dead_ids.len(), rejected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_matching_events_at_least_once_with_retries() {
    #[derive(Default)]
    struct Hook {
        calls: Mutex<u32>,
        got: Mutex<Vec<Value>>,
        content_types: Mutex<Vec<String>>,
    }
    async fn hook(
        State(hook): State<Arc<Hook>>,
        Path(name): Path<String>,
        headers: axum::http::HeaderMap,
        Json(event): Json<Value>,
    ) -> StatusCode {
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        hook.content_types.lock().unwrap().push(content_type.to_owned());
        let n = {
            let mut calls = hook.calls.lock().unwrap();
            *calls += 1;
            *calls
        };
        match name.as_str() {
            // Unavailable twice, then fine: the deliveries are retried.
            "flaky" if n <= 2 => StatusCode::SERVICE_UNAVAILABLE,
            "flaky" => {
                hook.got.lock().unwrap().push(event);
                StatusCode::NO_CONTENT
            }
            _ => StatusCode::GONE,
        }
    }
    let hooks = Arc::new(Hook::default());
    let hooks_url =
        serve(axum::Router::new().route("/{name}", axum::routing::post(hook)).with_state(hooks.clone()))
            .await;

    let (agents, base) = agents().await;
    let stack = start_messaging(test_messaging()).await;
    register_worker(&stack, &base).await;
    let bad = json!({"pattern": "message.*", "target": {"kind": "webhook", "url": "ftp://x"}});
    let refused = problem(send(&stack, "/v1/subscriptions", bad).await, 422).await;
    assert_eq!(refused["errors"][0]["path"], "$.target.url");
    let flaky = json!({"pattern": "message.deliv*", "target": {"kind": "webhook", "url": format!("{hooks_url}/flaky")}});
    assert_eq!(send(&stack, "/v1/subscriptions", flaky).await.status(), 201);
    let gone = json!({"pattern": "message.accepted", "target": {"kind": "webhook", "url": format!("{hooks_url}/gone")}});
    let gone: Value = send(&stack, "/v1/subscriptions", gone).await.json().await.unwrap();
    assert_eq!(get(&stack, "/v1/subscriptions").await["subscriptions"].as_array().unwrap().len(), 2);

    let sent: Value =
        send(&stack, "/v1/messages", json!({"to_agent": "worker", "type": "t"})).await.json().await.unwrap();
    eventually(Duration::from_secs(15), "the delivered event, after two refusals", async || {
        !hooks.got.lock().unwrap().is_empty()
    })
    .await;
    let got = hooks.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["type"], "message.delivered");
    assert_eq!(got[0]["subject"], sent["id"]);
    // In CloudEvents' structured mode.
    assert_eq!(got[0]["specversion"], "1.0");
    assert_eq!(got[0]["source"], "/tdev/messaging");
    assert_eq!(got[0]["datacontenttype"], "application/json");
    assert!(got[0]["time"].is_string() && got[0].get("at").is_none(), "{:?}", got[0]);
    let content_types = hooks.content_types.lock().unwrap().clone();
    assert!(content_types.iter().all(|c| c == "application/cloudevents+json"), "{content_types:?}");
    assert_eq!(agents.done.lock().unwrap().len(), 1);
    // The subscriber that refuses: its delivery is a dead letter from the event queue.
    eventually(Duration::from_secs(10), "the refused delivery's dead letter", async || {
        !dead_letters(&stack, "source_queue=events").await.is_empty()
    })
    .await;
    let dead = dead_letters(&stack, "source_queue=events").await;
    assert_eq!(dead[0]["reason"], "subscriber_rejected", "{dead:?}");
    let path = format!("/v1/subscriptions/{}", gone["id"].as_str().unwrap());
    let deleted =
        stack.request(Method::DELETE, &path).header("x-api-key", &stack.admin_key).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let again =
        stack.request(Method::DELETE, &path).header("x-api-key", &stack.admin_key).send().await.unwrap();
    problem(again, 404).await;
}

/// Recording an event costs one send, however many subscriptions match it: the fan-out to
/// each subscriber happens in the consumer. (A redrive of 100 dead letters with a few
/// hundred subscriptions once did tens of thousands of sends inside one request.)
#[tokio::test]
async fn an_event_is_one_fan_out_task_however_many_subscriptions_match() {
    let (stack, _workers) = start_paused(test_messaging()).await;
    for i in 0..50 {
        let subscription =
            json!({"pattern": "*", "target": {"kind": "webhook", "url": format!("http://127.0.0.1:9/{i}")}});
        assert_eq!(send(&stack, "/v1/subscriptions", subscription).await.status(), 201);
    }
    register(
        &stack,
        json!({"id": "worker", "name": "W", "target": {"kind": "http", "url": "http://127.0.0.1:9/w"}}),
    )
    .await;
    assert_eq!(send(&stack, "/v1/messages", json!({"to_agent": "worker", "type": "t"})).await.status(), 202);
    let queued =
        stack.store.receive(tdev_domain::events::EVENT_QUEUE, 100, Duration::from_secs(60)).await.unwrap();
    assert_eq!(queued.len(), 1, "one task for the accepted message's event, not one per subscription");
    assert_eq!(queued[0].group, "fan-out");
}

/// Reads Server-Sent Events from `response` until `count` have come (or 10 s pass):
/// each event's `id` and its `data` as JSON.
async fn read_events(response: &mut reqwest::Response, count: usize) -> Vec<(String, Value)> {
    let mut text = String::new();
    let mut events = Vec::new();
    let until = Instant::now() + Duration::from_secs(10);
    while events.len() < count && Instant::now() < until {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk()).await;
        let Ok(Ok(Some(chunk))) = chunk else { break };
        text.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let id = frame.lines().find_map(|l| l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")));
            let data =
                frame.lines().find_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")));
            if let (Some(id), Some(data)) = (id, data) {
                events.push((id.to_owned(), serde_json::from_str(data).expect("an event as JSON")));
            }
        }
    }
    events
}

/// `GET /v1/events:stream`: the events that match, as they happen, each once and in
/// order; a client that reconnects with the last id it got gets exactly what it missed;
/// a position the server never gave is a 422 at its field; no credential, a 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_follows_events_live_and_resumes_without_gaps() {
    let (_agents, base) = agents().await;
    let stack = start_messaging(test_messaging()).await;
    register_worker(&stack, &base).await;
    let open = |query: &str, last: Option<&str>| {
        let mut request = stack
            .request(Method::GET, &format!("/v1/events:stream{query}"))
            .header("x-api-key", &stack.admin_key);
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        request.send()
    };
    let mut live = open("?type=message.accepted", None).await.unwrap();
    assert_eq!(live.status(), 200);
    assert!(live.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut sent = Vec::new();
    for i in 0..3 {
        let body = json!({"to_agent": "worker", "type": format!("t{i}")});
        let accepted: Value = send(&stack, "/v1/messages", body).await.json().await.unwrap();
        sent.push(accepted["id"].as_str().unwrap().to_owned());
    }
    let got = read_events(&mut live, 3).await;
    let subjects: Vec<&str> = got.iter().map(|(_, e)| e["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, sent.iter().map(String::as_str).collect::<Vec<_>>(), "each once, in order");
    assert!(got.iter().all(|(_, e)| e["type"] == "message.accepted" && e["specversion"] == "1.0"));
    drop(live);

    // Cut off: two more happen; reconnecting after the last one received gives exactly them.
    for i in 3..5 {
        let body = json!({"to_agent": "worker", "type": format!("t{i}")});
        let accepted: Value = send(&stack, "/v1/messages", body).await.json().await.unwrap();
        sent.push(accepted["id"].as_str().unwrap().to_owned());
    }
    let last = got[2].0.clone();
    let mut resumed = open("?type=message.accepted", Some(&last)).await.unwrap();
    let again = read_events(&mut resumed, 2).await;
    let subjects: Vec<&str> = again.iter().map(|(_, e)| e["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, [sent[3].as_str(), sent[4].as_str()], "exactly what was missed");
    // The query's `after` says the same; a subject narrows to one message's events.
    let mut one = open(&format!("?after={last}&subject={}", sent[4]), None).await.unwrap();
    let events = read_events(&mut one, 1).await;
    assert_eq!(events[0].1["subject"], sent[4]);
    assert_eq!(events[0].1["type"], "message.accepted", "its first event");

    let refused = problem(open("", Some("not-a-position")).await.unwrap(), 422).await;
    assert_eq!(refused["errors"][0]["path"], "$.header.last-event-id", "{refused}");
    let refused = problem(open("?after=999999999", None).await.unwrap(), 422).await;
    assert_eq!(refused["errors"][0]["path"], "$.query.after", "{refused}");
    let anonymous = stack.request(Method::GET, "/v1/events:stream").send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}
