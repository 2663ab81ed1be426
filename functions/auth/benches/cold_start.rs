//! Cold start of the two Lambda functions under a local Lambda Runtime API (issue 2,
//! item 3).
//!
//! Run: `cargo bench -p tdev-auth --bench cold_start` (or `infra/bench.sh`). Not part of CI.
//!
//! For each function, `TDEV_BENCH_RUNS` times (default 20): start the release binary as
//! Lambda would, with `AWS_LAMBDA_RUNTIME_API` pointing at the small Runtime API server
//! below, and measure
//!
//! - init: from just before exec to its first `GET .../invocation/next`;
//! - first event: from handing over the first event to its response;
//! - VmRSS and VmHWM (peak RSS) of the process right after that response;
//! - second event (warm): the same event again, for comparison with the first.
//!
//! Two passes per function: with the binary in the page cache (after one unrecorded
//! start), and `TDEV_BENCH_COLD_RUNS` times (default 5) with the binary's pages dropped
//! from the page cache first (`dd iflag=nocache count=0`), as a first start on a fresh
//! machine reads it from disk.
//!
//! `TDEV_BENCH_AUTH_BIN` and `TDEV_BENCH_AUTHORIZER_BIN` start another binary instead of
//! the one cargo built (an earlier commit's, or a `cargo lambda` bootstrap), to compare
//! two builds under the same conditions.
//!
//! The stores are moto's DynamoDB and Secrets Manager: set `TDEV_BENCH_MOTO_URL` to use a
//! running moto, else the harness starts `.venv/bin/moto_server` (installed by
//! `infra/test.sh` or `infra/bench.sh`) and stops it at the end. The table, the signing
//! secret and an API key are created first, so that each first event does real work:
//! the auth function answers `GET /health` (DescribeTable, and two GetSecretValue for the
//! signing keys); the authorizer decides a request with a valid `x-api-key` (GetItem).

use std::fs::File;
use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail, ensure};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tdev_aws::AwsStore;
use tdev_domain::auth::{ApiKeyStore, NewApiKeyRequest, RateLimit};
use tdev_domain::ports::SecretStore;
use tokio::sync::Notify;

const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:tdev-bench";
const REGION: &str = "us-east-1";
/// How long a process may take to ask for its first event, and to answer one.
const TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> anyhow::Result<()> {
    let runs: usize = match std::env::var("TDEV_BENCH_RUNS") {
        Ok(raw) => raw.parse().context("TDEV_BENCH_RUNS must be a number")?,
        Err(_) => 20,
    };
    ensure!(runs > 0, "TDEV_BENCH_RUNS must be at least 1");
    let cold_runs: usize = match std::env::var("TDEV_BENCH_COLD_RUNS") {
        Ok(raw) => raw.parse().context("TDEV_BENCH_COLD_RUNS must be a number")?,
        Err(_) => 5,
    };
    let work = std::env::temp_dir().join(format!("tdev-bench-cold-start-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;

    let _moto;
    let moto_url = match std::env::var("TDEV_BENCH_MOTO_URL") {
        Ok(url) => url,
        Err(_) => {
            let moto = Moto::start(&work)?;
            let url = moto.url.clone();
            _moto = moto;
            url
        }
    };

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let table = format!("tdev-bench-{}-{nanos}", std::process::id());
    let secret = format!("tdev/bench-signing-key-{nanos}");
    let api_key = rt.block_on(prepare_moto(&moto_url, &table, &secret))?;

    let (reports, received) = mpsc::channel();
    let shared = Arc::new(Shared {
        run: Mutex::new(Run::default()),
        reports: Mutex::new(reports),
        release_second: Notify::new(),
    });
    let listener = StdTcpListener::bind("127.0.0.1:0")?;
    let runtime_api = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(shared.clone());
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
        axum::serve(listener, app).await.expect("the Runtime API server failed");
    });

    let env = LambdaEnv { runtime_api, moto_url, table, secret };
    let cases = [
        Case {
            function: "auth",
            exe: exe("TDEV_BENCH_AUTH_BIN", env!("CARGO_BIN_EXE_auth")),
            event: health_event()?,
            what: "API Gateway v2 HTTP event for GET /health",
            check: check_health,
        },
        Case {
            function: "authorizer",
            exe: exe("TDEV_BENCH_AUTHORIZER_BIN", env!("CARGO_BIN_EXE_authorizer")),
            event: authorizer_event(&api_key)?,
            what: "authorizer event with a valid x-api-key",
            check: check_authorized,
        },
    ];

    let mut results = Vec::new();
    for case in &cases {
        // One start that is not recorded, so the warm pass starts with the binary cached.
        measure(case, "warm-up", &env, &shared, &received, &work)
            .with_context(|| format!("{}: the warm-up start", case.function))?;
        for (cache, count) in [(PageCache::Warm, runs), (PageCache::Dropped, cold_runs)] {
            let mut samples = Vec::with_capacity(count);
            for i in 0..count {
                if cache == PageCache::Dropped {
                    drop_from_page_cache(&case.exe)?;
                }
                let sample = measure(case, &format!("{cache:?}-{i}"), &env, &shared, &received, &work)
                    .with_context(|| format!("{}: {cache:?} run {}", case.function, i + 1))?;
                samples.push(sample);
            }
            if !samples.is_empty() {
                results.push((case, cache, samples));
            }
        }
    }

    print_report(&cases, &results);
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// The binary `variable` names, else the one cargo built with this bench: another build
/// of the same function (an earlier commit's, or a `cargo lambda` bootstrap) to compare.
fn exe(variable: &str, built: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(variable).unwrap_or_else(|| built.into()))
}

