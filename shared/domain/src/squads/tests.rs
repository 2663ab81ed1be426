use proptest::prelude::*;
use proptest::strategy::Strategy;
use serde_json::{Value, json};

use super::{MAX_BYTES, Method, Mode, OnFailure, SquadError, from_value, load};
use crate::workflow::Format;

const BOARD: &str = r#"
id: answer-board
version: "1"
description: Three agents answer; the majority wins
members:
  - agent: summarizer-a
  - capability: summarize
    count: 2
    weight: 2
aggregation:
  method: majority
  compare: /answer
"#;

fn paths(error: SquadError) -> Vec<String> {
    match error {
        SquadError::Invalid(errors) => {
            errors.errors().iter().map(|e| format!("{}: {}", e.path, e.message)).collect()
        }
        SquadError::Unreadable(message) => panic!("unreadable: {message}"),
    }
}

fn invalid(document: Value) -> Vec<String> {
    paths(from_value(&document).unwrap_err())
}

#[test]
fn a_squad_loads_with_its_defaults_written_out() {
    let loaded = load(BOARD, Format::Yaml).unwrap();
    let squad = &loaded.squad;
    assert_eq!(squad.seat_count(), 3);
    assert_eq!(squad.method(), Method::Majority);
    assert_eq!(squad.distribution.mode, Mode::Broadcast);
    assert_eq!(squad.limits.member_timeout(), std::time::Duration::from_secs(60));
    assert_eq!(squad.on_failure, OnFailure { retries: 1, tolerate: 0, replacements: 3 });
    // The stored form says every default, and the JSON spelling stores alike.
    assert_eq!(loaded.definition["limits"]["max_concurrency"], 16);
    assert_eq!(loaded.definition["members"][0]["role"], "worker");
    let as_json = load(&loaded.definition.to_string(), Format::Json).unwrap();
    assert_eq!(as_json.definition, loaded.definition);
}

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let errors = invalid(json!({
        "id": "Bad Id",
        "version": "",
        "members": [
            {"role": "worker"},
            {"agent": "a", "count": 2, "weight": 0},
            {"agent": "a"},
            {"capability": "NOT OK", "count": 0},
            {"agent": "b", "role": "lead"},
            {"agent": "c", "role": "lead"},
        ],
        "aggregation": {"method": "quorum", "compare": "answer"},
        "collaboration": {"rounds": 11},
        "limits": {"member_timeout": -1, "max_concurrency": 0},
        "on_failure": {"tolerate": 6, "retries": 11},
    }));
    let expected = [
        "$.id: must be 1 to 64",
        "$.version: must be 1 to 64",
        "$.members[0]: a member names an `agent`",
        "$.members[1].count: `count` is for a capability member",
        "$.members[1].weight: must be 1 to 1000",
        "$.members[2].agent: agent \"a\" is already a member ($.members[1])",
        "$.members[3].count: must be 1 to 100",
        "$.members[3].capability: a capability",
        "$.members[5].role: a squad has one lead, and $.members[4] is it",
        "$.collaboration.rounds: must be 1 to 10",
        "$.aggregation.quorum: required",
        "$.aggregation.compare: a JSON pointer",
        "$.limits.max_concurrency: must be 1 to 1000",
        "$.limits.member_timeout: must be a positive number of seconds",
        "$.on_failure.retries: must be 0 to 10",
        "$.on_failure.tolerate: must be less than the number of members (5)",
    ];
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    for (error, expected) in errors.iter().zip(expected) {
        assert!(error.starts_with(expected), "{error:?} should start with {expected:?}\n{errors:#?}");
    }
}

#[test]
fn shape_problems_come_with_the_rules_and_a_did_you_mean() {
    let errors = invalid(json!({
        "id": "ok", "version": "1",
        "members": [{"agent": "a", "wieght": 2}],
        "distribution": {"mode": "brodcast"},
        "aggregation": {"method": "lead"},
    }));
    assert!(
        errors.iter().any(|e| e.starts_with("$.members[0].wieght") && e.contains("weight")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("$.distribution.mode") && e.contains("broadcast")),
        "{errors:#?}"
    );
    // The rules still run on what could be read: lead needs lead_plans.
    assert!(
        errors.iter().any(|e| e.starts_with("$.aggregation.method: lead does not go with broadcast")),
        "{errors:#?}"
    );
}

