//! The operator CLI: `tdev deploy`, `rollback`, `status`, `history`. It talks to the API
//! (the local stack or a deployed one) over HTTP.
//!
//! Where it connects, first found wins: the `--url` and `--api-key` flags, then
//! `TDEV_URL` and `TDEV_API_KEY`, then the config file (`--config`, `TDEV_CONFIG`, or
//! `~/.config/tdev/config.json`: `{"url": "...", "api_key": "..."}` or `"api_key_file"`),
//! then `http://127.0.0.1:8080` with the key the local stack wrote to `.tdev/admin-key`
//! (sent to this machine only: localhost or a loopback address, on any port).
//!
//! Exit codes: 0 it worked (`deploy`: deployed; `rollback`: rolled back); 1 the
//! deployment ended otherwise (failed, or rolled back); 2 the request was refused
//! (invalid spec, another deployment in progress, no such deployment, not allowed) or the
//! command line is wrong; 3 the API could not be reached or failed; 4 still running when
//! `--wait-seconds` ran out.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::Value;

/// Where the API is and the key to call it with.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The API's base URL.
    #[arg(long, global = true)]
    url: Option<String>,
    /// The API key (prefer `TDEV_API_KEY` or the config file: flags show in `ps`).
    #[arg(long, global = true)]
    api_key: Option<String>,
    /// The config file.
    #[arg(long, global = true, env = "TDEV_CONFIG")]
    config: Option<PathBuf>,
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Operate {
    /// Deploy an agent spec (YAML or JSON): validates it, shows each step as it happens,
    /// and waits for the end.
    Deploy {
        spec: PathBuf,
        /// Only check the spec; record nothing.
        #[arg(long)]
        dry_run: bool,
        /// Return once the deployment is queued.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this long (exit 4); the deployment goes on.
        #[arg(long, default_value_t = 1800)]
        wait_seconds: u64,
        /// Makes a retried command harmless: the same key gives the same deployment.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Undo a deployment: the version before it serves again (or `--to`).
    Rollback {
        deployment: String,
        #[arg(long)]
        to: Option<String>,
        /// manual (default), failure, health_check, timeout or error_rate.
        #[arg(long, default_value = "manual")]
        reason: String,
        #[arg(long)]
        no_wait: bool,
        #[arg(long, default_value_t = 1800)]
        wait_seconds: u64,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// A deployment and its events.
    Status { deployment: String },
    /// The versions that served an agent, newest first.
    History { agent: String },
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    url: Option<String>,
    api_key: Option<String>,
    api_key_file: Option<PathBuf>,
}

const DEFAULT_URL: &str = "http://127.0.0.1:8080";
const DEFAULT_KEY_FILE: &str = ".tdev/admin-key";

/// A failure with its exit code.
struct Exit(u8, String);

impl From<anyhow::Error> for Exit {
    fn from(e: anyhow::Error) -> Self {
        Exit(3, format!("{e:#}"))
    }
}

pub async fn run(connection: Connection, command: Operate) -> ExitCode {
    match execute(connection, command).await {
        Ok(code) => ExitCode::from(code),
        Err(Exit(code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

struct Api {
    http: reqwest::Client,
    /// The API's base URL.
    url: reqwest::Url,
    key: String,
    json: bool,
}

async fn execute(connection: Connection, command: Operate) -> Result<u8, Exit> {
    let api = Api::connect(connection)?;
    match command {
        Operate::Deploy { spec, dry_run, no_wait, wait_seconds, idempotency_key } => {
            let (text, content_type) = read_spec(&spec)?;
            if dry_run {
                let report =
                    api.send(api.post(&["deployments:validate"], content_type).body(text), None).await?;
                api.print(&report, || {
                    if report["valid"] == true {
                        format!("valid ({} of {} bytes)", report["size_bytes"], report["max_bytes"])
                    } else {
                        problem_text(&report)
                    }
                });
                return Ok(if report["valid"] == true { 0 } else { 2 });
            }
            let request = api.post(&["deployments"], content_type).body(text);
            let deployment = api.send(request, idempotency_key.as_deref()).await?;
            api.follow(deployment, no_wait, wait_seconds, "deployed").await
        }
        Operate::Rollback { deployment, to, reason, no_wait, wait_seconds, idempotency_key } => {
            let body = serde_json::json!({ "to_version": to, "reason": reason });
            let request = api.post(&["deployments", &deployment, "rollback"], "application/json").json(&body);
            let rollback = api.send(request, idempotency_key.as_deref()).await?;
            api.follow(rollback, no_wait, wait_seconds, "rolled_back").await
        }
        Operate::Status { deployment } => {
            let record = api.get(&["deployments", &deployment]).await?;
            let events = api.get(&["deployments", &deployment, "events"]).await?;
            if api.json {
                println!("{}", serde_json::json!({ "deployment": record, "events": events["events"] }));
            } else {
                println!("{}", summary(&record));
                for event in events["events"].as_array().into_iter().flatten() {
                    println!("{}", event_line(event));
                }
            }
            Ok(0)
        }
        Operate::History { agent } => {
            let history = api.get(&["deployed-agents", &agent, "versions"]).await?;
            api.print(&history, || {
                let versions = history["versions"].as_array().cloned().unwrap_or_default();
                if versions.is_empty() {
                    return format!("{agent}: no version has served yet");
                }
                versions
                    .iter()
                    .map(|v| {
                        format!(
                            "{} version {:<4} {:<8} {}  {}",
                            if v["current"] == true { "*" } else { " " },
                            text(&v["version"]),
                            text(&v["kind"]),
                            text(&v["since"]),
                            text(&v["deployment_id"]),
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(0)
        }
    }
}

impl Api {
    fn connect(connection: Connection) -> Result<Self, Exit> {
        let path = connection.config.clone().or_else(default_config_path);
        let file = match &path {
            Some(path) if path.exists() => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Exit(2, format!("reading {}: {e}", path.display())))?;
                serde_json::from_str::<ConfigFile>(&text)
                    .map_err(|e| Exit(2, format!("{}: {e}", path.display())))?
            }
            Some(path) if connection.config.is_some() => {
                return Err(Exit(2, format!("no config file at {}", path.display())));
            }
            _ => ConfigFile::default(),
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let url =
            connection.url.or_else(|| env("TDEV_URL")).or(file.url).unwrap_or_else(|| DEFAULT_URL.to_owned());
        let key = match connection.api_key.or_else(|| env("TDEV_API_KEY")).or(file.api_key) {
            Some(key) => key,
            None => {
                // The local stack's admin key goes to this machine only.
                let key_file = match file.api_key_file {
                    Some(file) => file,
                    None if is_loopback(&url) => PathBuf::from(DEFAULT_KEY_FILE),
                    None => {
                        return Err(Exit(
                            2,
                            format!("no API key for {url}: set TDEV_API_KEY, or put one in the config file"),
                        ));
                    }
                };
                std::fs::read_to_string(&key_file).map(|k| k.trim().to_owned()).map_err(|e| {
                    Exit(
                        2,
                        format!(
                            "no API key: set TDEV_API_KEY, or put one in the config file ({} could not be read: {e})",
                            key_file.display()
                        ),
                    )
                })?
            }
        };
        let url = reqwest::Url::parse(&url)
            .ok()
            .filter(|u| !u.cannot_be_a_base())
            .ok_or_else(|| Exit(2, format!("{url:?} is not an API URL (for example {DEFAULT_URL})")))?;
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(30)).build().context("HTTP client")?;
        Ok(Self { http, url, key, json: connection.json })
    }

    /// The API's URL of `/v1/<segments>`, each segment escaped (an id cannot reach
    /// another path).
    fn endpoint(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.url.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("v1").extend(segments);
        }
        url
    }

    fn post(&self, segments: &[&str], content_type: &str) -> reqwest::RequestBuilder {
        self.http
            .post(self.endpoint(segments))
            .header("x-api-key", &self.key)
            .header(reqwest::header::CONTENT_TYPE, content_type)
    }

    fn get_request(&self, segments: &[&str]) -> reqwest::RequestBuilder {
        self.http.get(self.endpoint(segments)).header("x-api-key", &self.key)
    }

    async fn get(&self, segments: &[&str]) -> Result<Value, Exit> {
        self.send(self.get_request(segments), None).await
    }

    /// A GET while following a deployment: `None` when the API is unreachable, busy
    /// (429) or failing (5xx) for a moment, which the caller waits out.
    async fn poll(&self, segments: &[&str]) -> Result<Option<Value>, Exit> {
        let Ok(response) = self.get_request(segments).send().await else { return Ok(None) };
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Ok(None);
        }
        self.answer(response).await.map(Some)
    }

    /// Sends the request; a problem answer becomes the exit it calls for.
    async fn send(&self, request: reqwest::RequestBuilder, key: Option<&str>) -> Result<Value, Exit> {
        let request = match key {
            Some(key) => request.header("Idempotency-Key", key),
            None => request,
        };
        let response =
            request.send().await.map_err(|e| Exit(3, format!("could not reach {}: {e}", self.url)))?;
        self.answer(response).await
    }

    /// The answer's JSON; a problem answer becomes the exit it calls for.
    async fn answer(&self, response: reqwest::Response) -> Result<Value, Exit> {
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let code = if status.is_client_error() { 2 } else { 3 };
        let mut message = problem_text(&body);
        if let Some(instance) = body["instance"].as_str() {
            message.push_str(&format!("\nrecorded as {instance}"));
        }
        Err(Exit(code, message))
    }

    fn print(&self, value: &Value, text: impl FnOnce() -> String) {
        if self.json { println!("{value}") } else { println!("{}", text()) }
    }

    /// Prints the deployment's events as they happen until it ends.
    async fn follow(
        &self,
        deployment: Value,
        no_wait: bool,
        wait_seconds: u64,
        success: &str,
    ) -> Result<u8, Exit> {
        let id = text(&deployment["id"]);
        if no_wait {
            self.print(&deployment, || format!("queued: {id}"));
            return Ok(0);
        }
        if !self.json {
            println!("deployment {id} ({} of {})", text(&deployment["kind"]), text(&deployment["agent"]));
        }
        let started = Instant::now();
        let mut shown = 0;
        let mut pause = FIRST_POLL;
        loop {
            // The events say when the deployment ends (each carries its status); the
            // record is read once, at the end.
            let ended = match self.poll(&["deployments", &id, "events"]).await? {
                Some(events) => {
                    let events = events["events"].as_array().cloned().unwrap_or_default();
                    if !self.json {
                        for event in events.iter().skip(shown) {
                            println!("{}", event_line(event));
                        }
                    }
                    if events.len() > shown {
                        pause = FIRST_POLL;
                    }
                    shown = shown.max(events.len());
                    events
                        .last()
                        .is_some_and(|e| TERMINAL.contains(&e["status"].as_str().unwrap_or_default()))
                }
                None => false,
            };
            if ended {
                let record = self.get(&["deployments", &id]).await?;
                let status = text(&record["status"]);
                self.print(&record, || summary(&record));
                return Ok(if status == success { 0 } else { 1 });
            }
            if started.elapsed() > Duration::from_secs(wait_seconds) {
                return Err(Exit(4, format!("{id} is still going after {wait_seconds} s; it goes on")));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LAST_POLL);
        }
    }
}

/// The statuses a deployment ends in.
const TERMINAL: [&str; 3] = ["deployed", "rolled_back", "failed"];
/// The pause between polls while following: short after news, doubling to the last.
const FIRST_POLL: Duration = Duration::from_millis(250);
const LAST_POLL: Duration = Duration::from_secs(5);

/// Whether `url` names this machine (a local stack on any port).
fn is_loopback(url: &str) -> bool {
    let Some(host) = reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)) else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))?;
    Some(base.join("tdev").join("config.json"))
}

fn read_spec(path: &Path) -> Result<(String, &'static str), Exit> {
    let text = std::fs::read_to_string(path).map_err(|e| Exit(2, format!("{}: {e}", path.display())))?;
    let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
    Ok((text, if yaml { "application/yaml" } else { "application/json" }))
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn problem_text(problem: &Value) -> String {
    let mut lines = vec![text(&problem["detail"])];
    for error in problem["errors"].as_array().into_iter().flatten() {
        lines.push(format!("  {}: {}", text(&error["path"]), text(&error["message"])));
    }
    lines.join("\n")
}

fn event_line(event: &Value) -> String {
    format!("  {}  {:<12}  {}", text(&event["at"]), text(&event["status"]), text(&event["detail"]))
}

fn summary(record: &Value) -> String {
    let mut line = format!(
        "{} {}: {} (version {}, before {})",
        text(&record["agent"]),
        text(&record["id"]),
        text(&record["status"]),
        text(&record["version"]),
        text(&record["previous_version"]),
    );
    if let Some(error) = record["error"].as_str() {
        line.push_str(&format!("\n  error: {error}"));
    }
    line
}
