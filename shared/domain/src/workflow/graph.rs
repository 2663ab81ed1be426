//! The dependency graph: explicit dependencies, data edges and group edges together.
//! An acyclic one becomes a [`ValidatedWorkflow`]; a cyclic one is reported, every
//! strongly connected component once, each with one concrete cycle.
//!
//! Arrows read "must finish before": `a → b` means `b` waits for `a`, the direction in
//! which data flows and in which the plan runs.

use std::collections::HashMap;
use std::fmt;

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

use super::model::{Edge, EdgeReason, StepId, StepIndex, StepKind, Workflow};

/// Why one step waits for another, as a set: one pair may have several reasons.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct EdgeKinds(u8);

impl EdgeKinds {
    const DEPENDENCY: u8 = 1;
    const DATA: u8 = 2;
    const GROUP: u8 = 4;

    fn of(reason: EdgeReason) -> Self {
        Self(match reason {
            EdgeReason::Dependency => Self::DEPENDENCY,
            EdgeReason::Data { .. } => Self::DATA,
            EdgeReason::Group { .. } => Self::GROUP,
        })
    }

    /// Listed in the file's `dependencies`.
    pub fn dependency(self) -> bool {
        self.0 & Self::DEPENDENCY != 0
    }

    /// The later step reads an output of the earlier.
    pub fn data(self) -> bool {
        self.0 & Self::DATA != 0
    }

    /// Implied by a `parallel` or `sequential` step.
    pub fn group(self) -> bool {
        self.0 & Self::GROUP != 0
    }
}

/// A workflow whose graph is known to be acyclic, with its adjacency precomputed.
#[derive(Debug, Clone)]
pub struct ValidatedWorkflow {
    workflow: Workflow,
    /// `deps[dep_start[i]..dep_start[i + 1]]`: step i's direct dependencies, ascending.
    dep_start: Vec<u32>,
    deps: Vec<StepIndex>,
    dep_kinds: Vec<EdgeKinds>,
    dependent_start: Vec<u32>,
    dependents: Vec<StepIndex>,
    /// Topological order: by level, then by position in the file.
    order: Vec<StepIndex>,
    level: Vec<u32>,
    /// `order[level_start[l]..level_start[l + 1]]` is level `l`.
    level_start: Vec<u32>,
}

/// What cycle finding reads of a graph: a parsed [`Workflow`], or the partial graph the
/// parser builds from a document with field errors (so that its cycles are reported too).
pub(super) trait StepGraph {
    fn step_count(&self) -> usize;
    /// Every ordering, one per reason (see [`Workflow::edges`]).
    fn edges(&self) -> &[Edge];
    fn id(&self, step: StepIndex) -> &StepId;
    /// The name of `step`'s input number `input`: what a data edge carries.
    fn input(&self, step: StepIndex, input: u32) -> &str;
}

impl StepGraph for Workflow {
    fn step_count(&self) -> usize {
        self.steps().len()
    }

    fn edges(&self) -> &[Edge] {
        Workflow::edges(self)
    }

    fn id(&self, step: StepIndex) -> &StepId {
        &self.step(step).id
    }

    fn input(&self, step: StepIndex, input: u32) -> &str {
        &self.step(step).inputs[input as usize]
    }
}

/// Kahn's algorithm, one level at a time, each level in file order.
struct Levels {
    order: Vec<StepIndex>,
    level: Vec<u32>,
    level_start: Vec<u32>,
}

fn levels(n: usize, dep_start: &[u32], dependent_start: &[u32], dependents: &[StepIndex]) -> Levels {
    let mut waiting: Vec<u32> = (0..n).map(|i| dep_start[i + 1] - dep_start[i]).collect();
    let mut frontier: Vec<StepIndex> = (0..n).filter(|&i| waiting[i] == 0).map(StepIndex::new).collect();
    let mut order = Vec::with_capacity(n);
    let mut level = vec![u32::MAX; n];
    let mut level_start = vec![0u32];
    let mut current = 0u32;
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for &step in &frontier {
            level[step.index()] = current;
            let i = step.index();
            for &dependent in &dependents[dependent_start[i] as usize..dependent_start[i + 1] as usize] {
                let w = &mut waiting[dependent.index()];
                *w -= 1;
                if *w == 0 {
                    next.push(dependent);
                }
            }
        }
        order.extend_from_slice(&frontier);
        level_start.push(order.len() as u32);
        next.sort_unstable();
        frontier = next;
        current += 1;
    }
    Levels { order, level, level_start }
}