#[test]
fn each_mode_takes_the_methods_that_fit_it() {
    let member = |role: &str| json!({"agent": format!("a-{role}"), "role": role});
    let squad = |mode: &str, method: Option<&str>, members: Vec<Value>| {
        let mut document =
            json!({"id": "s", "version": "1", "members": members, "distribution": {"mode": mode}});
        if mode == "split" {
            document["distribution"]["over"] = json!("items");
        }
        if let Some(method) = method {
            document["aggregation"] = json!({"method": method});
        }
        from_value(&document)
    };
    // Defaults by mode.
    for (mode, method, members) in [
        ("broadcast", Method::Majority, vec![member("worker")]),
        ("split", Method::Collect, vec![member("worker")]),
        ("lead_plans", Method::Lead, vec![member("lead"), member("worker")]),
        ("race", Method::FirstSuccess, vec![member("worker")]),
    ] {
        assert_eq!(squad(mode, None, members).unwrap().squad.method(), method, "{mode}");
    }
    let errors = paths(squad("split", Some("majority"), vec![member("worker")]).unwrap_err());
    assert_eq!(
        errors,
        [
            "$.aggregation.method: majority does not go with split: use collect (a split's results come back in input order)"
        ]
    );
    let errors = paths(squad("lead_plans", None, vec![member("worker")]).unwrap_err());
    assert_eq!(errors, ["$.members: lead_plans needs a member with role lead, who plans and synthesizes"]);
    let errors = paths(squad("broadcast", Some("validator"), vec![member("worker")]).unwrap_err());
    assert_eq!(errors, ["$.members: the validator method needs a member with role validator"]);
    assert!(squad("broadcast", Some("validator"), vec![member("worker"), member("validator")]).is_ok());
    let errors = paths(squad("broadcast", None, vec![member("worker"), member("validator")]).unwrap_err());
    assert_eq!(errors, ["$.members[1].role: validators judge answers: only with the validator method"]);
    let errors = paths(squad("race", None, vec![]).unwrap_err());
    assert_eq!(errors, ["$.members: a squad needs at least one member"]);
}

#[test]
fn split_needs_its_items_and_only_split_has_a_strategy() {
    let errors = invalid(json!({
        "id": "s", "version": "1", "members": [{"agent": "a"}],
        "distribution": {"mode": "split"},
    }));
    assert_eq!(errors, ["$.distribution.over: required for split: the input that holds the items"]);
    let errors = invalid(json!({
        "id": "s", "version": "1", "members": [{"agent": "a"}],
        "distribution": {"over": "items", "strategy": "least_loaded"},
        "collaboration": {"rounds": 2},
    }));
    assert_eq!(
        errors,
        [
            "$.distribution.over: only split shares out an input's items",
            "$.distribution.strategy: only split has a strategy"
        ]
    );
    let errors = invalid(json!({
        "id": "s", "version": "1", "members": [{"agent": "a"}],
        "distribution": {"mode": "race"}, "collaboration": {"rounds": 2},
    }));
    assert_eq!(
        errors,
        ["$.collaboration.rounds: only a broadcast has rounds (each member sees the last round's answers)"]
    );
}

#[test]
fn a_quorum_is_within_the_voting_members() {
    let squad = |k: u32| {
        from_value(&json!({
            "id": "s", "version": "1", "members": [{"capability": "vote", "count": 5}],
            "aggregation": {"method": "quorum", "quorum": k},
        }))
    };
    assert!(squad(3).is_ok());
    assert!(squad(5).is_ok());
    assert_eq!(
        paths(squad(6).unwrap_err()),
        ["$.aggregation.quorum: must be 1 to the number of voting members (5)"]
    );
    assert_eq!(
        paths(squad(0).unwrap_err()),
        ["$.aggregation.quorum: must be 1 to the number of voting members (5)"]
    );
}

#[test]
fn size_and_syntax_are_refused_before_anything_else() {
    let big = format!("{{\"id\": \"{}\"}}", "x".repeat(MAX_BYTES));
    assert!(matches!(load(&big, Format::Json), Err(SquadError::Unreadable(m)) if m.contains("limit")));
    assert!(
        matches!(load("{\"id\": 1,}", Format::Json), Err(SquadError::Unreadable(m)) if m.starts_with("not JSON"))
    );
    assert!(
        matches!(load("id: [", Format::Yaml), Err(SquadError::Unreadable(m)) if m.starts_with("not YAML"))
    );
    let members = (0..1_001).map(|i| json!({"agent": format!("a{i}")})).collect::<Vec<_>>();
    let errors = invalid(json!({"id": "s", "version": "1", "members": members}));
    assert_eq!(errors, ["$.members: the squad has 1001 members once counts are added up; the limit is 1000"]);
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..2000).prop_map(Value::from),
        prop_oneof![
            Just("a"),
            Just("lead"),
            Just("split"),
            Just("majority"),
            Just("/answer"),
            Just(""),
            Just("quorum"),
            Just("x y")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    let keys = prop_oneof![
        Just("id"),
        Just("version"),
        Just("members"),
        Just("agent"),
        Just("capability"),
        Just("count"),
        Just("role"),
        Just("weight"),
        Just("distribution"),
        Just("mode"),
        Just("over"),
        Just("aggregation"),
        Just("method"),
        Just("quorum"),
        Just("limits"),
        Just("on_failure"),
        Just("rounds"),
        Just("other")
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(keys.clone().prop_map(str::to_owned), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Whatever the document, loading it answers (never panics), and a refusal places
    /// every problem under `$`; what loads, loads again from its stored form unchanged.
    #[test]
    fn any_document_is_answered_with_paths(document in any_json()) {
        match from_value(&document) {
            Ok(loaded) => {
                let again = from_value(&loaded.definition).unwrap();
                prop_assert_eq!(again.definition, loaded.definition);
            }
            Err(SquadError::Invalid(errors)) => {
                prop_assert!(!errors.is_empty());
                for error in errors.errors() {
                    prop_assert!(error.path.starts_with('$'), "{:?}", error);
                }
            }
            Err(SquadError::Unreadable(message)) => prop_assert!(false, "unreadable: {}", message),
        }
    }
}

#[test]
fn the_shape_names_the_fields_serde_reads() {
    crate::strict::shape::assert_names_serde_fields::<super::Squad>();
}
