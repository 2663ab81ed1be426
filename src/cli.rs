//! The operator CLI: `tdev deploy`, `rollback`, `status`, `history`, `watch`. It talks to
//! the API (the local stack or a deployed one) over HTTP.
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
//! `--wait-seconds` ran out. `watch` runs until stopped (or `--count` events), taking
//! up the stream again where it left off when it breaks.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::parser::ValueSource;
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::Value;

/// Where the API is and the key to call it with.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct Connection {
    /// The API's base URL; without it, the config file's `url`, else the local stack at
    /// http://127.0.0.1:8080
    #[arg(long, env = "TDEV_URL", value_name = "URL")]
    url: Option<String>,
    /// The API key; without it, the config file's, else (for a stack on this machine) the
    /// one the local stack wrote to .tdev/admin-key. Prefer the variable or the config
    /// file: flags show in `ps`
    #[arg(long, env = "TDEV_API_KEY", hide_env_values = true, value_name = "KEY")]
    api_key: Option<String>,
    /// The config file: {"url": "...", "api_key": "..."}, or "api_key_file" instead of
    /// "api_key" [default: ~/.config/tdev/config.json]
    #[arg(long, env = "TDEV_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the API's JSON instead of text
    #[arg(long)]
    json: bool,
    /// Where `url` came from, when it came from the command line or the environment.
    #[arg(skip)]
    url_source: Option<ValueSource>,
}

/// The reasons a rollback may give.
const REASONS: [&str; 5] = ["manual", "failure", "health_check", "timeout", "error_rate"];