/// Every cyclic component of `graph`, each once; empty if it has none.
pub(super) fn cycles_of(graph: &impl StepGraph) -> Vec<Cycle> {
    let n = graph.step_count();
    let (dep_start, deps, _) = dependencies_csr(graph);
    let (dependent_start, dependents) = transpose(n, &dep_start, &deps);
    let levels = levels(n, &dep_start, &dependent_start, &dependents);
    if levels.order.len() == n {
        return Vec::new();
    }
    let stuck: Vec<StepIndex> = (0..n).filter(|&i| levels.level[i] == u32::MAX).map(StepIndex::new).collect();
    find_cycles(graph, &stuck, &dep_start, &deps).0
}

impl ValidatedWorkflow {
    /// Checks that the workflow's graph has no cycle. O(V + E log E).
    pub fn new(workflow: Workflow) -> Result<Self, CycleErrors> {
        let n = workflow.steps().len();
        let (dep_start, deps, dep_kinds) = dependencies_csr(&workflow);
        let (dependent_start, dependents) = transpose(n, &dep_start, &deps);
        let Levels { order, level, level_start } = levels(n, &dep_start, &dependent_start, &dependents);
        if order.len() < n {
            let stuck: Vec<StepIndex> =
                (0..n).filter(|&i| level[i] == u32::MAX).map(StepIndex::new).collect();
            return Err(find_cycles(&workflow, &stuck, &dep_start, &deps));
        }
        Ok(Self {
            workflow,
            dep_start,
            deps,
            dep_kinds,
            dependent_start,
            dependents,
            order,
            level,
            level_start,
        })
    }

    pub fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    pub fn into_workflow(self) -> Workflow {
        self.workflow
    }

    /// Every step, each after all it depends on: by level, then in file order.
    pub fn topological_order(&self) -> &[StepIndex] {
        &self.order
    }

    /// The steps `step` waits for directly, for any reason (not only the file's
    /// `dependencies`), each once, in file order.
    pub fn dependencies(&self, step: StepIndex) -> &[StepIndex] {
        let i = step.index();
        &self.deps[self.dep_start[i] as usize..self.dep_start[i + 1] as usize]
    }

    /// Why `step` waits for each of [`Self::dependencies`], in the same order.
    pub fn dependency_kinds(&self, step: StepIndex) -> &[EdgeKinds] {
        let i = step.index();
        &self.dep_kinds[self.dep_start[i] as usize..self.dep_start[i + 1] as usize]
    }

    /// The steps that wait for `step` directly, each once, in file order.
    pub fn dependents(&self, step: StepIndex) -> &[StepIndex] {
        let i = step.index();
        &self.dependents[self.dependent_start[i] as usize..self.dependent_start[i + 1] as usize]
    }

    /// The step's level: 0 if it waits for nothing, else one more than the highest level
    /// among its dependencies.
    pub fn level(&self, step: StepIndex) -> u32 {
        self.level[step.index()]
    }

    pub fn level_count(&self) -> usize {
        self.level_start.len() - 1
    }

    /// The steps of one level, in file order.
    pub fn level_steps(&self, level: usize) -> &[StepIndex] {
        &self.order[self.level_start[level] as usize..self.level_start[level + 1] as usize]
    }

    /// Distinct (dependency, dependent) pairs.
    pub fn edge_count(&self) -> usize {
        self.deps.len()
    }
}