/// One function to start, and the first event to give it.
struct Case {
    function: &'static str,
    exe: PathBuf,
    event: String,
    what: &'static str,
    /// Whether the response is the expected success, so no failure is timed as a start.
    check: fn(&Value) -> anyhow::Result<()>,
}

struct LambdaEnv {
    runtime_api: SocketAddr,
    moto_url: String,
    table: String,
    secret: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageCache {
    /// The binary's pages are in the page cache: a start right after another.
    Warm,
    /// Dropped from the page cache just before the start: the binary is read from disk.
    Dropped,
}

/// Drops a file's pages from the page cache (GNU dd: `posix_fadvise(POSIX_FADV_DONTNEED)`).
fn drop_from_page_cache(path: &Path) -> anyhow::Result<()> {
    let status = Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status()
        .context("running dd to drop the binary from the page cache")?;
    ensure!(status.success(), "dd could not drop {} from the page cache ({status})", path.display());
    Ok(())
}

struct Sample {
    init: Duration,
    first_event: Duration,
    second_event: Duration,
    rss_kib: u64,
    hwm_kib: u64,
}

fn measure(
    case: &Case,
    run: &str,
    env: &LambdaEnv,
    shared: &Shared,
    received: &Receiver<Report>,
    work: &Path,
) -> anyhow::Result<Sample> {
    let request_id = format!("{}-{run}", case.function);
    *shared.run.lock().unwrap() =
        Run { request_id: request_id.clone(), event: case.event.clone(), served: 0 };
    let log_path = work.join(format!("{}.log", case.function));
    let log = File::create(&log_path)?;
    let mut command = Command::new(&case.exe);
    command
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("AWS_LAMBDA_RUNTIME_API", env.runtime_api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", format!("tdev-bench-{}", case.function))
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/tdev-bench-{}", case.function))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("AWS_REGION", REGION)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_SESSION_TOKEN", "testing")
        .env("AWS_ENDPOINT_URL", &env.moto_url)
        .env("TDEV_TABLE", &env.table)
        .env("TDEV_SIGNING_SECRET", &env.secret)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let started = Instant::now();
    let child = command.spawn().with_context(|| format!("starting {}", case.exe.display()))?;
    let mut child = KillOnDrop(child);
    let pid = child.0.id();
    let fail = |error: anyhow::Error| {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        error.context(format!("the function's output:\n{log}"))
    };

    let first_next = wait_for_next(received, 1).map_err(fail)?;
    let (first_response, body) = wait_for_response(received, &format!("{request_id}-1")).map_err(fail)?;
    let (rss_kib, hwm_kib) = memory(pid)?;
    (case.check)(&body).map_err(fail)?;

    shared.release_second.notify_one();
    let second_next = wait_for_next(received, 2).map_err(fail)?;
    let (second_response, body) = wait_for_response(received, &format!("{request_id}-2")).map_err(fail)?;
    (case.check)(&body).map_err(fail)?;
    if let Some(status) = child.0.try_wait()? {
        bail!("the function exited ({status}) instead of waiting for its next event");
    }
    drop(child);

    Ok(Sample {
        init: first_next - started,
        first_event: first_response - first_next,
        second_event: second_response - second_next,
        rss_kib,
        hwm_kib,
    })
}

fn wait_for_next(received: &Receiver<Report>, number: u32) -> anyhow::Result<Instant> {
    match receive(received)? {
        Report::Next { number: n, at } if n == number => Ok(at),
        other => Err(anyhow!("expected request {number} for an event, got {other:?}")),
    }
}

fn wait_for_response(received: &Receiver<Report>, request_id: &str) -> anyhow::Result<(Instant, Value)> {
    match receive(received)? {
        Report::Response { id, at, body } if id == request_id => {
            let body = serde_json::from_str(&body)
                .with_context(|| format!("a response that is not JSON: {body}"))?;
            Ok((at, body))
        }
        other => Err(anyhow!("expected the response to {request_id}, got {other:?}")),
    }
}

fn receive(received: &Receiver<Report>) -> anyhow::Result<Report> {
    match received.recv_timeout(TIMEOUT) {
        Ok(Report::InitError { body }) => bail!("the function reported an init error: {body}"),
        Ok(Report::InvocationError { id, body }) => bail!("the function reported an error for {id}: {body}"),
        Ok(report) => Ok(report),
        Err(RecvTimeoutError::Timeout) => bail!("nothing from the function in {TIMEOUT:?}"),
        Err(RecvTimeoutError::Disconnected) => bail!("the Runtime API server stopped"),
    }
}

/// VmRSS and VmHWM of a live process, in KiB.
fn memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|line| line.starts_with(name))
            .ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status"))?;
        let kib = line[name.len()..].trim().trim_end_matches("kB").trim();
        Ok(kib.parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---- the Runtime API ----

/// The invocation now being run.
#[derive(Default)]
struct Run {
    request_id: String,
    event: String,
    /// How many events were handed out in this run.
    served: u32,
}

struct Shared {
    run: Mutex<Run>,
    reports: Mutex<Sender<Report>>,
    /// The second event is held back until the memory after the first has been read.
    release_second: Notify,
}

#[derive(Debug)]
enum Report {
    Next { number: u32, at: Instant },
    Response { id: String, at: Instant, body: String },
    InvocationError { id: String, body: String },
    InitError { body: String },
}

impl Shared {
    fn report(&self, report: Report) {
        let _ = self.reports.lock().unwrap().send(report);
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    let (number, request_id, event) = {
        let mut run = shared.run.lock().unwrap();
        run.served += 1;
        (run.served, run.request_id.clone(), run.event.clone())
    };
    match number {
        1 => {}
        2 => shared.release_second.notified().await,
        // The run is over: the process is killed while it waits here.
        _ => std::future::pending::<()>().await,
    }
    let deadline_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + TIMEOUT;
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        headers.insert(name, HeaderValue::from_str(&value).expect("an ASCII header value"));
    };
    set("lambda-runtime-aws-request-id", format!("{request_id}-{number}"));
    set("lambda-runtime-deadline-ms", deadline_ms.as_millis().to_string());
    set("lambda-runtime-invoked-function-arn", FUNCTION_ARN.to_owned());
    set(
        "lambda-runtime-trace-id",
        "Root=1-65f1a2b3-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=0".to_owned(),
    );
    set("content-type", "application/json".to_owned());
    shared.report(Report::Next { number, at: Instant::now() });
    (headers, event).into_response()
}

async fn response(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> StatusCode {
    let at = Instant::now();
    shared.report(Report::Response { id, at, body });
    StatusCode::ACCEPTED
}

async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> StatusCode {
    shared.report(Report::InvocationError { id, body });
    StatusCode::ACCEPTED
}

async fn init_error(State(shared): State<Arc<Shared>>, body: String) -> StatusCode {
    shared.report(Report::InitError { body });
    StatusCode::ACCEPTED
}

// ---- events and their expected answers ----

fn fixture(name: &str) -> anyhow::Result<Value> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    Ok(serde_json::from_str(&text)?)
}

fn health_event() -> anyhow::Result<String> {
    let mut event = fixture("http-request.json")?;
    event["rawPath"] = json!("/health");
    event["routeKey"] = json!("GET /health");
    event["requestContext"]["routeKey"] = json!("GET /health");
    event["requestContext"]["http"]["path"] = json!("/health");
    Ok(event.to_string())
}

fn authorizer_event(api_key: &str) -> anyhow::Result<String> {
    let mut event = fixture("authorizer-request.json")?;
    event["headers"]["x-api-key"] = json!(api_key);
    Ok(event.to_string())
}

fn check_health(response: &Value) -> anyhow::Result<()> {
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap_or("null"))?;
    ensure!(
        response["statusCode"] == 200 && body["status"] == "ok",
        "GET /health did not answer 200 ok: {response}"
    );
    Ok(())
}

