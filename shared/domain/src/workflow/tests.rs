//! Parser, validator and planner tests, and property tests on random graphs.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

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

// ---------------------------------------------------------------------------------------
// Parser

#[test]
fn etl_pipeline_linked_only_by_data_edges_runs_in_three_levels() {
    let workflow = validated(&etl());
    assert_eq!(workflow.workflow().required_inputs(), ["source_url"]);
    assert_eq!(workflow.workflow().version(), "1.0.0");
    let plan = plan(&workflow);
    let levels: Vec<Vec<&str>> = plan.levels.iter().map(|l| ids(l)).collect();
    assert_eq!(levels, [["extract"], ["transform"], ["load"]]);
    assert_eq!(plan.max_width, 1);
    assert_eq!(plan.critical_path.seconds, 3.0);
    assert!(plan.redundant_dependencies.is_empty());
    assert!(plan.could_start_earlier.is_empty());
    let edges = workflow.workflow().edges();
    assert_eq!(edges.len(), 2);
    assert!(edges.iter().all(|e| matches!(e.reason, EdgeReason::Data { .. })));
}

const RICH_JSON: &str = r#"{
  "id": "research",
  "name": "Research report",
  "version": "2.1.0",
  "description": "Fetches, fans out, checks and publishes",
  "created_at": "2024-05-01T12:00:00",
  "timeout": 3600,
  "error_handling": "continue",
  "tags": ["research", "nightly"],
  "metadata": {"owner": "team-a", "cost_center": 42, "nested": {"list": [1, 2.5, null, true]}},
  "steps": [
    {"id": "fetch", "name": "Fetch sources", "type": "service",
     "parameters": {"target": {"kind": "http", "url": "https://example.com/fetch"}},
     "inputs": ["topic"], "outputs": ["sources"], "timeout": 30,
     "retry_policy": {"max_attempts": 3, "backoff_factor": 2}},
    {"id": "summarise", "name": "Summarise each", "type": "loop",
     "parameters": {"over": "sources", "agent_id": "summariser", "max_concurrency": 5},
     "inputs": ["sources"], "outputs": ["summaries"], "estimate": 120},
    {"id": "enrich", "name": "Enrich", "type": "service",
     "parameters": {"target": {"kind": "lambda", "function": "arn:aws:lambda:eu-west-1:123456789012:function:enrich"}},
     "inputs": ["sources"], "outputs": ["entities"]},
    {"id": "gather", "name": "Wait for both", "type": "parallel",
     "parameters": {"steps": ["summarise", "enrich"]}},
    {"id": "check", "name": "Good enough?", "type": "condition",
     "parameters": {"expression": "len(summaries) > 3", "when_true": ["publish"], "when_false": ["alert"]},
     "inputs": ["summaries"], "outputs": ["good_enough"]},
    {"id": "publish", "name": "Publish", "type": "agent", "agent_id": "publisher",
     "inputs": ["summaries", "entities"], "outputs": ["report"], "parameters": {"style": "brief", "max_words": 500}},
    {"id": "alert", "name": "Alert", "type": "agent", "agent_id": "pager", "inputs": ["summaries"]},
    {"id": "finish", "name": "Finish", "type": "sequential", "parameters": {"steps": ["publish", "alert"]}}
  ],
  "dependencies": {"publish": ["check", "gather"], "alert": ["check"]}
}"#;

const RICH_YAML: &str = r#"
id: research
name: Research report
version: "2.1.0"
description: Fetches, fans out, checks and publishes
created_at: "2024-05-01T12:00:00"
timeout: 3600
error_handling: continue
tags: [research, nightly]
metadata:
  owner: team-a
  cost_center: 42
  nested:
    list: [1, 2.5, null, true]
steps:
  - id: fetch
    name: Fetch sources
    type: service
    parameters:
      target: {kind: http, url: "https://example.com/fetch"}
    inputs: [topic]
    outputs: [sources]
    timeout: 30
    retry_policy: {max_attempts: 3, backoff_factor: 2}
  - id: summarise
    name: Summarise each
    type: loop
    parameters: {over: sources, agent_id: summariser, max_concurrency: 5}
    inputs: [sources]
    outputs: [summaries]
    estimate: 120
  - id: enrich
    name: Enrich
    type: service
    parameters:
      target:
        kind: lambda
        function: "arn:aws:lambda:eu-west-1:123456789012:function:enrich"
    inputs: [sources]
    outputs: [entities]
  - id: gather
    name: Wait for both
    type: parallel
    parameters: {steps: [summarise, enrich]}
  - id: check
    name: Good enough?
    type: condition
    parameters:
      expression: len(summaries) > 3
      when_true: [publish]
      when_false: [alert]
    inputs: [summaries]
    outputs: [good_enough]
  - id: publish
    name: Publish
    type: agent
    agent_id: publisher
    inputs: [summaries, entities]
    outputs: [report]
    parameters: {style: brief, max_words: 500}
  - id: alert
    name: Alert
    type: agent
    agent_id: pager
    inputs: [summaries]
  - id: finish
    name: Finish
    type: sequential
    parameters: {steps: [publish, alert]}
dependencies:
  publish: [check, gather]
  alert: [check]
"#;

#[test]
fn the_same_workflow_in_json_and_yaml_gives_the_same_model() {
    let from_json = parse_json(RICH_JSON, &limits()).unwrap();
    let from_yaml = parse_yaml(RICH_YAML, &limits()).unwrap();
    assert_eq!(from_json, from_yaml);
    assert_eq!(parse(RICH_YAML, Format::Yaml, &limits()).unwrap(), from_json);

    let w = &from_json;
    assert_eq!((w.id(), w.name(), w.version()), ("research", "Research report", "2.1.0"));
    assert_eq!(w.created_at(), Some("2024-05-01T12:00:00"));
    assert_eq!(w.timeout().map(Seconds::get), Some(3600.0));
    assert_eq!(w.error_handling(), ErrorHandling::Continue);
    assert_eq!(w.tags(), ["research", "nightly"]);
    assert_eq!(w.metadata()["nested"]["list"], json!([1, 2.5, null, true]));
    assert_eq!(w.required_inputs(), ["topic"]);

    let fetch = w.step(w.step_index("fetch").unwrap());
    assert_eq!(fetch.retry_policy, RetryPolicy { max_attempts: 3, ..RetryPolicy::default() });
    assert!(
        matches!(&fetch.kind, StepKind::Service { target: Some(ResolvedTarget { target: ServiceTarget::Http { url }, source: TargetSource::Step }) } if url.host_str() == Some("example.com"))
    );
    let summarise = w.step(w.step_index("summarise").unwrap());
    assert_eq!(
        summarise.kind,
        StepKind::Loop { over: "sources".into(), agent_id: "summariser".into(), max_concurrency: 5 }
    );
    let publish = w.step(w.step_index("publish").unwrap());
    assert!(matches!(&publish.kind, StepKind::Agent { parameters, .. } if parameters["max_words"] == 500));
    let gather = w.step_index("gather").unwrap();
    assert_eq!(w.outputs_of(gather), ["summaries", "entities"]);

    // The whole thing is acyclic and plans: fetch, then the fan-out, then the barrier and
    // the condition, then the branches, then the sequential group.
    let validated = ValidatedWorkflow::new(from_json).unwrap();
    let plan = plan(&validated);
    let levels: Vec<Vec<&str>> = plan.levels.iter().map(|l| ids(l)).collect();
    assert_eq!(
        levels,
        vec![
            vec!["fetch"],
            vec!["summarise", "enrich"],
            vec!["gather", "check"],
            vec!["publish"],
            vec!["alert"],
            vec!["finish"]
        ]
    );
    // alert waits for publish only because `finish` is sequential.
    assert_eq!(validated.level(validated.workflow().step_index("alert").unwrap()), 4);
}

