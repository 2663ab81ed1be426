//! The engine's overhead (issue 3): steps per second for a 1,000-step workflow of no-op
//! agent steps, on the local stack's embedded backend.
//!
//! Run: `cargo bench -p tdev-orchestrator --bench engine`. Not part of CI; the figures
//! and how to read them are in BENCHMARKS.md (workflows section).
//!
//! Each case builds what the local stack builds (`tdev::stack::Stack::new` and
//! `spawn_workers`; this crate cannot depend on the root package, which depends on it):
//! an [`Engine`] over one `SqliteStore` file (WAL) in a fresh temporary folder, serving
//! as both store and queue with the step queue declared as `tdev::stack::queues()` does, and
//! `workers` in-process consumers of the step queue (`tdev_worker::local::consume`, what
//! `spawn_workers` runs). The no-op agent is registered like any agent. The workflow is
//! stored with `put_workflow` and the run started with `start_run` (the engine's calls,
//! not HTTP); the clock runs from just before `start_run` until the run is seen
//! `succeeded` (the run record is polled every millisecond).
//!
//! Agents: `http` is an axum server on 127.0.0.1 (in its own single-threaded runtime on
//! its own thread, as a separate process would be) called through the product's
//! `Invoker` and `default_http_client`; `in-process` answers from inside the engine's
//! process with no I/O, so the difference is the agent call's cost. Both answer at once
//! with the step's one declared output.
//!
//! Shapes: `layers` is 10 levels of 100 steps, step `j` reading the output of step `j`
//! of the level before and, for even `j`, of step `j + 1` too; `chain` is 1,000 steps,
//! each reading the previous one's output.
//!
//! Knobs (environment): `TDEV_BENCH_WORKERS` (default `4,8`), `TDEV_BENCH_SHAPES`
//! (default `layers,chain`), `TDEV_BENCH_AGENTS` (default `in-process,http`),
//! `TDEV_BENCH_STEPS` (default 1000, a multiple of 100), `TDEV_BENCH_REPEATS` (runs per
//! case, each on a fresh database; default 3, the median is reported).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use serde_json::{Map, Value, json};
use tdev_domain::SystemClock;
use tdev_domain::agents::{Agent, AgentInvoker, AgentStore, AgentTarget, InvokeError};
use tdev_domain::queue::QueueSpec;
use tdev_domain::runs::{
    Engine, RunFilter, RunStatus, RunStore, STEP_DEAD_LETTER_QUEUE, STEP_MAX_RECEIVES, STEP_QUEUE, StepStatus,
};
use tdev_domain::workflow::{Format, Limits, load};
use tdev_embedded::SqliteStore;
use tdev_invoke::{Invoker, default_http_client};
use tokio::sync::watch;

/// Each case must finish in this time, or the bench fails (a lost task would otherwise
/// come back only after the 300 s attempt timeout).
const CASE_LIMIT: Duration = Duration::from_secs(300);
const WIDTH: usize = 100;

/// The reply an agent gives for a step: its one declared output, `out_<step id>`.
fn answer(payload: &Value) -> Map<String, Value> {
    let step = payload["context"]["step_id"].as_str().unwrap_or_default();
    Map::from_iter([(format!("out_{step}"), json!(1))])
}

/// An agent answered in-process: no serialization, no socket.
#[derive(Clone)]
struct InProcess;

impl AgentInvoker for InProcess {
    async fn invoke(
        &self,
        _target: &AgentTarget,
        payload: &Value,
        _timeout: Duration,
    ) -> Result<Map<String, Value>, InvokeError> {
        Ok(answer(payload))
    }
}

/// Serves the no-op HTTP agent on 127.0.0.1 from its own thread and runtime, until the
/// process ends; returns its URL.
fn http_agent() -> String {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let app = axum::Router::new()
                .route("/", post(|Json(payload): Json<Value>| async move { Json(answer(&payload)) }));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
            sender.send(format!("http://{}/", listener.local_addr().expect("address"))).expect("send url");
            axum::serve(listener, app).await.expect("serve the agent");
        });
    });
    receiver.recv().expect("the agent's URL")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Layers,
    Chain,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Layers => "layers",
            Shape::Chain => "chain",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AgentKind {
    InProcess,
    Http,
}

impl AgentKind {
    fn name(self) -> &'static str {
        match self {
            AgentKind::InProcess => "in-process",
            AgentKind::Http => "http (127.0.0.1)",
        }
    }
}

fn step(id: &str, inputs: &[String]) -> Value {
    json!({"id": id, "name": id, "type": "agent", "agent_id": "noop", "inputs": inputs, "outputs": [format!("out_{id}")]})
}

