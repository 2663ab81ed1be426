//! The squad engine's overhead per assignment (issue 14): a broadcast of many members and
//! a split of many items, with zero-latency agents, on the local stack's embedded backend.
//!
//! Run: `cargo bench -p tdev-orchestrator --bench squads`. Not part of CI; the figures and
//! how to read them are in BENCHMARKS.md (squads section).
//!
//! Each case builds what the local stack builds: an [`Engine`] over one `SqliteStore` file
//! (WAL) in a fresh temporary folder, serving as store and queue, and `workers` in-process
//! consumers of the step queue (`tdev_worker::local::consume`). Agents answer from inside
//! the process with no I/O (`{"answer": <the item, or "yes">}`), so what is timed is the
//! engine: records, queue, tally. The clock runs from just before `start_task` until the
//! task is seen ended (polled every millisecond); per assignment = wall time / the
//! assignments that succeeded.
//!
//! Cases: `broadcast` of `n` members (each its own agent; aggregation `unanimous`, so that
//! every member answers), `split` of `n` items over 4 workers (`max_per_member` 8).
//! Knobs (environment): `TDEV_BENCH_BROADCAST` (member counts, default `25,50,100`),
//! `TDEV_BENCH_SPLIT` (item counts, default `2500,5000,10000`), `TDEV_BENCH_WORKERS`
//! (default 4), `TDEV_BENCH_REPEATS` (default 3, the median is reported).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tdev_domain::SystemClock;
use tdev_domain::agents::{Agent, AgentInvoker, AgentStore, AgentTarget, InvokeError};
use tdev_domain::queue::QueueSpec;
use tdev_domain::runs::{
    AssignmentStatus, Engine, STEP_DEAD_LETTER_QUEUE, STEP_MAX_RECEIVES, STEP_QUEUE, TaskStatus, TaskStore,
};
use tdev_domain::squads;
use tdev_domain::workflow::{Format, Limits};
use tdev_embedded::SqliteStore;
use tokio::sync::watch;

const CASE_LIMIT: Duration = Duration::from_secs(600);

/// Answers at once: a split item's own value, or "yes".
#[derive(Clone)]
struct InProcess;

impl AgentInvoker for InProcess {
    async fn invoke(
        &self,
        _target: &AgentTarget,
        payload: &Value,
        _timeout: Duration,
    ) -> Result<Map<String, Value>, InvokeError> {
        let answer = payload["inputs"].get("items").cloned().unwrap_or(json!("yes"));
        Ok(Map::from_iter([("answer".to_owned(), answer)]))
    }
}

#[derive(Clone, Copy)]
enum Case {
    Broadcast(usize),
    Split(usize),
}

fn temp_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("tdev-squads-bench-{}-{n}", std::process::id()))
}