fn check_authorized(response: &Value) -> anyhow::Result<()> {
    ensure!(
        response["isAuthorized"] == true && response["context"]["authenticated"] == true,
        "the authorizer did not authenticate the key: {response}"
    );
    Ok(())
}

// ---- moto ----

/// A moto server started by the harness, stopped when dropped.
struct Moto {
    url: String,
    _process: KillOnDrop,
}

impl Moto {
    fn start(work: &Path) -> anyhow::Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let exe = root.join(".venv/bin/moto_server");
        ensure!(
            exe.exists(),
            "{} is missing: run infra/bench.sh (or infra/test.sh), which installs it, \
             or set TDEV_BENCH_MOTO_URL to a running moto",
            exe.display()
        );
        let port = StdTcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log_path = work.join("moto.log");
        let log = File::create(&log_path)?;
        let child = Command::new(&exe)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let mut process = KillOnDrop(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = process.0.try_wait()? {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("moto exited ({status}) before listening:\n{log}");
            }
            if started.elapsed() > TIMEOUT {
                bail!("moto did not listen on port {port} within {TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Self { url: format!("http://127.0.0.1:{port}"), _process: process })
    }
}

/// Creates the table, the signing secret and a `read` API key; returns the key.
async fn prepare_moto(url: &str, table: &str, secret: &str) -> anyhow::Result<String> {
    // Everything explicit, so nothing in the environment can point this at a real account.
    let config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "tdev-bench",
        )))
        .build();
    let store = AwsStore::new(&config, table);
    store.ensure_table().await.context("creating the table on moto")?;
    store
        .put_secret(secret, "bench-signing-secret-0123456789abcdefghijklmnopqrstuvwxyz")
        .await
        .context("creating the signing secret on moto")?;
    let now = jiff::Timestamp::now();
    let request = NewApiKeyRequest {
        name: "bench".into(),
        scopes: vec!["read".into()],
        expires_at: None,
        rate_limit: Some(RateLimit::DEFAULT),
    };
    let (key, plaintext) = request.validate(now).map_err(|errors| anyhow!("{errors:?}"))?.issue(now);
    store.insert_key(&key).await.context("storing the API key on moto")?;
    Ok(plaintext)
}

