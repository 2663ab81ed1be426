//! Service steps without a target, and `defaults` (issue 12, point 2).

use super::*;
use crate::workflow::parse::{parse_canonical, parse_with_canonical};

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
    assert_exactly(&errors, &expected);

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
        include_str!("../../../tests/fixtures/seed/anchored_defaults.yaml"),
        include_str!("../../../tests/fixtures/seed/anchors_under_defaults.yaml"),
    ] {
        // (One of them has a cycle: parsed, not loaded.)
        let (workflow, json) = parse_with_canonical(text, Format::Yaml, &limits()).unwrap();
        assert!(!json.to_string().contains("<<"), "{json}");
        assert_eq!(parse_canonical(&json).unwrap(), workflow);
        assert_eq!(parse_json(&json.to_string(), &limits()).unwrap(), workflow);
    }
    let loaded = load(&etl().to_string(), Format::Json, &limits()).unwrap();
    assert_eq!(loaded.definition(), &etl());
    assert_eq!(load_definition(loaded.definition()).unwrap().workflow(), loaded.workflow());
}

#[test]
fn the_json_and_yaml_spellings_of_a_workflow_have_one_canonical_form() {
    let json = load(&etl().to_string(), Format::Json, &limits()).unwrap();
    let yaml_text = yaml_serde::to_string(&etl()).unwrap();
    let yaml = load(&yaml_text, Format::Yaml, &limits()).unwrap();
    assert_eq!(json.definition(), yaml.definition());
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