/// Wall time and the assignments that succeeded.
async fn run_case(case: Case, workers: usize) -> (Duration, usize) {
    let dir = temp_dir();
    let store = SqliteStore::open(&dir.join("tdev.sqlite3"))
        .expect("open the store")
        .with_queues([QueueSpec::with_dead_letter(STEP_QUEUE, STEP_DEAD_LETTER_QUEUE, STEP_MAX_RECEIVES)]);
    let engine = Arc::new(Engine::new(
        store.clone(),
        store.clone(),
        InProcess,
        Arc::new(SystemClock),
        Limits::default(),
    ));
    let agents = match case {
        Case::Broadcast(n) => n,
        Case::Split(_) => 4,
    };
    for i in 0..agents {
        let agent = Agent {
            id: format!("m{i:04}"),
            name: format!("member {i}"),
            target: AgentTarget::Http { url: "http://in-process/".into() },
            capabilities: Default::default(),
            status: Default::default(),
            max_concurrency: None,
            created_at: jiff::Timestamp::now(),
        };
        store.insert_agent(&agent).await.expect("register an agent");
    }
    let members: Vec<Value> = (0..agents).map(|i| json!({"agent": format!("m{i:04}")})).collect();
    let (squad, input) = match case {
        Case::Broadcast(_) => (
            json!({"id": "bench", "version": "1", "members": members,
                   "aggregation": {"method": "unanimous", "compare": "/answer"},
                   "limits": {"max_concurrency": 1000}}),
            json!({"question": "q"}),
        ),
        Case::Split(n) => (
            json!({"id": "bench", "version": "1", "members": members,
                   "distribution": {"mode": "split", "over": "items"},
                   "limits": {"max_per_member": 8, "max_concurrency": 1000}}),
            json!({"items": (0..n).collect::<Vec<_>>()}),
        ),
    };
    let loaded = squads::load(&squad.to_string(), Format::Json).expect("a valid squad");
    engine.put_squad(loaded).await.expect("store the squad");

    let (stop, shutdown) = watch::channel(false);
    let consumers =
        tokio::spawn(tdev_worker::local::consume(engine.clone(), engine.queue().clone(), workers, shutdown));
    let Value::Object(input) = input else { unreachable!("an object") };
    let started = Instant::now();
    let task = engine.start_task("bench", None, input, None).await.expect("start the task");
    let ended = loop {
        let current = store.get_task(&task.id).await.expect("get the task").expect("the task");
        if current.status.is_terminal() || started.elapsed() > CASE_LIMIT {
            break current;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    consumers.await.expect("the consumers stop");
    assert_eq!(ended.status, TaskStatus::Succeeded, "{:?}", ended.error);
    let assignments = store.list_assignments(&task.id).await.expect("list");
    let succeeded = assignments.iter().filter(|a| a.status == AssignmentStatus::Succeeded).count();
    assert!(assignments.iter().all(|a| a.attempts == 1), "every assignment ran once");
    drop((engine, store));
    let _ = std::fs::remove_dir_all(&dir);
    (elapsed, succeeded)
}

fn env_list(name: &str, default: &str) -> Vec<usize> {
    let list = std::env::var(name).unwrap_or_else(|_| default.to_owned());
    list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().expect(name)).collect()
}

fn main() {
    let broadcast = env_list("TDEV_BENCH_BROADCAST", "25,50,100");
    let split = env_list("TDEV_BENCH_SPLIT", "2500,5000,10000");
    let workers: usize = std::env::var("TDEV_BENCH_WORKERS").map_or(4, |s| s.parse().expect("a count"));
    let repeats: usize = std::env::var("TDEV_BENCH_REPEATS").map_or(3, |s| s.parse().expect("a count"));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let cases: Vec<Case> =
        broadcast.iter().map(|&n| Case::Broadcast(n)).chain(split.iter().map(|&n| Case::Split(n))).collect();
    let mut rows = Vec::new();
    for case in cases {
        let (name, n) = match case {
            Case::Broadcast(n) => ("broadcast", n),
            Case::Split(n) => ("split", n),
        };
        let mut samples: Vec<(Duration, usize)> = (0..=repeats)
            .map(|i| {
                let sample = runtime.block_on(run_case(case, workers));
                eprintln!(
                    "{name} {n}{}: {:.1} ms",
                    if i == 0 { " (warm-up)" } else { "" },
                    sample.0.as_secs_f64() * 1e3
                );
                sample
            })
            .skip(1)
            .collect();
        samples.sort_by_key(|s| s.0);
        let (median, assignments) = samples[samples.len() / 2];
        rows.push(format!(
            "| {name} | {n} | {assignments} | {:.1} ({:.1}–{:.1}) | {:.0} |",
            median.as_secs_f64() * 1e3,
            samples[0].0.as_secs_f64() * 1e3,
            samples[samples.len() - 1].0.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e6 / assignments.max(1) as f64,
        ));
    }
    println!();
    println!(
        "Median of {repeats} runs per case (after one warm-up), {workers} workers, each on a fresh SQLite file."
    );
    println!();
    println!("| case | size | assignments | task ms (min–max) | µs per assignment |");
    println!("|---|---:|---:|---:|---:|");
    for row in &rows {
        println!("{row}");
    }
}