/// The workflow document (JSON) of `steps` steps in `shape`.
fn workflow(id: &str, shape: Shape, steps: usize) -> String {
    let list: Vec<Value> = match shape {
        Shape::Chain => (0..steps)
            .map(|i| {
                let inputs = if i == 0 { vec!["seed".to_owned()] } else { vec![format!("out_c{}", i - 1)] };
                step(&format!("c{i}"), &inputs)
            })
            .collect(),
        Shape::Layers => (0..steps / WIDTH)
            .flat_map(|level| (0..WIDTH).map(move |j| (level, j)))
            .map(|(level, j)| {
                let inputs = if level == 0 {
                    vec!["seed".to_owned()]
                } else if j.is_multiple_of(2) {
                    vec![format!("out_s{}_{j}", level - 1), format!("out_s{}_{}", level - 1, (j + 1) % WIDTH)]
                } else {
                    vec![format!("out_s{}_{j}", level - 1)]
                };
                step(&format!("s{level}_{j}"), &inputs)
            })
            .collect(),
    };
    json!({"id": id, "name": id, "version": "1.0.0", "steps": list}).to_string()
}

/// One timed run.
struct Sample {
    elapsed: Duration,
    /// Mean over steps of queued → started (waiting in the queue for a worker).
    queued_to_started: Duration,
    /// Mean over steps of started → finished (the attempt, the agent call included).
    started_to_finished: Duration,
    /// Median of 21 `get_run` calls once the run has ended: reading the run and all its
    /// step records, which the engine does twice per step.
    get_run: Duration,
}

fn mean_of(values: impl Iterator<Item = jiff::SignedDuration>) -> Duration {
    let (sum, n) = values.fold((0i128, 0i128), |(s, n), d| (s + d.as_nanos(), n + 1));
    Duration::from_nanos(u64::try_from(sum / n.max(1)).unwrap_or(0))
}

fn temp_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("tdev-engine-bench-{}-{n}", std::process::id()))
}

