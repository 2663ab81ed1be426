//! The planner: levels, the critical path, redundant dependencies, earlier starts.

use super::*;

#[test]
fn the_critical_path_says_where_each_duration_came_from() {
    let value = json!({"id": "wf", "name": "wf", "steps": [
        {"id": "quick", "name": "n", "type": "agent", "agent_id": "x", "estimate": 5, "timeout": 100},
        {"id": "slow", "name": "n", "type": "agent", "agent_id": "x", "timeout": 50},
        {"id": "plain", "name": "n", "type": "agent", "agent_id": "x"},
        {"id": "join", "name": "n", "type": "parallel", "parameters": {"steps": ["quick", "slow"]}}
    ], "dependencies": {"plain": ["join"]}});
    let plan = plan(&validated(&value));
    let path: Vec<(&str, f64, DurationSource, f64)> = plan
        .critical_path
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.seconds, s.source, s.starts_at_seconds))
        .collect();
    assert_eq!(
        path,
        [
            ("slow", 50.0, DurationSource::Timeout, 0.0),
            ("join", 0.0, DurationSource::Group, 50.0),
            ("plain", 1.0, DurationSource::Default, 50.0)
        ]
    );
    assert_eq!(plan.critical_path.seconds, 51.0);
    assert_eq!(plan.parallelism.total_work_seconds, 56.0);
}

#[test]
fn redundant_dependencies_are_reported_with_the_path_that_implies_them() {
    let mut value = with_deps(&["a", "b", "c", "d"], json!({"b": ["a"], "c": ["b"], "d": ["c", "a", "b"]}));
    // d also reads c's output and lists c: implied by the data edge.
    value["steps"][2]["outputs"] = json!(["c_out"]);
    value["steps"][3]["inputs"] = json!(["c_out"]);
    let plan = plan(&validated(&value));
    let found: Vec<(&str, &str, ImpliedBy, Vec<&str>)> = plan
        .redundant_dependencies
        .iter()
        .map(|r| (r.step.as_str(), r.dependency.as_str(), r.implied_by, ids(&r.via)))
        .collect();
    assert_eq!(
        found,
        [
            ("d", "a", ImpliedBy::Path, vec!["a", "b", "d"]),
            ("d", "b", ImpliedBy::Path, vec!["b", "c", "d"]),
            ("d", "c", ImpliedBy::DataEdge, vec!["c", "d"]),
        ]
    );
    assert!(plan.redundant_dependencies_complete);
}

#[test]
fn long_via_paths_are_elided_in_the_middle() {
    let n = 40;
    let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut deps = serde_json::Map::new();
    for i in 1..n {
        deps.insert(names[i].clone(), json!([names[i - 1]]));
    }
    deps.insert(names[n - 1].clone(), json!([names[n - 2], names[0]]));
    let plan = plan(&validated(&with_deps(&refs, Value::Object(deps))));
    let [redundant] = plan.redundant_dependencies.as_slice() else {
        panic!("{:?}", plan.redundant_dependencies)
    };
    assert_eq!((redundant.step.as_str(), redundant.dependency.as_str()), ("s39", "s0"));
    assert_eq!(redundant.via.len(), MAX_VIA_STEPS);
    assert_eq!(redundant.via_elided, n - MAX_VIA_STEPS);
    assert_eq!(redundant.via[0].as_str(), "s0");
    assert_eq!(redundant.via[MAX_VIA_STEPS - 1].as_str(), "s39");
}

#[test]
fn steps_held_back_by_explicit_only_dependencies_could_start_earlier() {
    // `report` reads only `raw` (level 1) but also lists `slow_side_job` (level 2).
    let value = json!({"id": "wf", "name": "wf", "steps": [
        {"id": "fetch", "name": "n", "type": "agent", "agent_id": "x", "outputs": ["raw"]},
        {"id": "prep", "name": "n", "type": "agent", "agent_id": "x"},
        {"id": "slow_side_job", "name": "n", "type": "agent", "agent_id": "x"},
        {"id": "report", "name": "n", "type": "agent", "agent_id": "x", "inputs": ["raw"]},
        {"id": "cond", "name": "n", "type": "condition", "parameters": {"expression": "x", "when_true": ["branch"]}},
        {"id": "branch", "name": "n", "type": "agent", "agent_id": "x"}
    ], "dependencies": {"slow_side_job": ["prep"], "prep": ["fetch"], "report": ["slow_side_job"], "branch": ["cond"]}});
    let plan = plan(&validated(&value));
    let found: Vec<(&str, u32, u32, Vec<&str>)> = plan
        .could_start_earlier
        .iter()
        .map(|e| (e.step.as_str(), e.level, e.earliest_level, ids(&e.held_by)))
        .collect();
    // `branch` waits on its condition for the branch decision: not reported.
    assert_eq!(
        found,
        [
            ("prep", 1, 0, vec!["fetch"]),
            ("slow_side_job", 2, 0, vec!["prep"]),
            ("report", 3, 1, vec!["slow_side_job"])
        ]
    );
}

