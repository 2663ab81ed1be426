//! Hostile documents: each of these once aborted the process, stalled it or made a report
//! of megabytes.

use super::*;

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
