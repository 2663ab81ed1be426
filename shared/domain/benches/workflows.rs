//! Parse + validate + plan of large generated workflows (issue 3): time per document and
//! peak memory of one `tdev_domain::workflow::validate` call, JSON and YAML, for 1,000,
//! 10,000 and 100,000 steps.
//!
//! Run: `cargo bench -p tdev-domain --bench workflows`. Not part of CI; the figures and how
//! to read them are in BENCHMARKS.md (workflows section).
//!
//! A plain loop, not criterion: per case, warm-up runs, then `runs` timed runs, and the
//! median (with min and max) is printed. Memory is measured by a counting global allocator
//! (below) on one extra run, so that the counting does not touch the timed runs: "peak" is
//! the most bytes held at once during the call, above what was held before it.
//!
//! Knobs (environment): `TDEV_BENCH_SIZES` (default `1000,10000,100000`),
//! `TDEV_BENCH_FORMATS` (default `json,yaml`), `TDEV_BENCH_RUNS` (timed runs per case;
//! default 31, 15 and 7 for the three sizes).
//!
//! The workflows are **layered**: levels of 100 agent steps. Step `j` of level `l` reads
//! the output of step `j` of level `l - 1`, and for even `j` also that of step `j + 1`
//! (one or two data edges); every tenth step also lists in `dependencies` a step of the
//! previous level it shares no data with (a new ordering), and every tenth step from level
//! 2 on lists step `j` of level `l - 2`, which the data edges already imply (a redundant
//! dependency the planner finds). Level 0 reads the workflow input `seed`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tdev_domain::workflow::{Format, Limits, ValidatedWorkflow, parse, plan, validate};

/// Forwards to the system allocator; while `TRACKING` is on, counts the bytes held and
/// their high-water mark.
struct Counting;

