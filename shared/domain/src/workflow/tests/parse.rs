//! The parser: both notations, syntax and field errors with their paths, limits.

use super::*;

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
    let doc = include_str!("../../../../../docs/workflows.md");
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
    assert_exactly(&errors, &expected);
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
    assert_exactly(&errors, &expected);

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

#[test]
fn a_squad_step_names_its_squad_and_leaves_time_and_retries_to_it() {
    let step = |parameters: Value, extra: Value| {
        let mut step = json!({"id": "vote", "name": "Vote", "type": "squad", "parameters": parameters,
                              "inputs": ["question"], "outputs": ["answer"]});
        step.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"id": "wf", "name": "wf", "steps": [step]})
    };
    let workflow = parsed(&step(json!({"squad": "board", "version": "2"}), json!({})));
    assert_eq!(
        workflow.steps()[0].kind,
        StepKind::Squad { squad: "board".into(), version: Some("2".into()) }
    );
    let workflow = parsed(&step(json!({"squad": "board"}), json!({})));
    assert_eq!(workflow.steps()[0].kind, StepKind::Squad { squad: "board".into(), version: None });
    let errors = field_errors(&step(
        json!({"sqaud": "board", "version": 2}),
        json!({"timeout": 5, "retry_policy": {"max_attempts": 2}}),
    ));
    assert_exactly(
        &errors,
        &[
            ("$.steps[0].timeout", "a squad step takes no timeout: the squad's limits.deadline"),
            ("$.steps[0].retry_policy", "a squad step takes no retry_policy: the squad's on_failure"),
            ("$.steps[0].parameters.sqaud", "did you mean \"squad\""),
            ("$.steps[0].parameters.squad", "is required"),
            ("$.steps[0].parameters.version", "write \"2\" in quotes"),
        ],
    );
}
