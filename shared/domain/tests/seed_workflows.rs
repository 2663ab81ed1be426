//! Workflows written for the system this replaces (issue 12): every step `type: service`
//! with no target, cycles only through `dependencies`, YAML anchors kept under
//! `defaults`. Each fixture in `fixtures/seed/` loads unchanged and validates with
//! exactly the cycles and plan stated here, plus one `not_runnable` notice listing every
//! step; the same file with a default target has no notice, and is runnable when it has
//! no cycle.

use serde_json::{Value, json};
use tdev_domain::workflow::{Format, Limits, validate};

struct Case {
    file: &'static str,
    /// Each reported cycle's steps, the first repeated last.
    cycles: &'static [&'static [&'static str]],
    /// The plan's levels; empty when there are cycles (no plan).
    levels: &'static [&'static [&'static str]],
    /// (step, dependency, via) of each redundant dependency.
    redundant: &'static [(&'static str, &'static str, &'static [&'static str])],
    /// The edit that gives the file a default target: (text to replace, replacement);
    /// an empty text to replace appends.
    with_target: (&'static str, &'static str),
}

const HTTP_DEFAULT: &str = "defaults:\n  target: {kind: http, url: \"https://runner.example/steps\"}\n";

const CASES: &[Case] = &[
    Case {
        file: "self_loop.yaml",
        cycles: &[&["review", "review"]],
        levels: &[],
        redundant: &[],
        with_target: ("", HTTP_DEFAULT),
    },
    Case {
        file: "two_cycles.json",
        cycles: &[&["plan", "draft", "plan"], &["check", "fix", "verify", "check"]],
        levels: &[],
        redundant: &[],
        with_target: (
            "\"steps\": [",
            "\"defaults\": {\"target\": {\"kind\": \"lambda\", \"function\": \"runner\"}},\n  \"steps\": [",
        ),
    },
    Case {
        file: "redundant_edge.yaml",
        cycles: &[],
        levels: &[&["extract"], &["clean", "notify"], &["summarize"]],
        redundant: &[("summarize", "extract", &["extract", "clean", "summarize"])],
        with_target: ("", HTTP_DEFAULT),
    },
    Case {
        file: "anchored_defaults.yaml",
        cycles: &[],
        levels: &[&["research"], &["outline", "write"], &["edit"]],
        redundant: &[],
        // The anchored mapping is merged into every step, so the target goes beside it.
        with_target: (
            "defaults: &d\n  timeout: 30\n  retry_policy:\n    max_attempts: 3\n    backoff_factor: 2\n",
            "defaults:\n  target: {kind: agent, agent_id: writer}\n  common: &d\n    timeout: 30\n    \
             retry_policy:\n      max_attempts: 3\n      backoff_factor: 2\n",
        ),
    },
    Case {
        file: "anchors_under_defaults.yaml",
        cycles: &[&["analyse", "score", "rank", "analyse"]],
        levels: &[],
        redundant: &[],
        with_target: ("defaults:\n", "defaults:\n  target: {kind: agent, agent_id: worker}\n"),
    },
];

fn fixture(file: &str) -> (String, Format) {
    let path = format!("{}/tests/fixtures/seed/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let format = if file.ends_with(".json") { Format::Json } else { Format::Yaml };
    (text, format)
}

fn report(text: &str, format: Format) -> Value {
    serde_json::to_value(validate(text, format, &Limits::default())).unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

/// The cycles, plan levels and redundant dependencies (step, dependency, via) of a
/// report, as plain lists.
#[derive(Debug, PartialEq)]
struct GraphFindings {
    cycles: Vec<Vec<String>>,
    levels: Vec<Vec<String>>,
    redundant: Vec<(String, String, Vec<String>)>,
}

fn graph_findings(report: &Value) -> GraphFindings {
    let errors = report["errors"].as_array().unwrap();
    for error in errors {
        assert_eq!(error["kind"], "cycle", "only cycles are wrong with these files: {error}");
    }
    let cycles = errors.iter().map(|e| strings(&e["steps"])).collect();
    let levels =
        report["plan"]["levels"].as_array().map_or_else(Vec::new, |l| l.iter().map(strings).collect());
    let redundant = report["plan"]["redundant_dependencies"].as_array().map_or_else(Vec::new, |r| {
        r.iter()
            .map(|r| {
                assert_eq!(r["implied_by"], "path");
                (
                    r["step"].as_str().unwrap().to_owned(),
                    r["dependency"].as_str().unwrap().to_owned(),
                    strings(&r["via"]),
                )
            })
            .collect()
    });
    GraphFindings { cycles, levels, redundant }
}

#[test]
fn seed_workflows_load_unchanged_with_their_cycles_plan_and_one_not_runnable_notice() {
    for case in CASES {
        let (text, format) = fixture(case.file);
        let report = report(&text, format);
        let file = case.file;
        let GraphFindings { cycles, levels, redundant } = graph_findings(&report);
        let expected: Vec<Vec<String>> =
            case.cycles.iter().map(|c| c.iter().map(|s| (*s).to_owned()).collect()).collect();
        assert_eq!(cycles, expected, "{file}: cycles");
        let expected: Vec<Vec<String>> =
            case.levels.iter().map(|l| l.iter().map(|s| (*s).to_owned()).collect()).collect();
        assert_eq!(levels, expected, "{file}: levels");
        let expected: Vec<(String, String, Vec<String>)> = case
            .redundant
            .iter()
            .map(|(s, d, via)| {
                ((*s).to_owned(), (*d).to_owned(), via.iter().map(|v| (*v).to_owned()).collect())
            })
            .collect();
        assert_eq!(redundant, expected, "{file}: redundant dependencies");
        assert_eq!(report["valid"], case.cycles.is_empty(), "{file}: {report:#}");
        assert_eq!(report["runnable"], false, "{file}");

        // One not-runnable notice naming every step (all are untargeted service steps).
        let notices = report["notices"].as_array().unwrap();
        assert_eq!(notices.len(), 1, "{file}: {notices:#?}");
        assert_eq!(notices[0]["kind"], "not_runnable");
        let step_count = report["workflow"]["steps"].as_u64().unwrap() as usize;
        let listed = notices[0]["steps"].as_array().unwrap();
        assert_eq!(listed.len(), step_count, "{file}: every step is listed once");
        for (i, step) in listed.iter().enumerate() {
            assert_eq!(step["path"], format!("$.steps[{i}].parameters.target"), "{file}");
        }
        assert!(notices[0]["message"].as_str().unwrap().contains("defaults.target"), "{file}: says how");

        // With a default target: the same graph, no notice.
        let (from, to) = case.with_target;
        let targeted = if from.is_empty() { format!("{text}{to}") } else { text.replacen(from, to, 1) };
        assert_ne!(targeted, text, "{file}: the edit applies");
        let with_target = self::report(&targeted, format);
        assert_eq!(graph_findings(&with_target), graph_findings(&report), "{file}: the same graph");
        assert_eq!(with_target["notices"], json!([]), "{file}: {with_target:#}");
        assert_eq!(with_target["runnable"], case.cycles.is_empty(), "{file}");
        assert_eq!(with_target["valid"], case.cycles.is_empty(), "{file}");
    }
}

#[test]
fn merged_anchors_give_each_step_the_anchored_fields_and_its_own_win() {
    let (text, format) = fixture("anchored_defaults.yaml");
    let workflow = tdev_domain::workflow::parse(&text, format, &Limits::default()).expect("loads unchanged");
    let outline = &workflow.steps()[1];
    assert_eq!(outline.timeout.map(|t| t.get()), Some(60.0), "the step's own timeout wins");
    for step in workflow.steps() {
        assert_eq!(step.retry_policy.max_attempts, 3, "{}", step.id);
    }
    let (text, format) = fixture("anchors_under_defaults.yaml");
    let report = report(&text, format);
    assert_eq!(report["workflow"]["steps"], 5, "an aliased retry policy and merged fields load: {report:#}");
}
