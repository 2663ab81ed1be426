//! Properties on random graphs.

use super::*;

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