async fn run_case<I: AgentInvoker + Clone>(
    invoker: I,
    agent_url: &str,
    shape: Shape,
    steps: usize,
    workers: usize,
) -> Sample {
    let dir = temp_dir();
    let store = SqliteStore::open(&dir.join("tdev.sqlite3"))
        .expect("open the store")
        .with_queues([QueueSpec::with_dead_letter(STEP_QUEUE, STEP_DEAD_LETTER_QUEUE, STEP_MAX_RECEIVES)]);
    let engine = Arc::new(Engine::new(
        store.clone(),
        store.clone(),
        invoker,
        Arc::new(SystemClock),
        Limits::default(),
    ));
    let agent = Agent {
        id: "noop".into(),
        name: "no-op".into(),
        target: AgentTarget::Http { url: agent_url.to_owned() },
        capabilities: Default::default(),
        status: Default::default(),
        max_concurrency: None,
        created_at: jiff::Timestamp::now(),
    };
    store.insert_agent(&agent).await.expect("register the agent");
    let id = format!("bench-{}-{steps}", shape.name());
    let loaded = load(&workflow(&id, shape, steps), Format::Json, engine.limits()).expect("a valid workflow");
    let (stored, _) = engine.put_workflow(loaded).await.expect("store");

    let (stop, shutdown) = watch::channel(false);
    let consumers =
        tokio::spawn(tdev_worker::local::consume(engine.clone(), engine.queue().clone(), workers, shutdown));
    let filter = RunFilter { workflow_id: Some(id.clone()), status: None };

    let started = Instant::now();
    let run = engine
        .start_run(&stored.id, Some(&stored.version), Map::from_iter([("seed".to_owned(), json!(0))]))
        .await
        .expect("start the run");
    let status = loop {
        let runs = store.list_runs(&filter).await.expect("list runs");
        let status = runs.iter().find(|r| r.id == run.id).expect("the run").status;
        if status.is_terminal() || started.elapsed() > CASE_LIMIT {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    consumers.await.expect("the consumers stop");
    assert_eq!(status, RunStatus::Succeeded, "{} did not succeed within {CASE_LIMIT:?}", shape.name());

    let (_, records) = store.get_run(&run.id).await.expect("get the run").expect("the run");
    assert_eq!(records.len(), steps);
    let by_status = records.iter().fold(HashMap::new(), |mut m: HashMap<StepStatus, usize>, r| {
        *m.entry(r.status).or_default() += 1;
        m
    });
    assert_eq!(by_status.get(&StepStatus::Succeeded), Some(&steps), "{by_status:?}");
    assert!(records.iter().all(|r| r.attempts == 1), "every step ran once");
    let queued_to_started =
        mean_of(records.iter().filter_map(|r| Some(r.started_at?.duration_since(r.queued_at?))));
    let started_to_finished =
        mean_of(records.iter().filter_map(|r| Some(r.finished_at?.duration_since(r.started_at?))));
    let mut reads: Vec<Duration> = Vec::new();
    for _ in 0..21 {
        let started = Instant::now();
        let read = store.get_run(&run.id).await.expect("get the run");
        reads.push(started.elapsed());
        drop(read);
    }
    reads.sort();
    let get_run = reads[reads.len() / 2];
    drop((engine, store));
    let _ = std::fs::remove_dir_all(&dir);
    Sample { elapsed, queued_to_started, started_to_finished, get_run }
}

/// The comma-separated list in `name` (`default` when unset), each item read by `read`.
fn env_list<T>(name: &str, default: &str, read: impl Fn(&str) -> T) -> Vec<T> {
    let list = std::env::var(name).unwrap_or_else(|_| default.to_owned());
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(read).collect()
}

/// The list in `name` (default: every choice, in order), each item one of `choices`.
fn env_choices<T: Copy>(name: &str, what: &str, choices: &[(&str, T)]) -> Vec<T> {
    let all: Vec<&str> = choices.iter().map(|(label, _)| *label).collect();
    env_list(name, &all.join(","), |item| match choices.iter().find(|(label, _)| *label == item) {
        Some((_, choice)) => *choice,
        None => panic!("{name}: unknown {what} {item:?}"),
    })
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn main() {
    let workers: Vec<usize> = env_list("TDEV_BENCH_WORKERS", "4,8", |w| w.parse().expect("worker counts"));
    let shapes =
        env_choices("TDEV_BENCH_SHAPES", "shape", &[("layers", Shape::Layers), ("chain", Shape::Chain)]);
    let agents = env_choices(
        "TDEV_BENCH_AGENTS",
        "agent",
        &[("in-process", AgentKind::InProcess), ("http", AgentKind::Http)],
    );
    let steps: usize = std::env::var("TDEV_BENCH_STEPS").map_or(1000, |s| s.parse().expect("a step count"));
    assert!(steps.is_multiple_of(WIDTH) && steps > 0, "TDEV_BENCH_STEPS: a multiple of {WIDTH}");
    let repeats: usize = std::env::var("TDEV_BENCH_REPEATS").map_or(3, |s| s.parse().expect("a count"));

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let agent_url = http_agent();
    let http = Invoker::new(default_http_client().expect("the HTTP client"), None);
    let mut rows = Vec::new();
    for &agent in &agents {
        for &shape in &shapes {
            for &n in &workers {
                // One untimed warm-up run per case (connections, caches, the page cache).
                let mut samples: Vec<Sample> = (0..=repeats)
                    .map(|i| {
                        let sample = runtime.block_on(async {
                            match agent {
                                AgentKind::InProcess => {
                                    run_case(InProcess, &agent_url, shape, steps, n).await
                                }
                                AgentKind::Http => run_case(http.clone(), &agent_url, shape, steps, n).await,
                            }
                        });
                        eprintln!(
                            "{} {} {n} workers{}: {} ms",
                            agent.name(),
                            shape.name(),
                            if i == 0 { " (warm-up)" } else { "" },
                            ms(sample.elapsed)
                        );
                        sample
                    })
                    .skip(1)
                    .collect();
                samples.sort_by_key(|s| s.elapsed);
                let median = &samples[samples.len() / 2];
                let per_second = steps as f64 / median.elapsed.as_secs_f64();
                rows.push(format!(
                    "| {} | {} | {n} | {} | {} ({}–{}) | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} |",
                    agent.name(),
                    shape.name(),
                    steps,
                    ms(median.elapsed),
                    ms(samples[0].elapsed),
                    ms(samples[samples.len() - 1].elapsed),
                    per_second,
                    median.elapsed.as_secs_f64() * 1e3 / steps as f64,
                    median.queued_to_started.as_secs_f64() * 1e3,
                    median.started_to_finished.as_secs_f64() * 1e3,
                    median.get_run.as_secs_f64() * 1e3,
                ));
            }
        }
    }
    println!();
    println!(
        "Median of {repeats} runs per case (after one warm-up), each on a fresh SQLite file; time from start_run to the run seen succeeded."
    );
    println!(
        "ms/step = wall time / steps (throughput). The last two columns are means over the steps of that run, from the step records."
    );
    println!();
    println!(
        "| agent | shape | workers | steps | run ms (min–max) | steps/s | ms/step | queued→started ms | started→finished ms | get_run ms (all steps) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        println!("{row}");
    }
}