/// The first block of `lang` in docs/workflows.md.
fn doc_block(lang: &str) -> &'static str {
    let doc = include_str!("../../../../docs/workflows.md");
    let start = doc.find(&format!("```{lang}\n")).expect("block") + lang.len() + 4;
    &doc[start..start + doc[start..].find("```").expect("end of block")]
}

#[test]
fn the_documented_example_parses_the_same_in_json_and_yaml_and_plans_as_documented() {
    let from_json = parse_json(doc_block("json"), &limits()).unwrap();
    let from_yaml = parse_yaml(doc_block("yaml"), &limits()).unwrap();
    assert_eq!(from_json, from_yaml);
    let report = serde_json::to_value(validate(doc_block("json"), Format::Json, &limits())).unwrap();
    assert_eq!(report["plan"]["critical_path"]["seconds"], 421.0);
    assert_eq!(report["plan"]["levels"], json!([["extract"], ["transform"], ["load"]]));
}

#[test]
fn yaml_syntax_error_has_line_and_column() {
    let text = "id: wf\nname: wf\nsteps:\n  - id: a\n    name: [unclosed\n";
    let errors = parse_yaml(text, &limits()).unwrap_err();
    let [ParseError::Syntax { line, column, message }] = errors.errors() else {
        panic!("expected one syntax error, got {errors}")
    };
    assert_eq!(*line, 6, "{message}");
    assert!(*column >= 1);
    assert!(errors.to_string().starts_with("line 6, column"));
}

#[test]
fn json_syntax_error_has_line_and_column() {
    let text = "{\n  \"id\": \"wf\",\n  \"name\": \"wf\" \"steps\": []\n}";
    let errors = parse_json(text, &limits()).unwrap_err();
    let [ParseError::Syntax { line, column, message }] = errors.errors() else {
        panic!("expected one syntax error, got {errors}")
    };
    assert_eq!((*line, *column), (3, 16));
    assert!(!message.contains("line 3"), "location is not repeated in the message: {message}");
}

#[test]
fn unknown_fields_are_rejected_with_their_path_and_a_suggestion() {
    let mut value = with_deps(&["a", "b"], json!({}));
    value["dependancies"] = json!({"b": ["a"]});
    value["steps"][1]["retry_policy"] = json!({"max_attempt": 3});
    value["steps"][0]["colour"] = json!("blue");
    let errors = field_errors(&value);
    assert!(has_error(&errors, "$.dependancies", "did you mean \"dependencies\""), "{errors:?}");
    assert!(has_error(&errors, "$.steps[1].retry_policy.max_attempt", "did you mean \"max_attempts\""));
    assert!(has_error(&errors, "$.steps[0].colour", "unknown field"));
    assert_eq!(errors.len(), 3);
}

#[test]
fn duplicate_ids_and_an_unknown_dependency_are_all_reported() {
    let value = json!({
        "id": "wf", "name": "wf",
        "steps": [agent("a"), agent("b"), agent("a"), agent("a")],
        "dependencies": {"b": ["a", "ghost"], "phantom": ["a"]}
    });
    let errors = field_errors(&value);
    assert!(has_error(&errors, "$.steps[2].id", "duplicate step id \"a\": also the id of $.steps[0]"));
    assert!(has_error(&errors, "$.steps[3].id", "duplicate step id \"a\""));
    assert!(has_error(&errors, "$.dependencies.b[1]", "unknown step \"ghost\""));
    assert!(has_error(&errors, "$.dependencies.phantom", "unknown step \"phantom\""));
    assert_eq!(errors.len(), 4, "{errors:?}");
}

#[test]
fn an_agent_step_without_agent_id_is_reported() {
    let value = json!({"id": "wf", "name": "wf", "steps": [{"id": "a", "name": "A", "type": "agent"}]});
    assert_eq!(field_errors(&value), [("$.steps[0].agent_id".to_owned(), "is required".to_owned())]);
}

#[test]
fn an_unknown_step_type_is_reported() {
    let value = json!({"id": "wf", "name": "wf", "steps": [{"id": "a", "name": "A", "type": "robot"}]});
    let errors = field_errors(&value);
    assert_eq!(errors.len(), 1);
    assert!(has_error(
        &errors,
        "$.steps[0].type",
        "unknown step type \"robot\"; expected one of \"agent\", \"service\""
    ));
}

