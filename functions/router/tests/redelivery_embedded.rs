//! A consumer killed between the agent's answer and marking the message done, on the
//! embedded backend with a clock the test moves: the redelivery reaches the agent with the
//! same idempotency key (header and field), and the slot the dead consumer held is free
//! again once its lease has run out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};
use tdev_domain::agents::{AgentInvoker, AgentTarget, InvokeError, NewAgentRequest, Registry};
use tdev_domain::messaging::{
    AgentLoadStore, Bands, Dispatcher, Disposition, MessagingConfig, Messenger, SendMessageRequest,
};
use tdev_domain::ports::MessageQueue;
use tdev_domain::queue::QueueSpec;
use tdev_domain::queue::{Delivery, Priority};
use tdev_domain::{Clock, ManualClock};
use tdev_embedded::SqliteStore;
use tdev_invoke::{Invoker, default_http_client};
use tokio::sync::Notify;

/// What the agent was sent: the `Idempotency-Key` header and the body, per call.
type Calls = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// An HTTP agent that records every call and answers `{"ok": true}`.
async fn agent() -> (Calls, String) {
    async fn call(State(calls): State<Calls>, headers: HeaderMap, Json(body): Json<Value>) -> Json<Value> {
        let key = headers.get("idempotency-key").map(|v| v.to_str().expect("a text header").to_owned());
        calls.lock().unwrap().push((key, body));
        Json(json!({"ok": true}))
    }
    let calls = Calls::default();
    let app = axum::Router::new().route("/", axum::routing::post(call)).with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (calls, url)
}

/// The real invoker; while `dying` is set, the consumer dies as soon as the agent has
/// answered: the call never returns, and the test drops it.
#[derive(Clone)]
struct DiesAfterAnswer {
    invoker: Invoker,
    dying: Arc<AtomicBool>,
    answered: Arc<Notify>,
}

impl AgentInvoker for DiesAfterAnswer {
    async fn invoke(
        &self,
        target: &AgentTarget,
        payload: &Value,
        timeout: Duration,
    ) -> Result<Map<String, Value>, InvokeError> {
        let answer = self.invoker.invoke(target, payload, timeout).await;
        if self.dying.swap(false, Ordering::SeqCst) {
            self.answered.notify_one();
            std::future::pending::<()>().await;
        }
        answer
    }
}

struct Setup {
    store: SqliteStore,
    clock: Arc<ManualClock>,
    queue: String,
    dispatcher: Arc<Dispatcher<SqliteStore, SqliteStore, DiesAfterAnswer>>,
    invoker: DiesAfterAnswer,
    calls: Calls,
    config: MessagingConfig,
}

/// One agent, `ledger`, that takes one message at a time.
async fn setup() -> Setup {
    let config = MessagingConfig { bands: Bands::single(), ..MessagingConfig::default() };
    let queue = config.bands.band(Priority::DEFAULT).queue.clone();
    let dead_letters = config.bands.band(Priority::DEFAULT).dead_letter_queue.clone();
    let store = SqliteStore::in_memory().expect("store").with_queues([QueueSpec::with_dead_letter(
        &queue,
        &dead_letters,
        config.max_receives + 1,
    )]);
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let messenger = Arc::new(Messenger::new(store.clone(), store.clone(), clock.clone(), config.clone()));
    messenger.bootstrap().await.expect("envelope key");
    let (calls, url) = agent().await;
    let request: NewAgentRequest = serde_json::from_value(json!({
        "id": "ledger", "name": "Ledger", "target": {"kind": "http", "url": url}, "max_concurrency": 1,
    }))
    .expect("agent request");
    Registry::new(store.clone(), clock.clone()).register(request).await.expect("register");
    let invoker = DiesAfterAnswer {
        invoker: Invoker::new(default_http_client().expect("http client"), None),
        dying: Arc::default(),
        answered: Arc::default(),
    };
    let dispatcher = Arc::new(Dispatcher::new(messenger, invoker.clone()));
    Setup { store, clock, queue, dispatcher, invoker, calls, config }
}