#[derive(Debug, Subcommand)]
pub enum Operate {
    /// Deploy an agent spec (YAML or JSON): validates it, shows each step as it happens,
    /// and waits for the end
    Deploy {
        /// The spec file (.yaml or .yml is read as YAML, anything else as JSON)
        spec: PathBuf,
        /// Only check the spec; record nothing
        #[arg(long)]
        dry_run: bool,
        /// Return once the deployment is queued
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this long (exit 4); the deployment goes on
        #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
        wait_seconds: u64,
        /// Makes a retried command harmless: the same key gives the same deployment
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Undo a deployment: the version before it serves again (or `--to`)
    Rollback {
        /// The deployment to undo (its id: `tdev history` and `tdev deploy` show it)
        deployment: String,
        /// The version to put back [default: the one before the deployment]
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// Why, as recorded on the rollback
        #[arg(long, default_value = "manual", value_parser = REASONS)]
        reason: String,
        /// Return once the rollback is queued
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this long (exit 4); the rollback goes on
        #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
        wait_seconds: u64,
        /// Makes a retried command harmless: the same key gives the same rollback
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// A deployment and its events
    Status {
        /// The deployment's id
        deployment: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// The versions that served an agent, newest first
    History {
        /// The agent's name (the spec's `name`)
        agent: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Follow events as they happen (the local stack's event stream): a line each, or
    /// each event's JSON with --json; a broken stream is taken up where it left off
    Watch {
        /// Only events whose type matches this glob: `run.*`, `squad.task.*`
        #[arg(long = "type", value_name = "GLOB")]
        kind: Option<String>,
        /// Only events about this: a message, run, squad task or agent id
        #[arg(long, value_name = "ID")]
        subject: Option<String>,
        /// Stop after this many events
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        #[command(flatten)]
        connection: Connection,
    },
}

impl Operate {
    fn connection(&self) -> &Connection {
        match self {
            Operate::Deploy { connection, .. }
            | Operate::Rollback { connection, .. }
            | Operate::Status { connection, .. }
            | Operate::History { connection, .. }
            | Operate::Watch { connection, .. } => connection,
        }
    }

    /// The command with where its `--url` came from (`matches`: the subcommand's).
    pub fn with_sources(mut self, matches: &clap::ArgMatches) -> Self {
        let source = matches.value_source("url");
        match &mut self {
            Operate::Deploy { connection, .. }
            | Operate::Rollback { connection, .. }
            | Operate::Status { connection, .. }
            | Operate::History { connection, .. }
            | Operate::Watch { connection, .. } => connection.url_source = source,
        }
        self
    }
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

pub async fn run(command: Operate) -> ExitCode {
    match execute(command).await {
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
    /// Where the URL came from, for a message when it cannot be reached.
    url_from: String,
    key: String,
    json: bool,
}

async fn execute(command: Operate) -> Result<u8, Exit> {
    let api = Api::connect(command.connection().clone())?;
    match command {
        Operate::Deploy { spec, dry_run, no_wait, wait_seconds, idempotency_key, .. } => {
            let (text, content_type) = read_spec(&spec)?;
            if dry_run {
                let report =
                    api.send(api.post(&["deployments:validate"], content_type).body(text), None).await?;
                api.print(&report, || {
                    if report["valid"] == true {
                        format!("valid ({} of {} bytes)", report["size_bytes"], report["max_bytes"])
                    } else {
                        let errors = report["errors"].as_array().map(Vec::as_slice).unwrap_or_default();
                        format!("invalid:\n{}", error_lines(errors))
                    }
                });
                return Ok(if report["valid"] == true { 0 } else { 2 });
            }
            let request = api.post(&["deployments"], content_type).body(text);
            let deployment = api.send(request, idempotency_key.as_deref()).await?;
            api.follow(deployment, no_wait, wait_seconds, "deployed").await
        }
        Operate::Rollback { deployment, to, reason, no_wait, wait_seconds, idempotency_key, .. } => {
            let body = serde_json::json!({ "to_version": to, "reason": reason });
            let request = api.post(&["deployments", &deployment, "rollback"], "application/json").json(&body);
            let rollback = api.send(request, idempotency_key.as_deref()).await?;
            api.follow(rollback, no_wait, wait_seconds, "rolled_back").await
        }
        Operate::Status { deployment, .. } => {
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
        Operate::Watch { kind, subject, count, .. } => api.watch(kind, subject, count).await,
        Operate::History { agent, .. } => {
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
        let config_name =
            || path.as_deref().map_or_else(|| "the config file".to_owned(), |p| p.display().to_string());
        let (url, url_from) = match (connection.url, file.url) {
            (Some(url), _) if connection.url_source == Some(ValueSource::EnvVariable) => {
                (url, "TDEV_URL".to_owned())
            }
            (Some(url), _) => (url, "--url".to_owned()),
            (None, Some(url)) => (url, config_name()),
            (None, None) => (DEFAULT_URL.to_owned(), "the default: the local stack (tdev serve)".to_owned()),
        };
        let key = match connection.api_key.or(file.api_key) {
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
        Ok(Self { http, url, url_from, key, json: connection.json })
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
        let response = request.send().await.map_err(|e| {
            Exit(3, format!("cannot reach the API at {} (from {}): {}", self.url, self.url_from, cause(&e)))
        })?;
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

impl Api {
    /// Prints the stream's events until `count` of them (or forever); a stream that
    /// breaks, or is silent for three heartbeats, is opened again after the last event
    /// printed.
    async fn watch(
        &self,
        kind: Option<String>,
        subject: Option<String>,
        count: Option<u64>,
    ) -> Result<u8, Exit> {
        // No time limit on the whole answer: it is a stream.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("HTTP client")?;
        let mut url = self.endpoint(&["events:stream"]);
        for (name, value) in [("type", &kind), ("subject", &subject)] {
            if let Some(value) = value {
                url.query_pairs_mut().append_pair(name, value);
            }
        }
        let mut last: Option<String> = None;
        let mut printed = 0u64;
        let mut pause = FIRST_POLL;
        loop {
            let mut request = http.get(url.clone()).header("x-api-key", &self.key);
            if let Some(last) = &last {
                request = request.header("last-event-id", last);
            }
            let response = match request.send().await {
                Ok(response) if response.status().is_success() => response,
                Ok(response)
                    if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS
                        || response.status().is_server_error() =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LAST_POLL);
                    continue;
                }
                Ok(response) => return self.answer(response).await.map(|_| 0),
                Err(e) if last.is_none() && printed == 0 => {
                    return Err(Exit(
                        3,
                        format!(
                            "cannot reach the API at {} (from {}): {}",
                            self.url,
                            self.url_from,
                            cause(&e)
                        ),
                    ));
                }
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LAST_POLL);
                    continue;
                }
            };
            pause = FIRST_POLL;
            let mut frames = SseFrames::default();
            let mut response = response;
            while let Ok(Ok(Some(chunk))) = tokio::time::timeout(STREAM_SILENCE, response.chunk()).await {
                for (id, data) in frames.push(&chunk) {
                    let event: Value = serde_json::from_str(&data).unwrap_or(Value::String(data));
                    self.print(&event, || event_summary(&event));
                    last = Some(id);
                    printed += 1;
                    if count.is_some_and(|count| printed >= count) {
                        return Ok(0);
                    }
                }
            }
        }
    }
}

/// How long a stream may say nothing (its heartbeat is every 15 s) before it is opened
/// again.
const STREAM_SILENCE: Duration = Duration::from_secs(45);

/// Server-Sent Events read from chunks: each complete event's `id` and `data`.
#[derive(Default)]
struct SseFrames {
    text: String,
}

impl SseFrames {
    fn push(&mut self, chunk: &[u8]) -> Vec<(String, String)> {
        self.text.push_str(&String::from_utf8_lossy(chunk));
        let mut events = Vec::new();
        while let Some(end) = self.text.find("\n\n") {
            let frame: String = self.text.drain(..end + 2).collect();
            let field = |name: &str| {
                frame
                    .lines()
                    .find_map(|line| line.strip_prefix(name))
                    .map(|v| v.strip_prefix(' ').unwrap_or(v).to_owned())
            };
            if let (Some(id), Some(data)) = (field("id:"), field("data:")) {
                events.push((id, data));
            }
        }
        events
    }
}

/// An event as a line: `time  type  subject  data`.
fn event_summary(event: &Value) -> String {
    format!(
        "{}  {}  {}  {}",
        text(&event["time"]),
        text(&event["type"]),
        text(&event["subject"]),
        event["data"]
    )
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

/// A problem as text: its detail, or, when it lists problems, each once with its path.
fn problem_text(problem: &Value) -> String {
    let errors = problem["errors"].as_array().map(Vec::as_slice).unwrap_or_default();
    if errors.is_empty() {
        return text(&problem["detail"]);
    }
    format!("{}:\n{}", text(&problem["title"]).to_lowercase(), error_lines(errors))
}

/// Each problem once, with its path: `  $.target.url: required`.
fn error_lines(errors: &[Value]) -> String {
    let lines: Vec<String> = errors
        .iter()
        .map(|error| {
            let (path, message) = (text(&error["path"]), text(&error["message"]));
            // A message that repeats its path says it once.
            let message = message.strip_prefix(&format!("{path}: ")).unwrap_or(&message);
            format!("  {path}: {message}")
        })
        .collect();
    lines.join("\n")
}

/// The innermost cause of a failed request: "Connection refused", not reqwest's wrapper.
fn cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = error;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Where `Api::connect` says its URL came from, with a config file holding `config`.
    fn source(url: Option<&str>, url_source: Option<ValueSource>, config: &str) -> String {
        let path = std::env::temp_dir().join(format!("tdev-config-{}-{config:.8}.json", std::process::id()));
        std::fs::write(&path, config).unwrap();
        let connection = Connection {
            url: url.map(str::to_owned),
            api_key: Some("k".into()),
            config: Some(path.clone()),
            json: false,
            url_source,
        };
        let api = Api::connect(connection).ok().expect("connects");
        std::fs::remove_file(&path).ok();
        format!("{} from {}", api.url, api.url_from)
    }

    #[test]
    fn the_url_says_where_it_came_from() {
        let flag = source(Some("http://h:1"), Some(ValueSource::CommandLine), "{}");
        assert_eq!(flag, "http://h:1/ from --url");
        let env = source(Some("http://h:1"), Some(ValueSource::EnvVariable), "{}");
        assert_eq!(env, "http://h:1/ from TDEV_URL");
        let file = source(None, None, r#"{"url": "http://f:2"}"#);
        assert!(file.starts_with("http://f:2/ from ") && file.ends_with(".json"), "{file}");
        let default = source(None, None, "{}");
        assert_eq!(default, "http://127.0.0.1:8080/ from the default: the local stack (tdev serve)");
    }
}