#[test]
fn a_near_miss_of_a_step_type_gets_a_suggestion() {
    let value = json!({"id": "wf", "name": "wf", "steps": [{"id": "a", "name": "A", "type": "agnet", "agent_id": "x"}]});
    let errors = field_errors(&value);
    assert!(
        has_error(&errors, "$.steps[0].type", "unknown step type \"agnet\" (did you mean \"agent\"?)"),
        "{errors:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Graph errors beside field errors (issue 12, point 1)

fn cycle_steps(errors: &ParseErrors) -> Vec<Vec<&str>> {
    errors.cycles().iter().map(|c| ids(&c.steps)).collect()
}

#[test]
fn a_missing_field_and_a_cycle_are_both_reported() {
    let mut value = with_deps(&["a", "b", "c"], json!({"a": ["b"], "b": ["a"]}));
    value["steps"][2].as_object_mut().unwrap().remove("agent_id");
    let errors = parse_value(&value).unwrap_err();
    let fields: Vec<_> = errors.field_errors().map(|f| (f.path.as_str(), f.message.as_str())).collect();
    assert_eq!(fields, [("$.steps[2].agent_id", "is required")]);
    assert_eq!(cycle_steps(&errors), [["a", "b", "a"]]);

    // A step on the cycle with errors of its own still has its id and its orderings.
    value["steps"][0].as_object_mut().unwrap().remove("name");
    value["steps"][1]["type"] = json!("agnet");
    let errors = parse_value(&value).unwrap_err();
    assert_eq!(errors.field_errors().count(), 3, "{errors}");
    assert_eq!(cycle_steps(&errors), [["a", "b", "a"]]);

    // The report lists both kinds, each once.
    let report = serde_json::to_value(validate(&value.to_string(), Format::Json, &limits())).unwrap();
    let kinds: Vec<&str> =
        report["errors"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["field", "field", "field", "cycle"], "{report:#}");
    assert_eq!(report["errors"][3]["message"], "cycle: a → b → a");
    assert_eq!(report["valid"], false);
    // As one flat list (problem+json), the cycle comes last, at $.dependencies.
    let flat = errors.into_errors();
    assert_eq!(flat.len(), 4);
    assert_eq!(flat[3].to_string(), "$.dependencies: cycle: a → b → a");
}

#[test]
fn a_missing_field_and_an_unknown_dependency_are_both_reported() {
    let mut value = with_deps(&["a", "b"], json!({"b": ["a", "ghost"], "c": ["a"]}));
    value["steps"][0].as_object_mut().unwrap().remove("name");
    let errors = field_errors(&value);
    assert!(has_error(&errors, "$.steps[0].name", "is required"), "{errors:?}");
    assert!(has_error(&errors, "$.dependencies.b[1]", "unknown step \"ghost\""), "{errors:?}");
    assert!(has_error(&errors, "$.dependencies.c", "unknown step \"c\""), "{errors:?}");
    assert_eq!(errors.len(), 3, "{errors:?}");
}

#[test]
fn cycles_through_data_and_readable_group_entries_survive_field_errors() {
    // x reads y's output and y depends on x; a sequential group lists [p, ghost, q] and q
    // must finish before p: both cycles are found although three things are wrong.
    let value = json!({"id": "wf", "steps": [
        {"id": "x", "name": "x", "type": "agent", "agent_id": "w", "inputs": ["from_y"], "timeout": -1},
        {"id": "y", "name": "y", "type": "agent", "agent_id": "w", "outputs": ["from_y"]},
        {"id": "p", "name": "p", "type": "agent", "agent_id": "w"},
        {"id": "q", "name": "q", "type": "agent", "agent_id": "w"},
        {"id": "g", "name": "g", "type": "sequential", "parameters": {"steps": ["p", "ghost", "q"]}}
    ], "dependencies": {"y": ["x"], "p": ["q"]}});
    let errors = parse_value(&value).unwrap_err();
    let fields: Vec<&str> = errors.field_errors().map(|f| f.path.as_str()).collect();
    assert_eq!(fields, ["$.name", "$.steps[0].timeout", "$.steps[4].parameters.steps[1]"]);
    assert_eq!(cycle_steps(&errors), [vec!["x", "y", "x"], vec!["p", "q", "p"]]);
    assert_eq!(errors.cycles()[0].edges[1].data, ["from_y"]);
    assert_eq!(ids(&errors.cycles()[1].edges[0].groups), ["g"]);
}

#[test]
fn a_step_whose_id_cannot_be_read_is_named_by_its_path_in_a_cycle() {
    // The second step has no id: its data edges still count.
    let value = json!({"id": "wf", "name": "wf", "steps": [
        {"id": "a", "name": "a", "type": "agent", "agent_id": "w", "inputs": ["n"], "outputs": ["m"]},
        {"name": "anonymous", "type": "agent", "agent_id": "w", "inputs": ["m"], "outputs": ["n"]}
    ]});
    let errors = parse_value(&value).unwrap_err();
    assert_eq!(cycle_steps(&errors), [["a", "$.steps[1]", "a"]]);
}

// ---------------------------------------------------------------------------------------
// Service steps without a target, and `defaults` (issue 12, point 2)

fn service(id: &str) -> Value {
    json!({"id": id, "name": id, "type": "service"})
}

#[test]
fn a_service_step_without_a_target_is_valid_but_not_runnable() {
    let value =
        json!({"id": "wf", "name": "wf", "steps": [service("fetch"), agent("think"), service("store")]});
    let workflow = parsed(&value);
    let untargeted: Vec<usize> = workflow.untargeted_steps().map(StepIndex::index).collect();
    assert_eq!(untargeted, [0, 2]);
    let report = serde_json::to_value(validate(&value.to_string(), Format::Json, &limits())).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["runnable"], false);
    assert!(report["plan"].is_object());
    assert_eq!(report["notices"].as_array().unwrap().len(), 1, "one finding, not one per step");
    assert_eq!(
        report["notices"][0]["steps"],
        json!([{"step": "fetch", "path": "$.steps[0].parameters.target"},
               {"step": "store", "path": "$.steps[2].parameters.target"}])
    );
    let report = serde_json::to_value(validate(&etl().to_string(), Format::Json, &limits())).unwrap();
    assert_eq!((report["runnable"].clone(), report["notices"].clone()), (json!(true), json!([])));
}

#[test]
fn defaults_give_service_steps_their_targets() {
    let mut value = json!({"id": "wf", "name": "wf", "steps": [service("fetch"), service("own"), service("summarize"), agent("a")]});
    value["steps"][1]["parameters"] = json!({"target": {"kind": "lambda", "function": "mine"}});
    value["defaults"] = json!({
        "target": {"kind": "http", "url": "https://runner.example/"},
        "targets": {"summarize": {"kind": "agent", "agent_id": "summarizer"}},
        "common": {"timeout": 30, "anything": ["goes", "here"]}
    });
    let workflow = parsed(&value);
    let target = |i: usize| match &workflow.steps()[i].kind {
        StepKind::Service { target: Some(ResolvedTarget { target, source }) } => (target.clone(), *source),
        other => panic!("{other:?}"),
    };
    assert!(matches!(target(0), (ServiceTarget::Http { .. }, TargetSource::Default)));
    assert!(matches!(target(1), (ServiceTarget::Lambda { .. }, TargetSource::Step)));
    assert_eq!(
        target(2),
        (ServiceTarget::Agent { agent_id: "summarizer".into() }, TargetSource::DefaultForStep)
    );
    assert_eq!(workflow.untargeted_steps().count(), 0);
    let references: Vec<(&str, String)> =
        workflow.agent_references().into_iter().map(|r| (r.agent_id, r.path)).collect();
    assert_eq!(
        references,
        [
            ("summarizer", "$.defaults.targets.summarize.agent_id".to_owned()),
            ("worker", "$.steps[3].agent_id".to_owned())
        ]
    );
}

#[test]
fn defaults_are_checked_and_its_other_keys_only_hold_anchors() {
    let mut value =
        json!({"id": "wf", "name": "wf", "steps": [service("fetch"), service("own"), agent("a")]});
    value["steps"][1]["parameters"] = json!({"target": {"kind": "lambda", "function": "mine"}});
    value["defaults"] = json!({
        "targte": {"kind": "http", "url": "https://runner.example/"},
        "targets": {
            "fetsh": {"kind": "lambda", "function": "f"},
            "own": {"kind": "lambda", "function": "f"},
            "a": {"kind": "htp", "url": "https://x.example/"},
            "fetch": {"kind": "agent", "agent_id": "x", "url": "https://x.example/"}
        },
        "timeout": 30,
        "retry": {"max_attempts": 3}
    });
    let errors = field_errors(&value);
    let expected = [
        ("$.defaults.targte", "unknown field \"targte\" (did you mean \"target\"?)"),
        ("$.defaults.targets.a.kind", "unknown target kind \"htp\" (did you mean \"http\"?)"),
        ("$.defaults.targets.fetch.url", "only http targets take a url"),
        ("$.defaults.targets.fetsh", "unknown step \"fetsh\" (did you mean \"fetch\"?)"),
        ("$.defaults.targets.own", "has its own parameters.target"),
    ];
    for (path, message) in expected {
        assert!(has_error(&errors, path, message), "missing {path}: {message} in {errors:#?}");
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");

    value["defaults"] = json!({"targets": {"a": {"kind": "lambda", "function": "f"}}});
    let errors = field_errors(&value);
    assert!(
        has_error(&errors, "$.defaults.targets.a", "step \"a\" is an agent step; only service steps"),
        "{errors:?}"
    );
    value["defaults"] = json!(["not", "an", "object"]);
    assert!(has_error(&field_errors(&value), "$.defaults", "must be an object"));
}

#[test]
fn yaml_anchors_under_defaults_are_used_by_alias_and_merge_key() {
    let text = r#"
id: wf
name: wf
defaults:
  retry: &retry {max_attempts: 4}
  common: &common {timeout: 12, estimate: 3}
  target: {kind: lambda, function: runner}
steps:
  - <<: *common
    id: a
    name: A
    type: service
    retry_policy: *retry
"#;
    let workflow = parse_yaml(text, &limits()).unwrap_or_else(|e| panic!("{e}"));
    let step = &workflow.steps()[0];
    assert_eq!((step.retry_policy.max_attempts, step.timeout.map(Seconds::get)), (4, Some(12.0)));
    assert_eq!(workflow.untargeted_steps().count(), 0);
}

#[test]
fn the_stored_json_of_a_yaml_workflow_has_its_merge_keys_applied() {
    for text in [
        include_str!("../../tests/fixtures/seed/anchored_defaults.yaml"),
        include_str!("../../tests/fixtures/seed/anchors_under_defaults.yaml"),
    ] {
        let json = to_json(text, Format::Yaml).unwrap();
        assert!(!json.to_string().contains("<<"), "{json}");
        assert_eq!(parse_json(&json.to_string(), &limits()).unwrap(), parse_yaml(text, &limits()).unwrap());
    }
    let json = to_json(&etl().to_string(), Format::Json).unwrap();
    assert_eq!(json, etl());
}

#[test]
fn an_agent_target_names_a_registered_agent() {
    let mut value = json!({"id": "wf", "name": "wf", "steps": [service("s")]});
    value["steps"][0]["parameters"] = json!({"target": {"kind": "agent", "agent_id": "summarizer"}});
    let workflow = parsed(&value);
    assert_eq!(workflow.agent_references()[0].path, "$.steps[0].parameters.target.agent_id");
    value["steps"][0]["parameters"] = json!({"target": {"kind": "agent", "function": "f"}});
    let errors = field_errors(&value);
    assert!(has_error(
        &errors,
        "$.steps[0].parameters.target.function",
        "only lambda targets take a function"
    ));
    assert!(has_error(&errors, "$.steps[0].parameters.target.agent_id", "is required"));
}

#[test]
fn an_empty_step_list_is_reported() {
    let value = json!({"id": "wf", "name": "wf", "steps": []});
    assert_eq!(field_errors(&value), [("$.steps".to_owned(), "must list at least one step".to_owned())]);
    let value = json!({"id": "wf", "name": "wf"});
    assert_eq!(field_errors(&value), [("$.steps".to_owned(), "is required".to_owned())]);
}

#[test]
fn every_error_is_reported_at_once() {
    let value = json!({
        "name": 7,
        "version": 2,
        "timeout": -1,
        "error_handling": "retry",
        "tags": ["ok", 3],
        "steps": [
            {"id": "", "name": "blank id", "type": "agent", "agent_id": "x"},
            {"id": "s", "type": "agent", "agent_id": "   ", "inputs": "raw", "estimate": 0},
            "not a step",
            {"id": "t", "name": "T", "type": "service", "agent_id": "x", "parameters": {"target": {"kind": "ftp"}}},
            {"id": "u", "name": "U", "type": "agent", "agent_id": "x",
             "retry_policy": {"max_attempts": 0, "backoff_factor": 0.5, "initial_delay_seconds": 600}}
        ],
        "dependencies": {"s": "t"}
    });
    let errors = field_errors(&value);
    let expected = [
        ("$.id", "is required"),
        ("$.name", "must be a string, not a number"),
        ("$.version", "must be a string"),
        ("$.timeout", "must be a positive number of seconds"),
        ("$.error_handling", "must be \"stop\" or \"continue\""),
        ("$.tags[1]", "must be a string"),
        ("$.steps[0].id", "must not be empty"),
        ("$.steps[2]", "must be an object (a step), not a string"),
        ("$.steps[1].name", "is required"),
        ("$.steps[1].inputs", "must be a list of data names, not a string"),
        ("$.steps[1].estimate", "must be a positive number"),
        ("$.steps[1].agent_id", "must not be empty"),
        ("$.steps[3].agent_id", "only agent steps take agent_id"),
        ("$.steps[3].parameters.target.kind", "unknown target kind \"ftp\""),
        ("$.steps[4].retry_policy.max_attempts", "must be a whole number from 1 to 100"),
        ("$.steps[4].retry_policy.backoff_factor", "must be at least 1"),
        ("$.steps[4].retry_policy.initial_delay_seconds", "exceeds max_delay_seconds"),
        ("$.dependencies.s", "must be a list of step ids, not a string"),
    ];
    for (path, message) in expected {
        assert!(has_error(&errors, path, message), "missing {path}: {message} in {errors:#?}");
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn limits_are_enforced_before_the_work_they_bound() {
    let text = etl().to_string();
    let tiny = Limits { max_bytes: 100, ..Limits::default() };
    let errors = parse_json(&text, &tiny).unwrap_err();
    assert!(matches!(
        errors.errors(),
        [ParseError::Limit(LimitExceeded { limit: LimitKind::MaxBytes, max: 100, found })] if *found == text.len()
    ));
    // Over the byte limit, even broken text fails on size: nothing is parsed.
    assert!(matches!(parse_yaml(&"x".repeat(101), &tiny).unwrap_err().errors(), [ParseError::Limit(_)]));

    let two_steps = Limits { max_steps: 2, ..Limits::default() };
    let errors = parse_json(&text, &two_steps).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "$.steps: 3 steps, more than the limit of 2 (max_steps; set by TDEV_WORKFLOW_MAX_STEPS, \
         the template parameter WorkflowMaxSteps)"
    );

    let one_edge = Limits { max_edges: 1, ..Limits::default() };
    let errors = parse_json(&text, &one_edge).unwrap_err();
    assert!(matches!(
        errors.errors(),
        [ParseError::Limit(LimitExceeded { limit: LimitKind::MaxEdges, max: 1, found: 2 })]
    ));
}

#[test]
fn two_steps_producing_one_output_is_reported_with_both_paths() {
    let mut value = etl();
    value["steps"][2]["outputs"] = json!(["load_report", "raw_data"]);
    let errors = field_errors(&value);
    assert_eq!(errors.len(), 1);
    assert!(
        has_error(&errors, "$.steps[2].outputs[1]", "also produced by $.steps[0].outputs[0]"),
        "{errors:?}"
    );
}

#[test]
fn a_condition_must_be_a_cel_expression() {
    let value = json!({
        "id": "wf", "name": "wf",
        "steps": [
            {"id": "a", "name": "a", "type": "agent", "agent_id": "x", "outputs": ["score"]},
            {"id": "cond", "name": "n", "type": "condition", "inputs": ["score"],
             "parameters": {"expression": "inputs.score >", "when_true": []}},
            {"id": "ok", "name": "n", "type": "condition", "inputs": ["score"],
             "parameters": {"expression": "inputs.score > 0.5 && size(inputs) == 1"}}
        ]
    });
    let errors = field_errors(&value);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(has_error(&errors, "$.steps[1].parameters.expression", "is not a CEL expression"), "{errors:#?}");
}

#[test]
fn type_parameters_are_validated_with_their_paths() {
    let value = json!({
        "id": "wf", "name": "wf",
        "steps": [
            {"id": "http", "name": "n", "type": "service",
             "parameters": {"target": {"kind": "http", "url": "ftp://example.com/x", "function": "f"}}},
            {"id": "bad_url", "name": "n", "type": "service", "parameters": {"target": {"kind": "http", "url": "not a url"}}},
            {"id": "lambda", "name": "n", "type": "service", "parameters": {"target": {"kind": "lambda", "function": ""}}},
            {"id": "nothing", "name": "n", "type": "service", "parameters": {"target": {"kind": "agent"}}},
            {"id": "cond", "name": "n", "type": "condition",
             "parameters": {"expression": " ", "when_true": ["http", "nope"], "when_false": ["http"], "extra": 1}},
            {"id": "loop", "name": "n", "type": "loop", "inputs": ["items"], "outputs": ["a", "b"],
             "parameters": {"over": "things", "agent_id": "w", "max_concurrency": 0}},
            {"id": "group", "name": "n", "type": "parallel", "inputs": ["items"], "timeout": 5,
             "parameters": {"steps": ["group", "http", "http"]}},
            {"id": "empty", "name": "n", "type": "sequential", "parameters": {"steps": []}},
            {"id": "branch", "name": "n", "type": "condition",
             "parameters": {"expression": "x", "when_true": ["http"]}}
        ]
    });
    let errors = field_errors(&value);
    let expected = [
        ("$.steps[0].parameters.target.url", "must be an http:// or https:// URL"),
        ("$.steps[0].parameters.target.function", "only lambda targets take a function"),
        ("$.steps[1].parameters.target.url", "is not a URL"),
        ("$.steps[2].parameters.target.function", "must not be empty"),
        ("$.steps[3].parameters.target.agent_id", "is required"),
        ("$.steps[4].parameters.extra", "unknown field"),
        ("$.steps[4].parameters.expression", "must not be empty"),
        ("$.steps[4].parameters.when_true[1]", "unknown step \"nope\""),
        ("$.steps[4].parameters.when_false[0]", "is already in when_true"),
        ("$.steps[5].outputs", "exactly one output"),
        ("$.steps[5].parameters.over", "must name one of the step's inputs"),
        ("$.steps[5].parameters.max_concurrency", "must be a whole number from 1 to 100"),
        ("$.steps[6].inputs", "takes no inputs"),
        ("$.steps[6].timeout", "takes no timeout"),
        ("$.steps[6].parameters.steps[0]", "cannot list itself"),
        ("$.steps[6].parameters.steps[2]", "is listed twice"),
        ("$.steps[7].parameters.steps", "must list at least one step"),
    ];
    for (path, message) in expected {
        assert!(has_error(&errors, path, message), "missing {path}: {message} in {errors:#?}");
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");

    // Once the rest is fixed, a branch step that does not depend on its condition is
    // reported (checked after every edge is known).
    let value = json!({
        "id": "wf", "name": "wf",
        "steps": [
            {"id": "cond", "name": "n", "type": "condition", "parameters": {"expression": "x", "when_true": ["a", "b"]}},
            agent("a"), agent("b")
        ],
        "dependencies": {"a": ["cond"]}
    });
    assert_eq!(
        field_errors(&value),
        [(
            "$.steps[0].parameters.when_true[1]".to_owned(),
            "step \"b\" must depend on condition \"cond\" directly (in dependencies, or by reading its output)"
                .to_owned()
        )]
    );
}

#[test]
fn group_steps_add_their_edges() {
    let value = json!({
        "id": "wf", "name": "wf",
        "steps": [agent("a"), agent("b"), agent("c"),
            {"id": "seq", "name": "n", "type": "sequential", "parameters": {"steps": ["c", "a", "b"]}},
            {"id": "all", "name": "n", "type": "parallel", "parameters": {"steps": ["a", "c"]}}]
    });
    let workflow = validated(&value);
    let plan = plan(&workflow);
    let levels: Vec<Vec<&str>> = plan.levels.iter().map(|l| ids(l)).collect();
    assert_eq!(levels, vec![vec!["c"], vec!["a"], vec!["b", "all"], vec!["seq"]]);
    let all = workflow.workflow().step_index("all").unwrap();
    let kinds = workflow.dependency_kinds(all);
    assert!(kinds.iter().all(|k| k.group() && !k.data() && !k.dependency()));
}

#[test]
fn defaults_apply_and_nulls_read_as_absent() {
    // The old system wrote `null` for unset optional fields; such files must load.
    let value = json!({
        "id": "wf", "name": "wf", "description": null, "created_at": null, "timeout": null,
        "steps": [{"id": "a", "name": "A", "type": "agent", "agent_id": "x", "timeout": null,
                   "retry_policy": null, "parameters": {}, "inputs": [], "outputs": []}]
    });
    let workflow = parsed(&value);
    assert_eq!(workflow.version(), "1.0.0");
    assert_eq!(workflow.error_handling(), ErrorHandling::Stop);
    assert_eq!(workflow.description(), None);
    let step = &workflow.steps()[0];
    assert_eq!(step.retry_policy, RetryPolicy::default());
    assert_eq!(step.timeout, None);
}

#[test]
fn retry_policy_delays_grow_and_cap() {
    let policy = RetryPolicy {
        max_attempts: 5,
        backoff_factor: 3.0,
        initial_delay_seconds: 2.0,
        max_delay_seconds: 10.0,
    };
    let delays: Vec<Option<f64>> = (0..=6).map(|n| policy.delay_before(n)).collect();
    assert_eq!(delays, [None, Some(0.0), Some(2.0), Some(6.0), Some(10.0), Some(10.0), None]);
    assert_eq!(RetryPolicy::default().delay_before(2), None, "the default is one attempt: no retry");
}

#[test]
fn yaml_merge_keys_and_version_numbers() {
    let text = "
id: wf
name: wf
steps:
  - &base {id: a, name: A, type: agent, agent_id: shared, timeout: 60}
  - <<: *base
    id: b
    name: B
";
    let workflow = parse_yaml(text, &limits()).unwrap();
    let b = &workflow.steps()[1];
    assert_eq!((b.id.as_str(), b.timeout.map(Seconds::get)), ("b", Some(60.0)));

    let errors = parse_yaml(
        "id: wf\nname: wf\nversion: 1.0\nsteps: [{id: a, name: A, type: agent, agent_id: x}]",
        &limits(),
    )
    .unwrap_err();
    assert_eq!(errors.to_string(), "$.version: must be a string; write \"1.0\" in quotes");
}

#[test]
fn repeated_keys_are_reported_not_silently_merged() {
    let text = r#"{"id": "wf", "name": "wf", "steps": [{"id": "a", "name": "A", "type": "agent", "agent_id": "x",
        "agent_id": "y"}], "metadata": {"k": 1, "k": 2}, "dependencies": {"a": [], "a": []}}"#;
    let errors = parse_json(text, &limits()).unwrap_err();
    let paths: Vec<&str> = errors.field_errors().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["$.metadata.k", "$.steps[0].agent_id", "$.dependencies.a"]);

    // YAML too.
    let errors = parse_yaml(
        "id: wf\nname: wf\nid: again\nsteps: [{id: a, name: A, type: agent, agent_id: x}]",
        &limits(),
    )
    .unwrap_err();
    assert_eq!(errors.to_string(), "$.id: duplicate key");
}