#[test]
fn the_report_serializes_errors_or_a_plan() {
    let report = validate(&etl().to_string(), Format::Json, &limits());
    assert!(report.valid);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["workflow"]["required_inputs"], json!(["source_url"]));
    assert_eq!(json["plan"]["levels"], json!([["extract"], ["transform"], ["load"]]));
    assert_eq!(json["plan"]["critical_path"]["steps"][0]["source"], "default");
    assert_eq!(json["errors"], json!([]));

    let report =
        validate("id: wf\nname: wf\nsteps: [{id: a, name: A, type: agent}]", Format::Yaml, &limits());
    assert!(!report.valid);
    assert_eq!(
        serde_json::to_value(&report).unwrap()["errors"],
        json!([{"kind": "field", "path": "$.steps[0].agent_id", "message": "is required"}])
    );

    let text = with_deps(&["a", "b"], json!({"a": ["b"], "b": ["a"]})).to_string();
    let report = serde_json::to_value(validate(&text, Format::Json, &limits())).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["workflow"]["id"], "wf");
    assert_eq!(report["errors"][0]["kind"], "cycle");
    assert_eq!(report["errors"][0]["message"], "cycle: a → b → a");
    assert_eq!(
        report["errors"][0]["edges"][0],
        json!({"from": "a", "to": "b", "dependency": true, "data": [], "groups": []})
    );

    let report = serde_json::to_value(validate("{", Format::Json, &limits())).unwrap();
    assert_eq!(report["errors"][0]["kind"], "syntax");
    assert_eq!(report["errors"][0]["line"], 1);
}

#[test]
fn load_gives_a_validated_workflow_or_the_reason() {
    assert!(load(&etl().to_string(), Format::Json, &limits()).is_ok());
    let text = with_deps(&["a"], json!({"a": ["a"]})).to_string();
    assert!(matches!(load(&text, Format::Json, &limits()), Err(WorkflowError::Cycles(_))));
    assert!(matches!(load("[", Format::Json, &limits()), Err(WorkflowError::Parse(_))));
}

#[test]
fn a_large_layered_workflow_plans_exactly() {
    let text = layered_text(500, 20, 20);
    let workflow = load(&text, Format::Json, &limits()).unwrap();
    let plan = plan(workflow.validated());
    assert_eq!(plan.steps, 10_000);
    assert_eq!(plan.levels.len(), 500);
    assert_eq!(plan.max_width, 20);
    assert_eq!(plan.edges, 499 * 20 * 20);
    assert_eq!(plan.critical_path.seconds, 500.0);
    assert!(plan.redundant_dependencies.is_empty() && plan.redundant_dependencies_complete);
}

/// `layers` × `width` agent steps, as JSON text; each reads `fan_in` outputs of the
/// layer before.
fn layered_text(layers: usize, width: usize, fan_in: usize) -> String {
    use std::fmt::Write;
    let mut out = String::from(r#"{"id":"big","name":"big","steps":["#);
    for layer in 0..layers {
        for i in 0..width {
            if layer + i > 0 {
                out.push(',');
            }
            write!(out, r#"{{"id":"s{layer}_{i}","name":"step","type":"agent","agent_id":"w","inputs":["#)
                .unwrap();
            if layer > 0 {
                for k in 0..fan_in {
                    if k > 0 {
                        out.push(',');
                    }
                    write!(out, r#""d{}_{}""#, layer - 1, (i + k) % width).unwrap();
                }
            }
            write!(out, r#"],"outputs":["d{layer}_{i}"]}}"#).unwrap();
        }
    }
    out.push_str("]}");
    out
}
