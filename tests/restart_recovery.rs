//! The local stack as a user runs it (`tdev serve`, a process of its own), killed with
//! `kill -9` while a workflow step and a message are in flight at agents that never
//! answer, then started again on the same data: the step's next attempt starts and the
//! message is delivered within seconds of the restart — not after their visibility
//! timeouts (330 s and 60 s) and leases (80 s) — and the run's and the message's events
//! say why. A second `tdev serve` on data in use is refused.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use serde_json::{Value, json};
use support::{free_port, serve, tdev_serve, temp_dir};

/// How soon after the restart answers `/health` the lost work must start again: a
/// generous bound (it takes some milliseconds), far below the timeouts it replaces.
const WITHIN: Duration = Duration::from_secs(5);

/// `tdev serve` in `dir` (its data in `dir/.tdev`), logging warnings to `dir/<log>`.
struct Serve {
    child: Child,
    base: String,
    /// When the process was spawned and when it first answered `/health`.
    spawned: Instant,
    healthy: Instant,
}

fn serve_command(dir: &Path, port: u16, log: &str) -> Command {
    let mut command = tdev_serve(dir, port);
    command
        // The test polls: a rate limit the polls never reach.
        .env("TDEV_RATE_CAPACITY", "1000000")
        .env("TDEV_RATE_REFILL_PER_MINUTE", "6000000")
        .env("RUST_LOG", "warn")
        // The JSON log is on stdout.
        .stdout(std::fs::File::create(dir.join(log)).unwrap())
        .stderr(Stdio::null());
    command
}

impl Serve {
    async fn start(dir: &Path, log: &str) -> Serve {
        Self::start_with(dir, log, &[]).await
    }