#[test]
fn odd_keys_get_bracketed_paths() {
    let value = with_deps(&["a"], json!({"my step": ["a"]}));
    assert_eq!(
        field_errors(&value),
        [("$.dependencies[\"my step\"]".to_owned(), "unknown step \"my step\"".to_owned())]
    );
}

#[test]
fn yaml_values_a_workflow_cannot_hold_are_reported_with_paths() {
    let text = "id: wf\nname: wf\ntimeout: .inf\nmetadata: {1: one, x: !custom tagged}\n<<: 3\n\
                steps: [{id: a, name: A, type: agent, agent_id: x}]";
    let errors = parse_yaml(text, &limits()).unwrap_err();
    // (The unquoted key `1` is read as the text "1": not an error.)
    let found: Vec<String> = errors.field_errors().map(|e| format!("{}: {}", e.path, e.message)).collect();
    assert_eq!(
        found,
        [
            "$[\"<<\"]: a merge key (<<) takes a mapping or a list of mappings",
            "$.timeout: must be a finite number",
            "$.metadata.x: YAML tags (`!name`) are not supported"
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Graph

#[test]
fn a_self_dependency_is_a_cycle_of_length_one() {
    let found = cycles(&with_deps(&["a", "b"], json!({"a": ["a"], "b": ["a"]})));
    assert_eq!(found.len(), 1);
    assert_eq!(ids(&found[0].steps), ["a", "a"]);
    assert_eq!(found[0].to_string(), "cycle: a → a");
    assert!(found[0].edges[0].dependency);
}

#[test]
fn two_steps_depending_on_each_other() {
    let found = cycles(&with_deps(&["x", "a", "b"], json!({"a": ["b"], "b": ["a"], "x": ["a"]})));
    assert_eq!(found.len(), 1);
    assert_eq!(ids(&found[0].steps), ["a", "b", "a"]);
    assert_eq!(ids(&found[0].component), ["a", "b"]);
}

#[test]
fn a_longer_cycle_is_reported_as_a_path() {
    let found =
        cycles(&with_deps(&["a", "b", "c", "d"], json!({"b": ["a"], "c": ["b"], "d": ["c"], "a": ["d"]})));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].to_string(), "cycle: a → b → c → d → a");
}

#[test]
fn a_cycle_through_data_edges_only_names_the_data() {
    let value = json!({"id": "wf", "name": "wf", "steps": [
        {"id": "a", "name": "A", "type": "agent", "agent_id": "x", "inputs": ["from_c"], "outputs": ["from_a"]},
        {"id": "b", "name": "B", "type": "agent", "agent_id": "x", "inputs": ["from_a"], "outputs": ["from_b"]},
        {"id": "c", "name": "C", "type": "agent", "agent_id": "x", "inputs": ["from_b"], "outputs": ["from_c"]}
    ]});
    let found = cycles(&value);
    assert_eq!(found.len(), 1);
    assert_eq!(ids(&found[0].steps), ["a", "b", "c", "a"]);
    let data: Vec<&[String]> = found[0].edges.iter().map(|e| e.data.as_slice()).collect();
    assert_eq!(data, [["from_a"], ["from_b"], ["from_c"]]);
    assert!(found[0].edges.iter().all(|e| !e.dependency && e.groups.is_empty()));
}

#[test]
fn two_separate_cycles_are_both_reported_and_each_component_once() {
    // {a, b, c} is one component holding two cycles (a→b→a and a→c→a, b→c→b ...);
    // {x, y} is another; z merely waits on a cycle and is not reported.
    let value = with_deps(
        &["ok", "a", "b", "c", "x", "y", "z"],
        json!({"b": ["a", "c"], "c": ["b", "a"], "a": ["b", "c"], "y": ["x"], "x": ["y"], "z": ["x", "ok"]}),
    );
    let found = cycles(&value);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(ids(&found[0].steps), ["a", "b", "a"]);
    assert_eq!(ids(&found[0].component), ["a", "b", "c"]);
    assert_eq!(ids(&found[1].steps), ["x", "y", "x"]);
    let message = CycleErrors(found).to_string();
    assert!(message.contains("one of the cycles among 3"), "{message}");
}

#[test]
fn a_cycle_made_by_a_group_names_the_group() {
    let value = json!({"id": "wf", "name": "wf",
        "steps": [agent("a"), agent("b"), {"id": "g", "name": "g", "type": "sequential", "parameters": {"steps": ["a", "b"]}}],
        "dependencies": {"a": ["b"]}});
    let found = cycles(&value);
    assert_eq!(ids(&found[0].steps), ["a", "b", "a"]);
    assert_eq!(ids(&found[0].edges[0].groups), ["g"]);
    assert!(found[0].edges[1].dependency);
}

#[test]
fn a_diamond_has_three_levels_with_the_middle_in_parallel() {
    let workflow = validated(&with_deps(
        &["top", "left", "right", "bottom"],
        json!({
            "left": ["top"], "right": ["top"], "bottom": ["left", "right"]
        }),
    ));
    let plan = plan(&workflow);
    let levels: Vec<Vec<&str>> = plan.levels.iter().map(|l| ids(l)).collect();
    assert_eq!(levels, vec![vec!["top"], vec!["left", "right"], vec!["bottom"]]);
    assert_eq!(plan.max_width, 2);
    assert_eq!(plan.critical_path.seconds, 3.0);
    assert_eq!(plan.parallelism.work_over_critical_path, 4.0 / 3.0);
    assert_eq!(plan.parallelism.steps_per_level, 4.0 / 3.0);
    let order: Vec<&str> =
        workflow.topological_order().iter().map(|&s| workflow.workflow().step(s).id.as_str()).collect();
    assert_eq!(order, ["top", "left", "right", "bottom"]);
    let bottom = workflow.workflow().step_index("bottom").unwrap();
    assert_eq!(workflow.dependencies(bottom).len(), 2);
    assert_eq!(workflow.dependents(workflow.workflow().step_index("top").unwrap()).len(), 2);
}

#[test]
fn disconnected_parts_are_fine() {
    let workflow = validated(&with_deps(&["a", "b", "c", "d"], json!({"b": ["a"], "d": ["c"]})));
    assert_eq!(workflow.level_count(), 2);
    assert_eq!(plan(&workflow).max_width, 2);
}

#[test]
fn a_very_long_cycle_is_found_without_deep_recursion() {
    let n = 20_000;
    let ids: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    let steps: Vec<Value> = ids.iter().map(|id| agent(id)).collect();
    let mut deps = serde_json::Map::new();
    for i in 0..n {
        deps.insert(ids[(i + 1) % n].clone(), json!([ids[i]]));
    }
    let found = cycles(&json!({"id": "wf", "name": "wf", "steps": steps, "dependencies": deps}));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].steps.len(), n + 1);
}