impl Setup {
    async fn send(&self, key: &str) {
        let request: SendMessageRequest = serde_json::from_value(json!({
            "to_agent": "ledger", "type": "ledger.credit", "payload": {"amount": 42},
            "group": key, "dedup_id": key,
        }))
        .expect("message request");
        self.dispatcher.messenger().send(vec![("$".into(), request)], None).await.expect("send");
    }

    async fn receive(&self) -> Delivery {
        let mut received =
            self.store.receive(&self.queue, 1, Duration::from_secs(300)).await.expect("receive");
        received.pop().expect("a message")
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(SignedDuration::try_from(by).expect("a duration"));
    }

    fn calls(&self) -> Vec<(Option<String>, Value)> {
        self.calls.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_after_the_answer_redelivers_with_the_same_key_and_its_slot_frees_after_its_lease()
{
    let setup = setup().await;
    setup.send("credit-42").await;
    setup.send("credit-43").await;

    // The first message's consumer dies once the agent has answered: the key is never
    // marked done, the slot never given back.
    let first = setup.receive().await;
    setup.invoker.dying.store(true, Ordering::SeqCst);
    let consumer = {
        let (dispatcher, queue, first) = (setup.dispatcher.clone(), setup.queue.clone(), first.clone());
        tokio::spawn(async move { dispatcher.process(&queue, &first).await })
    };
    setup.invoker.answered.notified().await;
    consumer.abort();
    assert!(consumer.await.expect_err("killed").is_cancelled());
    assert_eq!(setup.calls().len(), 1);

    // The agent takes one message at a time, and the dead consumer holds its slot.
    let second = setup.receive().await;
    assert!(
        matches!(setup.dispatcher.process(&setup.queue, &second).await, Disposition::Hold(_)),
        "held while the dead consumer's slot is leased"
    );
    let now = setup.clock.now();
    assert_eq!(setup.store.in_flight("ledger", now).await.expect("in flight"), 1);

    // A little past the attempt timeout, the slot's lease has run out: it is free.
    setup.advance(setup.config.attempt_timeout + Duration::from_secs(11));
    let now = setup.clock.now();
    assert_eq!(
        setup.store.in_flight("ledger", now).await.expect("in flight"),
        0,
        "the dead slot no longer counts"
    );
    let done = setup.dispatcher.process(&setup.queue, &second).await;
    assert_eq!(done, Disposition::Done);
    setup.dispatcher.settle(&setup.queue, &second, done).await.expect("settle");
    assert_eq!(setup.calls().len(), 2);

    // The first message comes back (its visibility ran out, as the dead consumer's does).
    setup.store.retry_after(&setup.queue, &first.receipt, Duration::ZERO).await.expect("visible again");
    let redelivery = setup.receive().await;
    assert_eq!(redelivery.message_id, first.message_id);
    assert!(
        matches!(setup.dispatcher.process(&setup.queue, &redelivery).await, Disposition::Hold(_)),
        "held while the dead consumer's claim of the key is leased"
    );
    setup.advance(Duration::from_secs(20));
    let done = setup.dispatcher.process(&setup.queue, &redelivery).await;
    assert_eq!(done, Disposition::Done);
    setup.dispatcher.settle(&setup.queue, &redelivery, done).await.expect("settle");

    let calls = setup.calls();
    let keys: Vec<(Option<&str>, Option<&str>)> =
        calls.iter().map(|(header, body)| (header.as_deref(), body["idempotency_key"].as_str())).collect();
    assert_eq!(
        keys,
        [
            (Some("credit-42"), Some("credit-42")),
            (Some("credit-43"), Some("credit-43")),
            (Some("credit-42"), Some("credit-42")),
        ],
        "the redelivery carries the first call's key, as the header and in the body"
    );
    assert_eq!(calls[0].1, calls[2].1, "the agent is sent the same message again");
    let now = setup.clock.now();
    assert_eq!(
        setup.store.in_flight("ledger", now).await.expect("in flight"),
        0,
        "every live slot given back"
    );
}
