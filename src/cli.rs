//! The operator CLI: `tdev deploy`, `rollback`, `status`, `history`. It talks to the API
//! (the local stack or a deployed one) over HTTP.
//!
//! Where it connects, first found wins: the `--url` and `--api-key` flags, then
//! `TDEV_URL` and `TDEV_API_KEY`, then the config file (`--config`, `TDEV_CONFIG`, or
//! `~/.config/tdev/config.json`: `{"url": "...", "api_key": "..."}` or `"api_key_file"`),
//! then `http://127.0.0.1:8080` with the key the local stack wrote to `.tdev/admin-key`.
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
    url: String,
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
                    api.send(api.post("/v1/deployments:validate", content_type).body(text), None).await?;
                api.print(&report, || {
                    if report["valid"] == true {
                        format!("valid ({} of {} bytes)", report["size_bytes"], report["max_bytes"])
                    } else {
                        problem_text(&report)
                    }
                });
                return Ok(if report["valid"] == true { 0 } else { 2 });
            }
            let request = api.post("/v1/deployments", content_type).body(text);
            let deployment = api.send(request, idempotency_key.as_deref()).await?;
            api.follow(deployment, no_wait, wait_seconds, "deployed").await
        }
        Operate::Rollback { deployment, to, reason, no_wait, wait_seconds, idempotency_key } => {
            let body = serde_json::json!({ "to_version": to, "reason": reason });
            let request =
                api.post(&format!("/v1/deployments/{deployment}/rollback"), "application/json").json(&body);
            let rollback = api.send(request, idempotency_key.as_deref()).await?;
            api.follow(rollback, no_wait, wait_seconds, "rolled_back").await
        }
        Operate::Status { deployment } => {
            let record = api.get(&format!("/v1/deployments/{deployment}")).await?;
            let events = api.get(&format!("/v1/deployments/{deployment}/events")).await?;
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
            let history = api.get(&format!("/v1/deployed-agents/{agent}/versions")).await?;
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
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                serde_json::from_str::<ConfigFile>(&text)
                    .map_err(|e| Exit(2, format!("{}: {e}", path.display())))?
            }
            Some(path) if connection.config.is_some() => {
                return Err(Exit(2, format!("no config file at {}", path.display())));
            }
            _ => ConfigFile::default(),
        };
        let url = connection
            .url
            .or_else(|| std::env::var("TDEV_URL").ok())
            .or(file.url)
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let key = match connection.api_key.or_else(|| std::env::var("TDEV_API_KEY").ok()).or(file.api_key) {
            Some(key) => key,
            None => {
                let key_file = file.api_key_file.unwrap_or_else(|| PathBuf::from(DEFAULT_KEY_FILE));
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
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(30)).build().context("HTTP client")?;
        Ok(Self { http, url: url.trim_end_matches('/').to_owned(), key, json: connection.json })
    }

    fn post(&self, path: &str, content_type: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.url))
            .header("x-api-key", &self.key)
            .header(reqwest::header::CONTENT_TYPE, content_type)
    }

    async fn get(&self, path: &str) -> Result<Value, Exit> {
        self.send(self.http.get(format!("{}{path}", self.url)).header("x-api-key", &self.key), None).await
    }

    /// Sends the request; a problem answer becomes the exit it calls for.
    async fn send(&self, request: reqwest::RequestBuilder, key: Option<&str>) -> Result<Value, Exit> {
        let request = match key {
            Some(key) => request.header("Idempotency-Key", key),
            None => request,
        };
        let response =
            request.send().await.map_err(|e| Exit(3, format!("could not reach {}: {e}", self.url)))?;
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
        loop {
            let events = self.get(&format!("/v1/deployments/{id}/events")).await?;
            let events = events["events"].as_array().cloned().unwrap_or_default();
            if !self.json {
                for event in events.iter().skip(shown) {
                    println!("{}", event_line(event));
                }
            }
            shown = shown.max(events.len());
            let record = self.get(&format!("/v1/deployments/{id}")).await?;
            let status = text(&record["status"]);
            if ["deployed", "rolled_back", "failed"].contains(&status.as_str()) {
                self.print(&record, || summary(&record));
                return Ok(if status == success { 0 } else { 1 });
            }
            if started.elapsed() > Duration::from_secs(wait_seconds) {
                return Err(Exit(4, format!("{id} is still {status} after {wait_seconds} s; it goes on")));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
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
