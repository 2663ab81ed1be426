//! End-to-end messages per second through the local stack: `POST /v1/messages:batch`
//! (100 a request) → seal → the embedded band queue → the in-process consumers → open →
//! claim → route → an HTTP agent on loopback → done. The clock runs from the first send
//! to the last delivery the agent sees.
//!
//! Run: `cargo bench --bench messages` (`MESSAGES=n` and `WORKERS=n` change the load;
//! `ENCRYPT=false` seals without encrypting). Not part of CI.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tdev::stack::{Stack, queues};
use tdev_domain::messaging::{Bands, MessagingConfig};
use tdev_embedded::SqliteStore;
use tdev_http::app::HttpSettings;
use tdev_invoke::{Invoker, default_http_client};

fn var(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let total = var("MESSAGES", 20_000);
    let workers = var("WORKERS", 4);
    let encrypt = std::env::var("ENCRYPT").map(|v| v != "false").unwrap_or(true);

    let delivered = Arc::new(AtomicUsize::new(0));
    let counter = delivered.clone();
    let agent = axum::Router::new().route(
        "/",
        axum::routing::post(move |_: axum::Json<Value>| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                axum::Json(json!({"ok": true}))
            }
        }),
    );
    let agent_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_url = format!("http://{}/", agent_listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(agent_listener, agent).await });

    let dir = std::env::temp_dir().join(format!("tdev-bench-{}", std::process::id()));
    let messaging = MessagingConfig { bands: Bands::single(), encrypt, ..MessagingConfig::default() };
    let store = SqliteStore::open(&dir.join("tdev.db")).unwrap().with_queues(queues(&messaging));
    let invoker = Invoker::new(default_http_client().unwrap(), None);
    let mut auth = tdev_conformance::test_auth_config();
    auth.default_rate_limit =
        tdev_domain::auth::RateLimit { capacity: 1_000_000, refill_per_minute: 1_000_000 };
    let parts = tdev::stack::Parts {
        invoker,
        auth,
        messaging,
        deploy: Default::default(),
        workflow: Default::default(),
        step_attempt_timeout: tdev::stack::LOCAL_STEP_ATTEMPT_TIMEOUT,
    };
    let stack = Stack::new(store.clone(), store.clone(), tdev_embedded::LocalPlatform::new(store), parts);
    let admin = stack.auth.bootstrap().await.unwrap().unwrap().plaintext;
    stack.messenger().bootstrap().await.unwrap();
    let app = stack.router(&HttpSettings { max_body_bytes: 1 << 20, emf: None });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    stack.spawn_workers(workers, shutdown);

    let client = reqwest::Client::new();
    let register = json!({"id": "sink", "name": "Sink", "capabilities": ["work"], "target": {"kind": "http", "url": agent_url}});
    let response = client
        .post(format!("{base}/v1/agents"))
        .header("x-api-key", &admin)
        .json(&register)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let started = Instant::now();
    let mut sent = 0;
    while sent < total {
        let n = (total - sent).min(100);
        let messages: Vec<Value> = (sent..sent + n)
            .map(|i| {
                json!({"capability": "work", "type": "bench", "group": format!("g{}", i % 256),
                            "priority": 1 + i % 10, "payload": {"i": i, "text": "x".repeat(200)}})
            })
            .collect();
        let response = client
            .post(format!("{base}/v1/messages:batch"))
            .header("x-api-key", &admin)
            .json(&json!({"messages": messages}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
        sent += n;
    }
    let accepted_in = started.elapsed();
    while delivered.load(Ordering::Relaxed) < total {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "stalled at {}",
            delivered.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    println!(
        "{total} messages, {workers} consumers, encrypt={encrypt}: accepted in {:.2} s ({:.0}/s), \
         delivered in {:.2} s: {:.0} messages/s end to end",
        accepted_in.as_secs_f64(),
        total as f64 / accepted_in.as_secs_f64(),
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
