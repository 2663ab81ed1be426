//! Parser, validator and planner tests, and property tests on random graphs, by subject;
//! the helpers they share are here.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

mod defaults;
mod graph;
mod hostile;
mod parse;
mod plan;
mod properties;

fn limits() -> Limits {
    Limits::default()
}

fn parse_value(value: &Value) -> Result<Workflow, ParseErrors> {
    parse_json(&value.to_string(), &limits())
}

fn parsed(value: &Value) -> Workflow {
    parse_value(value).unwrap_or_else(|e| panic!("expected a valid workflow, got: {e}"))
}

fn validated(value: &Value) -> ValidatedWorkflow {
    ValidatedWorkflow::new(parsed(value)).unwrap_or_else(|e| panic!("expected no cycle, got: {e}"))
}

fn cycles(value: &Value) -> Vec<Cycle> {
    match ValidatedWorkflow::new(parsed(value)) {
        Ok(_) => panic!("expected cycles"),
        Err(CycleErrors(cycles)) => cycles,
    }
}

/// (path, message) of every field error; panics on other kinds.
fn field_errors(value: &Value) -> Vec<(String, String)> {
    let errors = parse_value(value).expect_err("expected errors");
    errors
        .errors()
        .iter()
        .map(|e| match e {
            ParseError::Field(f) => (f.path.clone(), f.message.clone()),
            other => panic!("expected field errors only, got {other}"),
        })
        .collect()
}

fn has_error(errors: &[(String, String)], path: &str, needle: &str) -> bool {
    errors.iter().any(|(p, m)| p == path && m.contains(needle))
}

/// Each of `expected` (a path, and a part of its message) is in `errors`, and nothing else.
fn assert_exactly(errors: &[(String, String)], expected: &[(&str, &str)]) {
    for (path, message) in expected {
        assert!(has_error(errors, path, message), "missing {path}: {message} in {errors:#?}");
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

fn agent(id: &str) -> Value {
    json!({"id": id, "name": id, "type": "agent", "agent_id": "worker"})
}

/// A workflow of agent steps with explicit dependencies.
fn with_deps(ids: &[&str], deps: Value) -> Value {
    json!({"id": "wf", "name": "wf", "steps": ids.iter().map(|id| agent(id)).collect::<Vec<_>>(), "dependencies": deps})
}

fn ids(steps: &[StepId]) -> Vec<&str> {
    steps.iter().map(StepId::as_str).collect()
}

fn etl() -> Value {
    json!({
        "id": "etl",
        "name": "Extract, transform, load",
        "steps": [
            {"id": "extract", "name": "Extract", "type": "agent", "agent_id": "extractor",
             "inputs": ["source_url"], "outputs": ["raw_data"]},
            {"id": "transform", "name": "Transform", "type": "agent", "agent_id": "transformer",
             "inputs": ["raw_data"], "outputs": ["clean_data"]},
            {"id": "load", "name": "Load", "type": "agent", "agent_id": "loader",
             "inputs": ["clean_data"], "outputs": ["load_report"]}
        ]
    })
}