    async fn start_with(dir: &Path, log: &str, env: &[(&str, &str)]) -> Serve {
        let port = free_port();
        let spawned = Instant::now();
        let child =
            serve_command(dir, port, log).envs(env.iter().copied()).spawn().expect("tdev serve starts");
        // Dropped (killed and waited for) if it never answers.
        let mut serve = Serve { child, base: format!("http://127.0.0.1:{port}"), spawned, healthy: spawned };
        let client = reqwest::Client::new();
        while spawned.elapsed() < Duration::from_secs(30) {
            let answer =
                client.get(format!("{}/health", serve.base)).timeout(Duration::from_secs(2)).send().await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                serve.healthy = Instant::now();
                return serve;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(serve);
        panic!("tdev serve did not answer /health within 30 s");
    }

    /// `kill -9`: no chance to clean up.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every call the agents received, by agent name, with when it arrived. The first call
/// to each agent never answers; later ones answer at once.
#[derive(Default)]
struct Calls(Mutex<Vec<(String, Instant, Value)>>);

impl Calls {
    fn of(&self, name: &str) -> Vec<(Instant, Value)> {
        self.0.lock().unwrap().iter().filter(|(n, ..)| n == name).map(|(_, at, v)| (*at, v.clone())).collect()
    }
}

async fn agents() -> (Arc<Calls>, String) {
    async fn call(
        State(calls): State<Arc<Calls>>,
        UrlPath(name): UrlPath<String>,
        Json(body): Json<Value>,
    ) -> Json<Value> {
        let first = {
            let mut calls = calls.0.lock().unwrap();
            calls.push((name.clone(), Instant::now(), body));
            calls.iter().filter(|(n, ..)| *n == name).count() == 1
        };
        if first {
            std::future::pending::<()>().await;
        }
        Json(json!({"out": "done", "ok": true}))
    }
    let calls = Arc::new(Calls::default());
    let base =
        serve(axum::Router::new().route("/{name}", axum::routing::post(call)).with_state(calls.clone()))
            .await;
    (calls, base)
}

struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("x-api-key", &self.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "POST {path}: {}", response.status());
        response.json().await.unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("x-api-key", &self.key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// The events of type `kind` about `subject`.
    async fn events(&self, kind: &str, subject: &str) -> Vec<Value> {
        let listed = self.get(&format!("/v1/events?type={kind}")).await;
        listed["events"].as_array().unwrap().iter().filter(|e| e["subject"] == subject).cloned().collect()
    }
}

async fn eventually<T>(limit: Duration, what: &str, mut found: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = found().await {
            return value;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_in_flight_when_the_stack_is_killed_starts_again_within_seconds_of_the_restart() {
    let dir = temp_dir("restart");
    let (calls, agents_base) = agents().await;
    let first = Serve::start(&dir, "first.log").await;
    let key = std::fs::read_to_string(dir.join(".tdev/admin-key")).unwrap().trim().to_owned();
    let mut api = Api { client: reqwest::Client::new(), base: first.base.clone(), key };
    for name in ["worker", "listener"] {
        let target = json!({"kind": "http", "url": format!("{agents_base}/{name}")});
        api.post("/v1/agents", json!({"id": name, "name": name, "target": target})).await;
    }
    let workflow = json!({
        "id": "slow", "name": "slow",
        "steps": [{"id": "work", "name": "work", "type": "agent", "agent_id": "worker", "outputs": ["out"],
                   "retry_policy": {"max_attempts": 3}}],
    });
    api.post("/v1/workflows", workflow).await;
    let run = api.post("/v1/workflows/slow/runs", json!({})).await;
    let run_id = run["id"].as_str().unwrap().to_owned();
    let accepted =
        api.post("/v1/messages", json!({"to_agent": "listener", "type": "task", "payload": {"n": 1}})).await;
    let message_id = accepted["id"].as_str().unwrap_or_else(|| panic!("an id: {accepted}")).to_owned();

    // Both are in flight: the agents have the calls and never answer.
    eventually(Duration::from_secs(10), "both first calls", async || {
        (calls.of("worker").len() == 1 && calls.of("listener").len() == 1).then_some(())
    })
    .await;
    let view = api.get(&format!("/v1/runs/{run_id}")).await;
    assert_eq!(view["steps"][0]["status"], "running", "{view}");
    first.kill();

    let second = Serve::start(&dir, "second.log").await;
    api.base = second.base.clone();
    let step_again = eventually(WITHIN * 2, "the step's second attempt", async || {
        calls.of("worker").get(1).map(|(at, _)| *at)
    })
    .await;
    let message_again = eventually(WITHIN * 2, "the message's second delivery", async || {
        calls.of("listener").get(1).map(|(at, _)| *at)
    })
    .await;
    let after_health = |at: Instant| at.saturating_duration_since(second.healthy);
    println!(
        "restart: /health after {:?}; the step's next attempt {:?} and the message {:?} after /health \
         ({:?} and {:?} after the spawn)",
        second.healthy - second.spawned,
        after_health(step_again),
        after_health(message_again),
        step_again - second.spawned,
        message_again - second.spawned,
    );
    assert!(after_health(step_again) < WITHIN, "the step's next attempt: {:?}", after_health(step_again));
    assert!(after_health(message_again) < WITHIN, "the message: {:?}", after_health(message_again));
    assert_eq!(calls.of("worker")[1].1["context"]["attempt"], 2, "the lost attempt counts");

    let ended = eventually(Duration::from_secs(10), "the run's end", async || {
        let view = api.get(&format!("/v1/runs/{run_id}")).await;
        (view["status"] != "running").then_some(view)
    })
    .await;
    assert_eq!(ended["status"], "succeeded", "{ended}");
    assert_eq!(ended["steps"][0]["attempts"], 2, "{ended}");
    let lost = api.events("run.attempt_lost", &run_id).await;
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0]["data"]["reason"], "step `work`: attempt 1 lost with the previous process; retrying");
    assert_eq!(lost[0]["data"]["cause"], "restart");

    let delivered = eventually(Duration::from_secs(10), "the message's delivered event", async || {
        let delivered = api.events("message.delivered", &message_id).await;
        (!delivered.is_empty()).then_some(delivered)
    })
    .await;
    assert_eq!(delivered[0]["data"]["attempt"], 2, "{delivered:?}");
    let lost = api.events("message.attempt_lost", &message_id).await;
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(
        lost[0]["data"]["reason"],
        format!("message `{message_id}`: delivery 1 lost with the previous process; delivering again")
    );

    // The logs say it too.
    let log = std::fs::read_to_string(dir.join("second.log")).unwrap();
    for said in ["step `work`: attempt 1 lost with the previous process; retrying", "delivery 1 lost"] {
        assert!(log.contains(said), "the log says {said:?}:\n{log}");
    }
    drop(second);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_data_in_use_is_refused_and_says_what_to_do() {
    let dir = temp_dir("twice");
    let first = Serve::start(&dir, "first.log").await;
    let output = serve_command(&dir, free_port(), "second.log")
        .stderr(Stdio::piped())
        .output()
        .expect("the second runs and stops");
    assert!(!output.status.success(), "the second must not start");
    let said = String::from_utf8_lossy(&output.stderr);
    for part in ["the data folder .tdev is in use", ".tdev/tdev.db.lock", "--data", "TDEV_DATA"] {
        assert!(said.contains(part), "the error names {part:?}: {said}");
    }
    let health = reqwest::get(format!("{}/health", first.base)).await.unwrap();
    assert!(health.status().is_success(), "the first serves on");
    // Other data is fine beside it.
    let other = [("TDEV_DATA", "other/tdev.db"), ("TDEV_ADMIN_KEY_FILE", "other/admin-key")];
    let other = Serve::start_with(&dir, "other.log", &other).await;
    drop((first, other));
    std::fs::remove_dir_all(dir).unwrap();
}