// ---------------------------------------------------------------------------------------
// Planner

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
    let plan = plan(&workflow);
    assert_eq!(plan.steps, 10_000);
    assert_eq!(plan.levels.len(), 500);
    assert_eq!(plan.max_width, 20);
    assert_eq!(plan.edges, 499 * 20 * 20);
    assert_eq!(plan.critical_path.seconds, 500.0);
    assert!(plan.redundant_dependencies.is_empty() && plan.redundant_dependencies_complete);
}

// ---------------------------------------------------------------------------------------
// Properties on random graphs

/// A workflow of `n` agent steps `s0..` with the given explicit edges (from, to).
fn graph_workflow(n: usize, edges: &[(usize, usize)]) -> Value {
    let mut deps: Vec<Vec<String>> = vec![Vec::new(); n];
    for &(from, to) in edges {
        let name = format!("s{from}");
        if !deps[to].contains(&name) {
            deps[to].push(name);
        }
    }
    let map: serde_json::Map<String, Value> = deps
        .into_iter()
        .enumerate()
        .filter(|(_, d)| !d.is_empty())
        .map(|(i, d)| (format!("s{i}"), json!(d)))
        .collect();
    let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    with_deps(&refs, Value::Object(map))
}

fn reachable_without(
    n: usize,
    edges: &[(usize, usize)],
    skip: (usize, usize),
    from: usize,
    to: usize,
) -> bool {
    let mut seen = vec![false; n];
    let mut stack = vec![from];
    while let Some(at) = stack.pop() {
        for &(a, b) in edges {
            if a == at && (a, b) != skip && !seen[b] {
                if b == to {
                    return true;
                }
                seen[b] = true;
                stack.push(b);
            }
        }
    }
    false
}