/// Each step's direct dependencies, de-duplicated and sorted, with their kinds merged.
fn dependencies_csr(graph: &impl StepGraph) -> (Vec<u32>, Vec<StepIndex>, Vec<EdgeKinds>) {
    let n = graph.step_count();
    let edges = graph.edges();
    let mut start = vec![0u32; n + 1];
    for edge in edges {
        start[edge.to.index() + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut raw = vec![(StepIndex::new(0), EdgeKinds::default()); edges.len()];
    for edge in edges {
        let slot = &mut fill[edge.to.index()];
        raw[*slot as usize] = (edge.from, EdgeKinds::of(edge.reason));
        *slot += 1;
    }
    // Sort each step's bucket and merge repeats, compacting in place.
    let mut deps = Vec::with_capacity(raw.len());
    let mut kinds = Vec::with_capacity(raw.len());
    let mut new_start = Vec::with_capacity(n + 1);
    new_start.push(0u32);
    for i in 0..n {
        let bucket = &mut raw[start[i] as usize..start[i + 1] as usize];
        bucket.sort_unstable_by_key(|(from, _)| *from);
        for &(from, kind) in bucket.iter() {
            if deps.len() > *new_start.last().unwrap_or(&0) as usize && deps.last() == Some(&from) {
                let last = kinds.len() - 1;
                let merged: &mut EdgeKinds = &mut kinds[last];
                merged.0 |= kind.0;
            } else {
                deps.push(from);
                kinds.push(kind);
            }
        }
        new_start.push(deps.len() as u32);
    }
    (new_start, deps, kinds)
}

/// Dependents from dependencies; each list comes out ascending because steps are visited
/// in order.
fn transpose(n: usize, dep_start: &[u32], deps: &[StepIndex]) -> (Vec<u32>, Vec<StepIndex>) {
    let mut start = vec![0u32; n + 1];
    for dep in deps {
        start[dep.index() + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut out = vec![StepIndex::new(0); deps.len()];
    for step in 0..n {
        for dep in &deps[dep_start[step] as usize..dep_start[step + 1] as usize] {
            let slot = &mut fill[dep.index()];
            out[*slot as usize] = StepIndex::new(step);
            *slot += 1;
        }
    }
    (start, out)
}

// ---------------------------------------------------------------------------------------
// Cycles

/// One edge of a reported cycle and why it exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CycleEdge {
    #[schema(value_type = String)]
    pub from: StepId,
    #[schema(value_type = String)]
    pub to: StepId,
    /// `to` lists `from` in `dependencies`.
    pub dependency: bool,
    /// Data names `to` reads from `from`: a data edge.
    pub data: Vec<String>,
    /// The `parallel` or `sequential` steps that imply the edge.
    #[schema(value_type = Vec<String>)]
    pub groups: Vec<StepId>,
}

/// One strongly connected component of the graph, and one concrete cycle through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Cycle {
    /// The cycle, first step repeated last: `[a, b, a]` is `a → b → a`. Starts at the
    /// component's first step in file order and is as short as possible from there.
    #[schema(value_type = Vec<String>)]
    pub steps: Vec<StepId>,
    /// `edges[i]` is `steps[i] → steps[i + 1]`.
    pub edges: Vec<CycleEdge>,
    /// Every step of the component, in file order: each waits, directly or not, for
    /// every other; breaking the cycle shown may leave others among them.
    #[schema(value_type = Vec<String>)]
    pub component: Vec<StepId>,
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cycle: ")?;
        for (i, step) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str(" → ")?;
            }
            f.write_str(step.as_str())?;
        }
        if self.component.len() + 1 > self.steps.len() {
            write!(f, " (one of the cycles among {} mutually dependent steps)", self.component.len())?;
        }
        Ok(())
    }
}

/// Every cyclic component, in file order of their first steps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CycleErrors(pub Vec<Cycle>);

impl fmt::Display for CycleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, cycle) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{cycle}")?;
        }
        Ok(())
    }
}

