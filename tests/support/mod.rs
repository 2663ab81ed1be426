//! A local stack on an ephemeral port, with an admin key, for black-box tests.

#![allow(dead_code)]

pub mod scenarios;

use std::sync::Arc;

use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{Value, json};
use tdev::stack::StackStore;
use tdev_domain::auth::{AuthConfig, AuthService, AuthStore};
use tdev_domain::deploy::{AgentDeployer, DeployConfig};
use tdev_domain::messaging::{Bands, MessagingConfig, Messenger};
use tdev_domain::ports::MessageQueue;
use tdev_embedded::SqliteStore;
use tdev_http::app::HttpSettings;
use tdev_invoke::{Invoker, default_http_client};

pub const MAX_BODY: usize = 4096;

/// Every status a deployment that succeeds goes through, in order (its events say so).
pub const DEPLOYED_STATUSES: [&str; 8] =
    ["pending", "validating", "backing_up", "deploying", "preparing", "versioning", "verifying", "deployed"];

pub struct Stack<S = SqliteStore, Q = SqliteStore> {
    pub base: String,
    pub messenger: Arc<Messenger<S, Q>>,
    pub admin_key: String,
    pub store: S,
    pub service: Arc<AuthService<S>>,
    pub config: AuthConfig,
    pub client: Client,
}

/// The messaging settings of the embedded test stack: one strictly ordered queue.
pub fn test_messaging() -> MessagingConfig {
    MessagingConfig { bands: Bands::single(), ..MessagingConfig::default() }
}

/// The pipeline's settings in tests: short pauses, so polls and retries do not wait.
pub fn test_deploy_config() -> DeployConfig {
    DeployConfig { first_pause: std::time::Duration::from_millis(5), ..DeployConfig::default() }
}

/// The stack on a fresh in-memory embedded store (and its embedded queue).
pub async fn start() -> Stack {
    start_messaging(test_messaging()).await
}

/// As [`start`], with these auth settings.
pub async fn start_with_auth(config: AuthConfig) -> Stack {
    let messaging = test_messaging();
    let store = SqliteStore::in_memory().expect("store").with_queues(tdev::stack::queues(&messaging));
    let target = tdev_embedded::LocalPlatform::new(store.clone());
    start_on(store.clone(), store, target, config, messaging).await
}

/// As [`start`], with these messaging settings.
pub async fn start_messaging(messaging: MessagingConfig) -> Stack {
    let (stack, workers) = start_paused(messaging).await;
    workers();
    stack
}

/// As [`start_messaging`], but the consumers start only when the returned function is
/// called: messages sent before wait on the queue.
pub async fn start_paused(messaging: MessagingConfig) -> (Stack, Box<dyn FnOnce() + Send>) {
    let store = SqliteStore::in_memory().expect("store").with_queues(tdev::stack::queues(&messaging));
    let target = tdev_embedded::LocalPlatform::new(store.clone());
    start_on_paused(store.clone(), store, target, tdev_conformance::test_auth_config(), messaging).await
}

/// The stack on `store` (which must hold no API keys yet) and `queue`, with its
/// workers running, serving on an ephemeral port.
pub async fn start_on<S: StackStore, Q: MessageQueue + Clone, D: AgentDeployer>(
    store: S,
    queue: Q,
    deployer: D,
    config: AuthConfig,
    messaging: MessagingConfig,
) -> Stack<S, Q> {
    let (stack, workers) = start_on_paused(store, queue, deployer, config, messaging).await;
    workers();
    stack
}

pub async fn start_on_paused<S: StackStore, Q: MessageQueue + Clone, D: AgentDeployer>(
    store: S,
    queue: Q,
    deployer: D,
    config: AuthConfig,
    messaging: MessagingConfig,
) -> (Stack<S, Q>, Box<dyn FnOnce() + Send>) {
    let parts = tdev::stack::Parts {
        invoker: Invoker::new(default_http_client().expect("http client"), None),
        auth: config.clone(),
        messaging,
        deploy: test_deploy_config(),
        workflow: Default::default(),
        step_attempt_timeout: tdev::stack::LOCAL_STEP_ATTEMPT_TIMEOUT,
    };
    let system = tdev::stack::Stack::new(store.clone(), queue, deployer, parts);
    let service = system.auth.clone();
    let admin = service.bootstrap().await.expect("bootstrap").expect("a fresh store makes an admin key");
    system.messenger().bootstrap().await.expect("envelope key");
    let app = system.router(&HttpSettings { max_body_bytes: MAX_BODY, emf: None });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await
    });
    let messenger = system.messenger().clone();
    let workers = Box::new(move || {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        system.spawn_workers(4, shutdown);
        // The workers stop when the test's runtime does; keep the sender alive until then.
        std::mem::forget(stop);
    });
    let stack =
        Stack { base, messenger, admin_key: admin.plaintext, store, service, config, client: Client::new() };
    (stack, workers)
}