proptest! {
    /// On random DAGs every step's level is above each of its dependencies', the
    /// topological order respects every edge, and redundant dependencies are exactly the
    /// edges implied by another path.
    #[test]
    fn plans_respect_every_edge_of_random_dags(
        n in 1usize..40,
        raw in proptest::collection::vec((0usize..40, 0usize..40), 0..120),
    ) {
        // Orient every edge forwards: a DAG.
        let edges: Vec<(usize, usize)> = raw
            .into_iter()
            .map(|(a, b)| (a % n, b % n))
            .filter(|(a, b)| a != b)
            .map(|(a, b)| (a.min(b), a.max(b)))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let workflow = validated(&graph_workflow(n, &edges));
        let wf = workflow.workflow();
        let at = |i: usize| wf.step_index(&format!("s{i}")).unwrap();
        let mut position = vec![0; n];
        for (p, step) in workflow.topological_order().iter().enumerate() {
            position[step.index()] = p;
        }
        for &(from, to) in &edges {
            prop_assert!(workflow.level(at(to)) > workflow.level(at(from)));
            prop_assert!(position[at(to).index()] > position[at(from).index()]);
        }
        let plan = plan(&workflow);
        let mut seen: Vec<(usize, usize)> = Vec::new();
        for (l, level) in plan.levels.iter().enumerate() {
            for id in level {
                prop_assert_eq!(workflow.level(wf.step_index(id.as_str()).unwrap()) as usize, l);
            }
        }
        prop_assert!(plan.redundant_dependencies_complete);
        for r in &plan.redundant_dependencies {
            let (d, s): (usize, usize) = (r.dependency.as_str()[1..].parse().unwrap(), r.step.as_str()[1..].parse().unwrap());
            prop_assert!(reachable_without(n, &edges, (d, s), d, s));
            // The via path is real: consecutive steps are edges.
            for pair in r.via.windows(2) {
                let a: usize = pair[0].as_str()[1..].parse().unwrap();
                let b: usize = pair[1].as_str()[1..].parse().unwrap();
                prop_assert!(edges.contains(&(a, b)));
            }
            seen.push((d, s));
        }
        for &(d, s) in &edges {
            prop_assert_eq!(seen.contains(&(d, s)), reachable_without(n, &edges, (d, s), d, s), "edge s{}→s{}", d, s);
        }
        // Critical path with unit durations is the number of levels.
        prop_assert_eq!(plan.critical_path.seconds, plan.levels.len() as f64);
    }

    /// On random directed graphs a cycle is reported exactly when petgraph finds no
    /// topological order; every reported cycle is real and components are disjoint.
    #[test]
    fn cycles_are_reported_exactly_when_there_is_no_topological_order(
        n in 1usize..25,
        raw in proptest::collection::vec((0usize..25, 0usize..25), 0..60),
    ) {
        let edges: Vec<(usize, usize)> = raw.into_iter().map(|(a, b)| (a % n, b % n)).collect();
        let mut graph = petgraph::graph::DiGraph::<(), ()>::new();
        let nodes: Vec<_> = (0..n).map(|_| graph.add_node(())).collect();
        for &(a, b) in &edges {
            graph.add_edge(nodes[a], nodes[b], ());
        }
        let acyclic = petgraph::algo::toposort(&graph, None).is_ok();
        match ValidatedWorkflow::new(parsed(&graph_workflow(n, &edges))) {
            Ok(_) => prop_assert!(acyclic),
            Err(CycleErrors(cycles)) => {
                prop_assert!(!acyclic);
                prop_assert!(!cycles.is_empty());
                let mut members = std::collections::HashSet::new();
                for cycle in &cycles {
                    prop_assert_eq!(cycle.steps.first(), cycle.steps.last());
                    prop_assert!(cycle.steps.len() >= 2);
                    for pair in cycle.steps.windows(2) {
                        let a: usize = pair[0].as_str()[1..].parse().unwrap();
                        let b: usize = pair[1].as_str()[1..].parse().unwrap();
                        prop_assert!(edges.contains(&(a, b)), "s{}→s{} is not an edge", a, b);
                    }
                    for step in &cycle.component {
                        prop_assert!(members.insert(step.clone()), "{} in two components", step);
                    }
                    for step in &cycle.steps {
                        prop_assert!(cycle.component.contains(step));
                    }
                }
                // Every edge inside a cycle's component belongs to one reported component:
                // in particular every self-loop is reported.
                for &(a, b) in &edges {
                    if a == b {
                        let id = StepId::parse(&format!("s{}", a)).unwrap();
                        prop_assert!(members.contains(&id));
                    }
                }
            }
        }
    }
}

