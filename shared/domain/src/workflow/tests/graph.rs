//! The graph: cycles (also beside field errors, issue 12, point 1) and levels.

use super::*;

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
fn the_plan_order_is_by_level_then_file_order_not_file_order() {
    // Written last-step-first: a run's steps are listed in this order (`Engine::run_view`).
    let workflow = validated(&with_deps(
        &["write", "edit", "research", "notes", "outline"],
        json!({"write": ["outline"], "edit": ["write", "notes"], "outline": ["research"]}),
    ));
    let order: Vec<&str> =
        workflow.topological_order().iter().map(|&s| workflow.workflow().step(s).id.as_str()).collect();
    assert_eq!(order, ["research", "notes", "outline", "write", "edit"]);
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