// ---- the report ----

fn print_report(cases: &[Case], results: &[(&Case, PageCache, Vec<Sample>)]) {
    println!("\ncold start: min / median / max over the runs");
    println!(
        "\n| function | binary | page cache | runs | init (exec → first /next) | first event → response | second event → response | VmRSS after first | VmHWM after first |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (case, cache, samples) in results {
        let size = std::fs::metadata(&case.exe).map(|m| m.len()).unwrap_or(0);
        let ms = |pick: fn(&Sample) -> Duration| {
            let mut values: Vec<f64> = samples.iter().map(|s| pick(s).as_secs_f64() * 1e3).collect();
            spread(&mut values, "ms", 1)
        };
        let mib = |pick: fn(&Sample) -> u64| {
            let mut values: Vec<f64> = samples.iter().map(|s| pick(s) as f64 / 1024.0).collect();
            spread(&mut values, "MiB", 1)
        };
        let cache = match cache {
            PageCache::Warm => "warm",
            PageCache::Dropped => "binary dropped",
        };
        println!(
            "| {} | {:.1} MiB | {cache} | {} | {} | {} | {} | {} | {} |",
            case.function,
            size as f64 / (1024.0 * 1024.0),
            samples.len(),
            ms(|s| s.init),
            ms(|s| s.first_event),
            ms(|s| s.second_event),
            mib(|s| s.rss_kib),
            mib(|s| s.hwm_kib),
        );
    }
    println!();
    for case in cases {
        println!("- {}: `{}`; the first event is an {}.", case.function, case.exe.display(), case.what);
    }
    println!();
    for (case, cache, samples) in results {
        let init: Vec<String> =
            samples.iter().map(|s| format!("{:.1}", s.init.as_secs_f64() * 1e3)).collect();
        println!("- {} ({cache:?}) init per run, in order (ms): {}", case.function, init.join(" "));
    }
}

fn spread(values: &mut [f64], unit: &str, decimals: usize) -> String {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
    format!("{:.*} / {:.*} / {:.*} {unit}", decimals, values[0], decimals, median, decimals, values[n - 1])
}