proptest! {
    /// Field errors never hide a cycle: a random graph reports the same cycles, edge for
    /// edge, after its steps lose their names, get bad timeouts or unknown fields.
    #[test]
    fn field_errors_never_hide_a_cycle(
        n in 1usize..20,
        raw in proptest::collection::vec((0usize..20, 0usize..20), 0..50),
        broken in proptest::collection::vec((0usize..20, 0usize..4), 1..6),
    ) {
        let edges: Vec<(usize, usize)> = raw.into_iter().map(|(a, b)| (a % n, b % n)).collect();
        let clean = graph_workflow(n, &edges);
        let expected = match ValidatedWorkflow::new(parsed(&clean)) {
            Ok(_) => Vec::new(),
            Err(CycleErrors(cycles)) => cycles,
        };
        let mut value = clean;
        for (step, how) in broken {
            let step = &mut value["steps"][step % n];
            match how {
                0 => { step.as_object_mut().unwrap().remove("name"); }
                1 => step["timeout"] = json!(-1),
                2 => step["colour"] = json!("blue"),
                _ => step["type"] = json!("agnet"),
            }
        }
        let errors = parse_value(&value).expect_err("field errors");
        prop_assert!(errors.field_errors().count() > 0);
        prop_assert_eq!(errors.cycles(), expected.as_slice());
    }
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

// ---------------------------------------------------------------------------------------
// Hostile documents: each of these once aborted the process, stalled it or made a report
// of megabytes.

#[test]
fn a_report_lists_the_first_hundred_problems_and_counts_the_rest() {
    let steps: Vec<Value> = (0..5_000).map(|i| json!({"id": format!("s{i}"), "type": "agent"})).collect();
    let errors = field_errors(&json!({"id": "wf", "name": "wf", "steps": steps}));
    assert_eq!(errors.len(), crate::validation::MAX_REPORTED + 1);
    let (path, message) = errors.last().unwrap();
    // Two problems a step (no name, no agent_id), 100 listed.
    assert_eq!((path.as_str(), message.as_str()), ("$", "9900 more problems, not listed"));
}

#[test]
fn a_yaml_of_many_aliases_is_refused_with_one_short_error() {
    let mut text = String::from("id: wf\nname: wf\nbad: &bad {id: x, type: agent}\nsteps: [");
    text.push_str(&vec!["*bad"; 99_000].join(", "));
    text.push_str("]\n");
    let errors = parse_yaml(&text, &limits()).unwrap_err();
    assert_eq!(errors.errors().len(), 1, "{errors}");
    assert!(errors.to_string().contains("more than 10000 aliases"), "{errors}");
    // Within the alias bound, an alias of a bad step is still reported a bounded number of times.
    let mut text = String::from("id: wf\nname: wf\nbad: &bad {id: x, type: agent}\nsteps: [");
    text.push_str(&vec!["*bad"; 9_000].join(", "));
    text.push_str("]\n");
    let errors = parse_yaml(&text, &limits()).unwrap_err();
    assert!(errors.errors().len() <= crate::validation::MAX_REPORTED + 1);
    assert!(errors.to_string().len() < 20_000, "{} bytes", errors.to_string().len());
}

#[test]
fn deep_yaml_is_refused_before_libyaml_reads_it() {
    for text in ["[".repeat(1024 * 1024), "{a: ".repeat(200_000), format!("steps: {}", "[".repeat(100))] {
        let errors = parse_yaml(&text, &limits()).unwrap_err();
        assert!(
            matches!(&errors.errors()[0], ParseError::Syntax { message, .. } if message.contains("nest deeper than 64")),
            "{errors}"
        );
    }
    // Deep block nesting reaches serde's own depth limit: an error, not a crash.
    let mut text = String::from("id: wf\nname: wf\nmetadata:\n");
    for depth in 1..400 {
        text.push_str(&format!("{}k{depth}:\n", "  ".repeat(depth)));
    }
    assert!(parse_yaml(&text, &limits()).is_err());
}

#[test]
fn a_condition_too_complex_to_compile_safely_is_a_field_error() {
    for (expression, what) in [
        (format!("{}1{}", "(".repeat(40), ")".repeat(40)), "nested brackets"),
        (vec!["1"; 1_000].join("+"), "operators"),
        ("x".repeat(5_000), "bytes"),
    ] {
        let value = json!({"id": "wf", "name": "wf", "steps": [
            {"id": "c", "name": "c", "type": "condition", "parameters": {"expression": expression, "when_true": []}}
        ]});
        let errors = field_errors(&value);
        assert!(has_error(&errors, "$.steps[0].parameters.expression", what), "{errors:?}");
    }
}
