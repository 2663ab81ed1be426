//! Messaging on SQS FIFO (moto): priorities land on their band queue; a Python producer's
//! envelopes and compatibility messages, put straight on a band queue with boto3, are
//! delivered; and the Lambda consumer's batch answer keeps FIFO order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tdev_aws::{AwsStore, SqsQueues};
use tdev_domain::SystemClock;
use tdev_domain::agents::{Agent, AgentStatus, AgentStore, AgentTarget};
use tdev_domain::events::{EVENT_DEAD_LETTER_QUEUE, EVENT_QUEUE};
use tdev_domain::messaging::{Bands, Dispatcher, MessagingConfig, Messenger, SendMessageRequest};
use tdev_domain::ports::{MessageQueue, SecretStore};
use tdev_domain::queue::QueueSpec;
use tdev_invoke::{Invoker, default_http_client};

fn now_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

fn moto() -> String {
    let endpoint = std::env::var("TDEV_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!(
            "TDEV_TEST_MOTO_URL is not set: run the project's test command, infra/test.sh, which starts moto"
        )
    });
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    }
    endpoint
}

/// An agent that records what it is sent; `{"fail": true}` in a payload answers 503.
async fn agent() -> (Arc<Mutex<Vec<Value>>>, String) {
    async fn call(
        State(seen): State<Arc<Mutex<Vec<Value>>>>,
        Json(message): Json<Value>,
    ) -> Result<Json<Value>, StatusCode> {
        if message["payload"]["fail"] == true {
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        }
        seen.lock().unwrap().push(message);
        Ok(Json(json!({"ok": true})))
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new().route("/", axum::routing::post(call)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (seen, url)
}

struct Setup {
    sdk: aws_config::SdkConfig,
    table: String,
    store: AwsStore,
    queues: SqsQueues,
    dispatcher: Arc<Dispatcher<AwsStore, SqsQueues, Invoker>>,
    seen: Arc<Mutex<Vec<Value>>>,
    passphrase: String,
}

const COMPAT_SIGNING_KEY: &str = "the producers' signing key";

async fn setup() -> Setup {
    moto();
    let table = format!("tdev-msg-{}", now_nanos());
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = AwsStore::new(&sdk, &table);
    store.ensure_table().await.expect("table");
    let passphrase = format!("passphrase-{}", now_nanos());
    let messaging = MessagingConfig {
        bands: Bands::default(),
        envelope_secret: format!("tdev/envelope-{}", now_nanos()),
        compat_secret: Some(format!("tdev/compat-{}", now_nanos())),
        ..MessagingConfig::default()
    };
    let compat = json!({"passphrase": passphrase, "signing_key": COMPAT_SIGNING_KEY}).to_string();
    store.put_secret(messaging.compat_secret.as_deref().unwrap(), &compat).await.expect("compat secret");
    let specs = messaging
        .bands
        .bands()
        .iter()
        .map(|band| (band.queue.as_str(), band.dead_letter_queue.as_str()))
        .chain([(EVENT_QUEUE, EVENT_DEAD_LETTER_QUEUE)])
        .map(|(queue, dlq)| QueueSpec::with_dead_letter(queue, dlq, messaging.max_receives + 1))
        .collect::<Vec<_>>();
    let queues = SqsQueues::ensure(&sdk, &table, specs).await.expect("queues");
    let messenger = Arc::new(Messenger::new(store.clone(), queues.clone(), Arc::new(SystemClock), messaging));
    assert!(messenger.bootstrap().await.expect("envelope key"), "a fresh secret");
    let (seen, url) = agent().await;
    let worker = Agent {
        id: "worker".into(),
        name: "Worker".into(),
        target: AgentTarget::Http { url },
        capabilities: ["work".to_owned()].into(),
        status: AgentStatus::Active,
        max_concurrency: Some(4),
        created_at: jiff::Timestamp::now(),
    };
    store.insert_agent(&worker).await.expect("agent");
    let invoker = Invoker::new(default_http_client().expect("http"), Some(&sdk));
    let dispatcher = Arc::new(Dispatcher::new(messenger, invoker));
    Setup { sdk, table, store, queues, dispatcher, seen, passphrase }
}

fn request(body: Value) -> SendMessageRequest {
    serde_json::from_value(body).expect("request")
}

async fn eventually(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priorities_map_onto_band_queues_and_every_band_is_consumed() {
    let setup = setup().await;
    let messenger = setup.dispatcher.messenger();
    let requests = (1..=10)
        .map(|p| {
            let body = json!({"to_agent": "worker", "type": "t", "priority": p, "group": format!("g{p}"), "payload": {"p": p}});
            (format!("$[{p}]"), request(body))
        })
        .collect();
    let accepted = messenger.send(requests, None).await.expect("send");
    let queues: Vec<&str> = accepted.iter().map(|a| a.queue.as_str()).collect();
    assert_eq!(
        queues,
        [
            "messages-1",
            "messages-1",
            "messages-1",
            "messages-2",
            "messages-2",
            "messages-2",
            "messages-2",
            "messages-3",
            "messages-3",
            "messages-3"
        ]
    );
    // What is on each queue, as SQS has it.
    for (queue, expected) in
        [("messages-1", vec![1, 2, 3]), ("messages-2", vec![4, 5, 6, 7]), ("messages-3", vec![8, 9, 10])]
    {
        let received = setup.queues.receive(queue, 10, Duration::from_secs(1)).await.expect("receive");
        let mut levels: Vec<u8> = received.iter().map(|d| d.priority.level()).collect();
        levels.sort();
        assert_eq!(levels, expected, "{queue}");
        for delivery in &received {
            setup.queues.retry_after(queue, &delivery.receipt, Duration::ZERO).await.expect("release");
        }
    }
    setup.deliver(10, "ten deliveries").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_producer_puts_both_formats_straight_on_a_queue_and_they_are_delivered() {
    let setup = setup().await;
    let python = std::env::var("TDEV_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("TDEV_TEST_PYTHON is not set: run the project's test command, infra/test.sh, which sets the venv's python")
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/python/producer.py");
    let versions = setup
        .store
        .secret_versions(&setup.dispatcher.messenger().config().envelope_secret)
        .await
        .expect("envelope key");
    let url = setup.queues.url("messages-2").expect("band 2").to_owned();
    let endpoint = moto();
    let run = |args: Vec<String>| {
        let output = std::process::Command::new(&python)
            .arg(script)
            .args([
                "--queue-url",
                &url,
                "--endpoint-url",
                &endpoint,
                "--to-agent",
                "worker",
                "--priority",
                "5",
            ])
            .args(args)
            .output()
            .expect("run the producer");
        assert!(output.status.success(), "producer failed: {}", String::from_utf8_lossy(&output.stderr));
    };
    let envelope = |encrypt: bool, kind: &str| {
        let mut args = vec![
            "--format",
            "envelope",
            "--secret",
            &versions.current.value,
            "--kid",
            &versions.current.version_id,
            "--type",
            kind,
        ];
        if encrypt {
            args.push("--encrypt");
        }
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    run(envelope(false, "py.envelope.plain"));
    run(envelope(true, "py.envelope.encrypted"));
    for order in ["sign-then-encrypt", "encrypt-then-sign"] {
        let kind = format!("py.compat.{order}");
        let args = [
            "--format",
            "compat",
            "--encrypt",
            "--compat-order",
            order,
            "--passphrase",
            &setup.passphrase,
            "--signing-key",
            COMPAT_SIGNING_KEY,
            "--type",
            &kind,
        ];
        run(args.into_iter().map(String::from).collect());
    }
    let signed_only = [
        "--format",
        "compat",
        "--passphrase",
        &setup.passphrase,
        "--signing-key",
        COMPAT_SIGNING_KEY,
        "--type",
        "py.compat.signed",
    ];
    run(signed_only.into_iter().map(String::from).collect());

    setup.deliver(5, "five deliveries").await;
    let seen = setup.seen.lock().unwrap().clone();
    let mut kinds: Vec<&str> = seen.iter().map(|m| m["type"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "py.compat.encrypt-then-sign",
            "py.compat.sign-then-encrypt",
            "py.compat.signed",
            "py.envelope.encrypted",
            "py.envelope.plain"
        ]
    );
    for message in &seen {
        assert!(message["payload"].is_object(), "the payload arrived: {message}");
    }
    let dead = setup.store_dead_letters().await;
    assert!(dead.is_empty(), "nothing dead-lettered: {dead:?}");
}

impl Setup {
    /// Two consumers on every queue, until the sender says stop.
    fn consumers(&self) -> (tokio::sync::watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let consumers = tokio::spawn(tdev_worker::local::consume(
            self.dispatcher.clone(),
            self.queues.clone(),
            2,
            shutdown,
        ));
        (stop, consumers)
    }

    /// Runs the consumers until the agent has seen `count` messages.
    async fn deliver(&self, count: usize, what: &str) {
        let (stop, consumers) = self.consumers();
        eventually(Duration::from_secs(30), what, || self.seen.lock().unwrap().len() == count).await;
        let _ = stop.send(true);
        consumers.await.unwrap();
    }

    async fn store_dead_letters(&self) -> Vec<tdev_domain::messaging::DeadLetter> {
        let all = tdev_domain::messaging::DeadLetterFilter { limit: 1000, ..Default::default() };
        self.dispatcher.messenger().dead_letters(&all).await.expect("dead letters")
    }
}

/// A Lambda SQS record for a received message, as the event source mapping makes it.
fn record(queue_arn: &str, delivery: &tdev_domain::queue::Delivery) -> Value {
    let mut attributes = BTreeMap::new();
    for (name, value) in &delivery.attributes {
        attributes.insert(name.clone(), json!({"stringValue": value, "dataType": "String"}));
    }
    attributes.insert(
        tdev_aws::PRIORITY_ATTRIBUTE.into(),
        json!({"stringValue": delivery.priority.to_string(), "dataType": "Number"}),
    );
    json!({
        "messageId": delivery.message_id,
        "receiptHandle": delivery.receipt,
        "body": delivery.body,
        "attributes": {
            "ApproximateReceiveCount": delivery.receive_count.to_string(),
            "SentTimestamp": delivery.sent_at.as_millisecond().to_string(),
            "MessageGroupId": delivery.group,
            "MessageDeduplicationId": delivery.dedup_id,
        },
        "messageAttributes": attributes,
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_batch_retries_only_the_failing_group_from_its_failure_on() {
    let setup = setup().await;
    let messenger = setup.dispatcher.messenger();
    let plan =
        [("a", "g1", false), ("b", "g1", true), ("c", "g1", false), ("d", "g2", false), ("e", "g2", false)];
    let requests = plan
        .iter()
        .map(|(name, group, fail)| {
            let body = json!({"to_agent": "worker", "type": "t", "group": group, "payload": {"name": name, "fail": fail}});
            (format!("$.{name}"), request(body))
        })
        .collect();
    messenger.send(requests, None).await.expect("send");
    let mut received = Vec::new();
    for _ in 0..5 {
        received
            .extend(setup.queues.receive("messages-2", 10, Duration::from_secs(60)).await.expect("receive"));
        if received.len() == 5 {
            break;
        }
    }
    assert_eq!(received.len(), 5, "one batch of five");
    let url = setup.queues.url("messages-2").unwrap();
    let arn = format!("arn:aws:sqs:us-east-1:123456789012:{}", url.rsplit('/').next().unwrap());
    let event = json!({"Records": received.iter().map(|d| record(&arn, d)).collect::<Vec<_>>()});
    let event = serde_json::from_value(event).expect("an SQS event");
    let response = tdev_worker::lambda::handle_batch(&*setup.dispatcher, &setup.queues, event).await;
    let failed: Vec<&str> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    // The bodies are encrypted; within a group, SQS delivers in send order.
    let g1: Vec<&str> = received.iter().filter(|d| d.group == "g1").map(|d| d.message_id.as_str()).collect();
    assert_eq!(g1.len(), 3);
    let mut expected = vec![g1[1], g1[2]];
    expected.sort();
    let mut failed_sorted = failed.clone();
    failed_sorted.sort();
    assert_eq!(failed_sorted, expected, "b failed, c behind it; a, d, e done");
    let mut seen: Vec<String> = setup
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|m| m["payload"]["name"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    assert_eq!(seen, ["a", "d", "e"], "c was not processed ahead of b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_subscriber_gets_the_events_it_subscribed_to() {
    let setup = setup().await;
    let subscriber =
        SqsQueues::ensure(&setup.sdk, &setup.table, [QueueSpec::new("subscriber")]).await.expect("queue");
    let queue_url = subscriber.url("subscriber").unwrap().to_owned();
    let messenger = setup.dispatcher.messenger();
    let request = serde_json::from_value(
        json!({"pattern": "message.deliv*", "target": {"kind": "sqs", "queue_url": queue_url}}),
    )
    .expect("subscription");
    let subscription = messenger.events().subscribe(request).await.expect("subscribe");
    let sent = messenger.send(vec![("$".into(), request_for("worker"))], None).await.expect("send");
    let (stop, consumers) = setup.consumers();
    let mut got = Vec::new();
    let start = Instant::now();
    while got.is_empty() {
        if start.elapsed() > Duration::from_secs(30) {
            let dead = setup.store_dead_letters().await;
            let events = messenger
                .events()
                .list(&tdev_domain::events::EventFilter { limit: 100, ..Default::default() })
                .await;
            panic!("no event reached the subscriber's queue; dead letters {dead:?}; events {events:?}");
        }
        got = subscriber.receive("subscriber", 10, Duration::from_secs(30)).await.expect("receive");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    consumers.await.unwrap();
    assert_eq!(got.len(), 1, "only the matching event: {got:?}");
    let event: Value = serde_json::from_str(&got[0].body).expect("an event");
    assert_eq!(event["type"], "message.delivered");
    assert_eq!(event["subject"], sent[0].id);
    assert_eq!(got[0].group, tdev_invoke::EVENT_GROUP);
    assert_eq!(got[0].dedup_id, event["id"].as_str().unwrap());
    messenger.events().unsubscribe(&subscription.id).await.expect("unsubscribe");
}

fn request_for(agent: &str) -> SendMessageRequest {
    request(json!({"to_agent": agent, "type": "t", "payload": {}}))
}