static TRACKING: AtomicBool = AtomicBool::new(false);
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn grow(by: usize) {
        let now = CURRENT.fetch_add(by, Ordering::Relaxed) + by;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }

    fn shrink(by: usize) {
        // Saturating: a block allocated before tracking started may be freed during it.
        let _ = CURRENT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| Some(c.saturating_sub(by)));
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if TRACKING.load(Ordering::Relaxed) {
            Self::grow(layout.size());
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if TRACKING.load(Ordering::Relaxed) {
            Self::grow(layout.size());
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if TRACKING.load(Ordering::Relaxed) {
            Self::shrink(layout.size());
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if TRACKING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            if new_size >= layout.size() {
                Self::grow(new_size - layout.size());
            } else {
                Self::shrink(layout.size() - new_size);
            }
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What one call held at its peak, what it still held when it returned (its result), and
/// how many allocations it made.
struct Memory {
    peak: usize,
    retained: usize,
    allocations: usize,
}

/// Runs `f` once with the allocator counting; `f`'s result is dropped after the count.
fn measure_memory<T>(f: impl FnOnce() -> T) -> Memory {
    CURRENT.store(0, Ordering::SeqCst);
    PEAK.store(0, Ordering::SeqCst);
    ALLOCATIONS.store(0, Ordering::SeqCst);
    TRACKING.store(true, Ordering::SeqCst);
    let result = black_box(f());
    TRACKING.store(false, Ordering::SeqCst);
    let memory = Memory {
        peak: PEAK.load(Ordering::SeqCst),
        retained: CURRENT.load(Ordering::SeqCst),
        allocations: ALLOCATIONS.load(Ordering::SeqCst),
    };
    drop(result);
    memory
}

const WIDTH: usize = 100;

fn input_names(level: usize, j: usize) -> Vec<String> {
    if level == 0 {
        return vec!["seed".to_owned()];
    }
    let mut names = vec![format!("d{}_{j}", level - 1)];
    if j.is_multiple_of(2) {
        names.push(format!("d{}_{}", level - 1, (j + 1) % WIDTH));
    }
    names
}

/// Explicit dependencies of step `j` of `level`, besides its data edges.
fn explicit(level: usize, j: usize) -> Vec<String> {
    let mut deps = Vec::new();
    if level >= 1 && j.is_multiple_of(10) {
        deps.push(format!("s{}_{}", level - 1, (j + WIDTH / 2) % WIDTH));
    }
    if level >= 2 && j % 10 == 5 {
        deps.push(format!("s{}_{j}", level - 2));
    }
    deps
}

fn quoted(names: &[String]) -> String {
    names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
}

/// A layered workflow of `steps` steps (a multiple of 100), one step per line, as a
/// generator would write it.
fn json(steps: usize) -> String {
    let levels = steps / WIDTH;
    let mut out = String::with_capacity(steps * 160);
    let _ = write!(
        out,
        "{{\n  \"id\": \"layered-{steps}\",\n  \"name\": \"{levels} levels of {WIDTH}\",\n  \"version\": \"1.0.0\",\n  \"steps\": [\n"
    );
    for level in 0..levels {
        for j in 0..WIDTH {
            let last = level == levels - 1 && j == WIDTH - 1;
            let _ = writeln!(
                out,
                "    {{\"id\": \"s{level}_{j}\", \"name\": \"step {level}.{j}\", \"type\": \"agent\", \"agent_id\": \"worker\", \"inputs\": [{}], \"outputs\": [\"d{level}_{j}\"]}}{}",
                quoted(&input_names(level, j)),
                if last { "" } else { "," }
            );
        }
    }
    out.push_str("  ],\n  \"dependencies\": {\n");
    let entries: Vec<String> = (0..levels)
        .flat_map(|level| (0..WIDTH).map(move |j| (level, j)))
        .filter_map(|(level, j)| {
            let deps = explicit(level, j);
            (!deps.is_empty()).then(|| format!("    \"s{level}_{j}\": [{}]", quoted(&deps)))
        })
        .collect();
    out.push_str(&entries.join(",\n"));
    out.push_str("\n  }\n}\n");
    out
}

/// The same workflow in block-style YAML.
fn yaml(steps: usize) -> String {
    let levels = steps / WIDTH;
    let mut out = String::with_capacity(steps * 160);
    let _ =
        write!(out, "id: layered-{steps}\nname: {levels} levels of {WIDTH}\nversion: \"1.0.0\"\nsteps:\n");
    for level in 0..levels {
        for j in 0..WIDTH {
            let _ = write!(
                out,
                "  - id: s{level}_{j}\n    name: step {level}.{j}\n    type: agent\n    agent_id: worker\n    inputs: [{}]\n    outputs: [d{level}_{j}]\n",
                input_names(level, j).join(", ")
            );
        }
    }
    out.push_str("dependencies:\n");
    for level in 0..levels {
        for j in 0..WIDTH {
            let deps = explicit(level, j);
            if !deps.is_empty() {
                let _ = writeln!(out, "  s{level}_{j}: [{}]", deps.join(", "));
            }
        }
    }
    out
}

struct Timing {
    median: Duration,
    min: Duration,
    max: Duration,
}

/// Times `f` (median of `runs` after 2 warm-up runs). What `f` returns is dropped after
/// the clock stops: freeing the result is not part of the figure (freeing what a call
/// makes and does not return is).
fn time<R>(runs: usize, mut f: impl FnMut() -> R) -> Timing {
    time_with_setup(runs, || (), |()| f())
}

/// Like [`time`], with an untimed `setup` before each run whose result the run consumes.
fn time_with_setup<T, R>(runs: usize, mut setup: impl FnMut() -> T, mut f: impl FnMut(T) -> R) -> Timing {
    for _ in 0..2.min(runs) {
        drop(black_box(f(setup())));
    }
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let input = setup();
            let started = Instant::now();
            let result = black_box(f(input));
            let elapsed = started.elapsed();
            drop(result);
            elapsed
        })
        .collect();
    samples.sort();
    Timing { median: samples[samples.len() / 2], min: samples[0], max: samples[samples.len() - 1] }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn mb(bytes: usize) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn main() {
    let sizes: Vec<usize> = env_list("TDEV_BENCH_SIZES", "1000,10000,100000")
        .iter()
        .map(|s| s.replace('_', "").parse().expect("TDEV_BENCH_SIZES: step counts"))
        .collect();
    let formats: Vec<Format> = env_list("TDEV_BENCH_FORMATS", "json,yaml")
        .iter()
        .map(|f| match f.as_str() {
            "json" => Format::Json,
            "yaml" => Format::Yaml,
            other => panic!("TDEV_BENCH_FORMATS: unknown format {other:?}"),
        })
        .collect();
    let fixed_runs: Option<usize> =
        std::env::var("TDEV_BENCH_RUNS").ok().map(|r| r.parse().expect("a count"));
    // The defaults allow 10 MiB; the 100,000-step documents are larger than that.
    let limits = Limits { max_bytes: 256 << 20, max_steps: 1_000_000, max_edges: 10_000_000 };

    let mut times = Vec::new();
    let mut memory = Vec::new();
    let mut extra = Vec::new();
    for &steps in &sizes {
        assert!(steps.is_multiple_of(WIDTH) && steps > 0, "step counts are multiples of {WIDTH}");
        let runs = fixed_runs.unwrap_or(if steps <= 1_000 {
            31
        } else if steps <= 10_000 {
            15
        } else {
            7
        });
        for &format in &formats {
            let text = match format {
                Format::Json => json(steps),
                Format::Yaml => yaml(steps),
            };
            let name = match format {
                Format::Json => "JSON",
                Format::Yaml => "YAML",
            };
            // Check once, untimed, that the document is what it claims to be.
            let report = validate(&text, format, &limits);
            assert!(report.valid, "{name} {steps}: {:?}", &report.errors[..report.errors.len().min(3)]);
            let planned = report.plan.as_ref().expect("a valid report has a plan");
            assert_eq!(
                (planned.steps, planned.levels.len(), planned.max_width),
                (steps, steps / WIDTH, WIDTH)
            );
            let report_json = serde_json::to_vec(&report).expect("the report serializes");
            extra.push(format!(
                "| {steps} | {name} | {} | {} | {} | {} | {} |",
                planned.edges,
                planned.redundant_dependencies.len(),
                planned.redundant_dependencies_complete,
                planned.could_start_earlier.len(),
                report_json.len()
            ));
            drop(report);

            eprintln!("{name} {steps} steps ({} bytes): {runs} runs per phase", text.len());
            let parse_t = time(runs, || parse(black_box(&text), format, &limits).expect("parses"));
            let cycles_t = time_with_setup(
                runs,
                || parse(&text, format, &limits).expect("parses"),
                |workflow| ValidatedWorkflow::new(black_box(workflow)).expect("acyclic"),
            );
            let validated =
                ValidatedWorkflow::new(parse(&text, format, &limits).expect("parses")).expect("acyclic");
            let plan_t = time(runs, || plan(black_box(&validated)));
            drop(validated);
            let validate_t = time(runs, || validate(black_box(&text), format, &limits));
            let report = validate(&text, format, &limits);
            let serialize_t = time(runs, || serde_json::to_vec(black_box(&report)).expect("serializes"));
            drop(report);
            // The floor: the same text into a `serde_json::Value` and nothing else (no
            // checks, no model): what the parser alone costs.
            let floor = |text: &str| -> Value {
                match format {
                    Format::Json => serde_json::from_str(text).expect("JSON"),
                    Format::Yaml => yaml_serde::from_str(text).expect("YAML"),
                }
            };
            let floor_t = time(runs, || floor(black_box(&text)));
            let floor_m = measure_memory(|| floor(&text));
            let parse_m = measure_memory(|| parse(&text, format, &limits).expect("parses"));
            let validate_m = measure_memory(|| validate(&text, format, &limits));
            times.push(format!(
                "| {steps} | {name} | {} | **{}** ({}–{}) | {:.2} | {} | {} | {} | {} | {} |",
                mb(text.len()),
                ms(validate_t.median),
                ms(validate_t.min),
                ms(validate_t.max),
                validate_t.median.as_secs_f64() * 1e6 / steps as f64,
                ms(parse_t.median),
                ms(cycles_t.median),
                ms(plan_t.median),
                ms(serialize_t.median),
                ms(floor_t.median),
            ));
            memory.push(format!(
                "| {steps} | {name} | {} | **{}** ({:.1} MiB) | {:.1} | {} | {} | {} | {} | {} |",
                mb(text.len()),
                mb(validate_m.peak),
                validate_m.peak as f64 / f64::from(1u32 << 20),
                validate_m.peak as f64 / text.len() as f64,
                mb(parse_m.peak),
                mb(parse_m.retained),
                mb(validate_m.retained),
                validate_m.allocations,
                mb(floor_m.peak),
            ));
        }
    }

    println!();
    println!(
        "Medians of timed runs after 2 warm-up runs. validate = parse + cycle check + plan + summary; each phase is also timed alone (the cycle check on a freshly parsed workflow each run, parsed untimed)."
    );
    println!(
        "Memory: counting allocator, one call each; peak = most bytes held at once during the call, the input text not counted; workflow = what parse returns; report = what validate returns; MB = 10^6 bytes."
    );
    println!();
    println!(
        "| steps | format | input MB | validate ms (min–max) | µs/step | parse ms | cycle check ms | plan ms | report→JSON ms | floor: text→Value ms |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &times {
        println!("{row}");
    }
    println!();
    println!(
        "| steps | format | input MB | validate peak MB | peak ÷ input | parse peak MB | workflow MB | report MB | allocations (validate) | floor: text→Value peak MB |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &memory {
        println!("{row}");
    }
    println!();
    println!(
        "| steps | format | edges | redundant deps found | search complete | could start earlier | report JSON bytes |"
    );
    println!("|---:|---|---:|---:|---|---:|---:|");
    for row in &extra {
        println!("{row}");
    }
}