/// Finds the strongly connected components among the steps Kahn's algorithm could not
/// order (every cycle is among them, with whatever waits on one) and a cycle in each.
fn find_cycles(
    graph_of: &impl StepGraph,
    stuck: &[StepIndex],
    dep_start: &[u32],
    deps: &[StepIndex],
) -> CycleErrors {
    // The subgraph on the stuck steps, in petgraph (kosaraju_scc is iterative: a
    // 100,000-step cycle must not overflow the stack, as the recursive tarjan_scc would).
    let n = graph_of.step_count();
    let mut local = vec![u32::MAX; n];
    let mut graph = DiGraph::<StepIndex, ()>::with_capacity(stuck.len(), 0);
    for &step in stuck {
        local[step.index()] = graph.add_node(step).index() as u32;
    }
    let mut self_loop = vec![false; stuck.len()];
    for &step in stuck {
        let to = local[step.index()];
        for dep in &deps[dep_start[step.index()] as usize..dep_start[step.index() + 1] as usize] {
            let from = local[dep.index()];
            if from == u32::MAX {
                continue;
            }
            if from == to {
                self_loop[to as usize] = true;
            }
            graph.add_edge(NodeIndex::new(from as usize), NodeIndex::new(to as usize), ());
        }
    }

    let mut components: Vec<Vec<StepIndex>> = kosaraju_scc(&graph)
        .into_iter()
        .filter(|c| c.len() > 1 || self_loop[c[0].index()])
        .map(|c| {
            let mut steps: Vec<StepIndex> = c.iter().map(|&node| graph[node]).collect();
            steps.sort_unstable();
            steps
        })
        .collect();
    components.sort_unstable_by_key(|c| c[0]);

    // Which component each step is in, for the search restricted to one component.
    let mut component_of = vec![u32::MAX; n];
    for (c, steps) in components.iter().enumerate() {
        for step in steps {
            component_of[step.index()] = c as u32;
        }
    }
    let paths: Vec<Vec<StepIndex>> = components
        .iter()
        .enumerate()
        .map(|(c, steps)| shortest_cycle(&graph, &local, steps[0], c as u32, &component_of))
        .collect();

    let details = edge_details(graph_of, &paths);
    let id = |step: &StepIndex| graph_of.id(*step).clone();
    let cycles = components
        .iter()
        .zip(&paths)
        .map(|(component, path)| Cycle {
            steps: path.iter().map(id).collect(),
            edges: path
                .windows(2)
                .map(|pair| {
                    let detail = &details[&(pair[0], pair[1])];
                    CycleEdge {
                        from: id(&pair[0]),
                        to: id(&pair[1]),
                        dependency: detail.dependency,
                        data: detail.data.clone(),
                        groups: detail.groups.iter().map(id).collect(),
                    }
                })
                .collect(),
            component: component.iter().map(id).collect(),
        })
        .collect();
    CycleErrors(cycles)
}

/// A shortest cycle through `start` inside its component: breadth-first along edges
/// until an edge leads back to `start`.
fn shortest_cycle(
    graph: &DiGraph<StepIndex, ()>,
    local: &[u32],
    start: StepIndex,
    component: u32,
    component_of: &[u32],
) -> Vec<StepIndex> {
    let mut parent: HashMap<StepIndex, StepIndex> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(step) = queue.pop_front() {
        let node = NodeIndex::new(local[step.index()] as usize);
        // Neighbours in ascending step order, so the cycle found does not depend on how
        // petgraph happens to store edges.
        let mut next: Vec<StepIndex> = graph.neighbors(node).map(|n| graph[n]).collect();
        next.sort_unstable();
        next.dedup();
        for successor in next {
            if successor == start {
                let mut back = Vec::new();
                let mut at = step;
                while at != start {
                    back.push(at);
                    at = parent[&at];
                }
                let mut path = Vec::with_capacity(back.len() + 2);
                path.push(start);
                path.extend(back.into_iter().rev());
                path.push(start);
                return path;
            }
            if component_of[successor.index()] == component && !parent.contains_key(&successor) {
                parent.insert(successor, step);
                queue.push_back(successor);
            }
        }
    }
    unreachable!("every step of a strongly connected component lies on a cycle")
}

#[derive(Default)]
struct Detail {
    dependency: bool,
    data: Vec<String>,
    groups: Vec<StepIndex>,
}

/// Why each edge of the cycles exists, in one pass over the workflow's edges.
fn edge_details(graph: &impl StepGraph, paths: &[Vec<StepIndex>]) -> HashMap<(StepIndex, StepIndex), Detail> {
    let mut details: HashMap<(StepIndex, StepIndex), Detail> = HashMap::new();
    for path in paths {
        for pair in path.windows(2) {
            details.entry((pair[0], pair[1])).or_default();
        }
    }
    for edge in graph.edges() {
        let Some(detail) = details.get_mut(&(edge.from, edge.to)) else { continue };
        match edge.reason {
            EdgeReason::Dependency => detail.dependency = true,
            EdgeReason::Data { input } => {
                detail.data.push(graph.input(edge.to, input).to_owned());
            }
            EdgeReason::Group { group } => {
                if !detail.groups.contains(&group) {
                    detail.groups.push(group);
                }
            }
        }
    }
    details
}

/// Whether `step` is in a branch of condition `condition` (so the edge between them is
/// needed for the branch decision, whatever its kind).
pub(super) fn is_branch_of(workflow: &Workflow, condition: StepIndex, step: StepIndex) -> bool {
    match &workflow.step(condition).kind {
        StepKind::Condition { when_true, when_false, .. } => {
            when_true.contains(&step) || when_false.contains(&step)
        }
        _ => false,
    }
}