impl<S: AuthStore, Q> Stack<S, Q> {
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// GETs `path` with the API key `key`; the body as JSON, whatever the status.
    pub async fn get_json(&self, path: &str, key: &str) -> Value {
        let response = self.request(Method::GET, path).header("x-api-key", key).send().await.expect("send");
        response.json().await.expect("a JSON body")
    }

    /// POSTs `body` as JSON to `path` with the API key `key`.
    pub async fn post_json(&self, path: &str, key: &str, body: &Value) -> Response {
        self.request(Method::POST, path).header("x-api-key", key).json(body).send().await.expect("send")
    }

    /// POSTs `yaml` as `application/yaml` to `path` with the API key `key`.
    pub async fn post_yaml(&self, path: &str, key: &str, yaml: &str) -> Response {
        self.request(Method::POST, path)
            .header("x-api-key", key)
            .header("content-type", "application/yaml")
            .body(yaml.to_owned())
            .send()
            .await
            .expect("send")
    }

    /// Deployment `id` once it has ended (deployed, rolled back or failed).
    pub async fn deployment_end(&self, id: &str) -> Value {
        for _ in 0..600 {
            let record = self.get_json(&format!("/v1/deployments/{id}"), &self.admin_key).await;
            if ["deployed", "rolled_back", "failed"].contains(&record["status"].as_str().unwrap_or_default())
            {
                return record;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("deployment {id} did not end");
    }

    /// Run `id`, read with `key`, once it is no longer running.
    pub async fn run_end(&self, key: &str, id: &str) -> Value {
        for _ in 0..200 {
            let view = self.get_json(&format!("/v1/runs/{id}"), key).await;
            if view["status"] != "running" {
                return view;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("run {id} did not end");
    }

    /// Polls squad task `id` until it has ended.
    pub async fn task_end(&self, key: &str, id: &str) -> Value {
        for _ in 0..200 {
            let view = self.get_json(&format!("/v1/squad-tasks/{id}"), key).await;
            if view["status"] != "running" {
                return view;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("squad task {id} did not end");
    }

    /// The statuses of deployment `id`'s events, in order.
    pub async fn deployment_statuses(&self, id: &str) -> Vec<String> {
        let events = self.get_json(&format!("/v1/deployments/{id}/events"), &self.admin_key).await;
        events["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|e| e["status"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Creates a key with the admin key and returns `(id, secret)`.
    pub async fn create_key(&self, scopes: &[&str], rate_limit: Option<(u32, u32)>) -> (String, String) {
        let mut body = json!({"name": "test key", "scopes": scopes});
        if let Some((capacity, refill)) = rate_limit {
            body["rate_limit"] = json!({"capacity": capacity, "refill_per_minute": refill});
        }
        let response = self.post_json("/v1/keys", &self.admin_key, &body).await;
        assert_eq!(response.status(), 201);
        let created: Value = response.json().await.expect("json");
        (created["id"].as_str().unwrap().into(), created["secret"].as_str().unwrap().into())
    }

    pub async fn token(&self, key: &str) -> String {
        let response =
            self.request(Method::POST, "/v1/tokens").header("x-api-key", key).send().await.expect("send");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        body["access_token"].as_str().unwrap().into()
    }

    pub async fn current_signing_key(&self) -> (String, Vec<u8>) {
        let versions = self.store.secret_versions(&self.config.signing_secret).await.expect("secret");
        (versions.current.version_id, versions.current.value.into_bytes())
    }
}

/// Asserts a problem+json response with `status`, returning its body.
pub async fn problem(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(body["status"], status);
    assert!(body["type"].as_str().unwrap().starts_with("urn:tdev:problem:"), "{body}");
    assert!(body["title"].is_string() && body["detail"].is_string(), "{body}");
    body
}

pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Serves `app` (an agent, a webhook) on an ephemeral port; its base URL, without a slash.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// A new folder under the system's temporary one, named for `name`, this process and now.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::env::temp_dir().join(format!("tdev-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A TCP port free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `tdev serve` (the built binary) in `dir`, listening on `port`; the caller adds the
/// rest of its environment and where its output goes.
pub fn tdev_serve(dir: &std::path::Path, port: u16) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tdev"));
    command.arg("serve").current_dir(dir).env("TDEV_ADDR", format!("127.0.0.1:{port}"));
    command
}
