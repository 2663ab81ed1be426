//! Planning a validated workflow: execution levels, the critical path, how parallel it is,
//! and which explicit dependencies are redundant or hold steps back.
//!
//! Everything is computed from the graph; nothing is a constant or a heuristic score.
//! Arrows and paths read "must finish before", as in [`super::graph`].

use serde::Serialize;

use super::graph::{ValidatedWorkflow, is_branch_of};
use super::model::{StepId, StepIndex, StepKind};

/// At most this many steps of a `via` path are listed; see [`RedundantDependency`].
pub const MAX_VIA_STEPS: usize = 16;

/// The search for redundant dependencies examines at most this many edges per step and
/// edge of the workflow, plus [`REDUNDANCY_BUDGET_BASE`]; past that it stops and says so.
pub const REDUNDANCY_BUDGET_PER_ELEMENT: usize = 16;
pub const REDUNDANCY_BUDGET_BASE: usize = 1_000_000;

/// Where a step's duration for the critical path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DurationSource {
    /// The step's `estimate`.
    Estimate,
    /// No estimate: the step's `timeout`, its longest possible run.
    Timeout,
    /// Neither: one second, so that every working step counts.
    Default,
    /// A `parallel` or `sequential` step, which does no work: zero.
    Group,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PathStep {
    #[schema(value_type = String)]
    pub id: StepId,
    pub seconds: f64,
    pub source: DurationSource,
    /// When the step can start at the earliest, from the start of the run.
    pub starts_at_seconds: f64,
}

/// The longest chain of waiting steps, by duration: no run can be shorter.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CriticalPath {
    pub seconds: f64,
    /// In execution order.
    pub steps: Vec<PathStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Parallelism {
    /// Steps divided by levels: how many steps a level holds on average.
    pub steps_per_level: f64,
    /// The sum of every step's duration, as the critical path counts them.
    pub total_work_seconds: f64,
    /// Total work divided by the critical path's length: the speed-up over running one
    /// step at a time that enough workers would give. 1 for a chain.
    pub work_over_critical_path: f64,
}

/// What makes an explicit dependency redundant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImpliedBy {
    /// The step also reads an output of the dependency.
    DataEdge,
    /// A `parallel` or `sequential` step already orders the two.
    GroupEdge,
    /// A longer path already leads from the dependency to the step.
    Path,
}

/// An entry of `dependencies` that removing would not change any ordering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RedundantDependency {
    #[schema(value_type = String)]
    pub step: StepId,
    #[schema(value_type = String)]
    pub dependency: StepId,
    pub implied_by: ImpliedBy,
    /// The ordering that implies it, from `dependency` to `step`: the two alone for a data
    /// or group edge, else a shortest path through the step's other direct dependencies.
    /// Paths longer than [`MAX_VIA_STEPS`] keep their first and last halves.
    #[schema(value_type = Vec<String>)]
    pub via: Vec<StepId>,
    /// Steps left out of the middle of `via`; 0 when it is complete.
    pub via_elided: usize,
}

/// A step whose explicit-only dependencies put it at a later level than its data needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EarlierStart {
    #[schema(value_type = String)]
    pub step: StepId,
    pub level: u32,
    /// The level it would have if dependencies with no data or group edge behind them (and
    /// that are not a condition it is a branch of) were dropped, everything else equal.
    pub earliest_level: u32,
    /// The explicit-only dependencies that keep it past `earliest_level`.
    #[schema(value_type = Vec<String>)]
    pub held_by: Vec<StepId>,
}

/// What the planner says about a valid workflow.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Plan {
    pub steps: usize,
    /// Distinct (dependency, dependent) pairs, whatever their reasons.
    pub edges: usize,
    /// Steps that can run together, level by level: level 0 waits for nothing, level `n`
    /// for something in level `n - 1`. Each level in file order.
    #[schema(value_type = Vec<Vec<String>>)]
    pub levels: Vec<Vec<StepId>>,
    /// The most steps in one level.
    pub max_width: usize,
    pub critical_path: CriticalPath,
    pub parallelism: Parallelism,
    /// In file order of `step`, then of the dependency.
    pub redundant_dependencies: Vec<RedundantDependency>,
    /// False if the search stopped at its budget: those listed are redundant, others may
    /// be too. See [`REDUNDANCY_BUDGET_PER_ELEMENT`].
    pub redundant_dependencies_complete: bool,
    /// In file order.
    pub could_start_earlier: Vec<EarlierStart>,
}

/// Plans a validated workflow. O(V + E) but for the redundancy search, which is bounded.
pub fn plan(workflow: &ValidatedWorkflow) -> Plan {
    let steps = workflow.workflow().steps();
    let id = |step: StepIndex| steps[step.index()].id.clone();

    let levels: Vec<Vec<StepId>> = (0..workflow.level_count())
        .map(|l| workflow.level_steps(l).iter().map(|&s| id(s)).collect())
        .collect();
    let max_width = levels.iter().map(Vec::len).max().unwrap_or(0);

    let critical_path = critical_path(workflow);
    let total_work_seconds: f64 = (0..steps.len()).map(|i| duration(workflow, StepIndex::new(i)).0).sum();
    let parallelism = Parallelism {
        steps_per_level: steps.len() as f64 / levels.len().max(1) as f64,
        total_work_seconds,
        work_over_critical_path: if critical_path.seconds > 0.0 {
            total_work_seconds / critical_path.seconds
        } else {
            1.0
        },
    };
    let (redundant_dependencies, redundant_dependencies_complete) = redundant_dependencies(workflow);
    Plan {
        steps: steps.len(),
        edges: workflow.edge_count(),
        levels,
        max_width,
        critical_path,
        parallelism,
        redundant_dependencies,
        redundant_dependencies_complete,
        could_start_earlier: could_start_earlier(workflow),
    }
}

/// A step's duration for planning: its estimate, else its timeout, else 1 s; 0 for a
/// group step, which does no work.
fn duration(workflow: &ValidatedWorkflow, step: StepIndex) -> (f64, DurationSource) {
    let s = workflow.workflow().step(step);
    if s.kind.step_type().is_group() {
        (0.0, DurationSource::Group)
    } else if let Some(estimate) = s.estimate {
        (estimate.get(), DurationSource::Estimate)
    } else if let Some(timeout) = s.timeout {
        (timeout.get(), DurationSource::Timeout)
    } else {
        (1.0, DurationSource::Default)
    }
}

fn critical_path(workflow: &ValidatedWorkflow) -> CriticalPath {
    let n = workflow.workflow().steps().len();
    let mut finish = vec![0.0f64; n];
    let mut via: Vec<Option<StepIndex>> = vec![None; n];
    for &step in workflow.topological_order() {
        let mut start = 0.0;
        let mut best = None;
        // Ties go to the dependency first in the file: dependencies are in file order and
        // only a strictly later finish replaces the best.
        for &dep in workflow.dependencies(step) {
            if best.is_none() || finish[dep.index()] > start {
                start = finish[dep.index()];
                best = Some(dep);
            }
        }
        via[step.index()] = best;
        finish[step.index()] = start + duration(workflow, step).0;
    }
    let Some(mut end) = (0..n).reduce(|best, i| if finish[i] > finish[best] { i } else { best }) else {
        return CriticalPath { seconds: 0.0, steps: Vec::new() };
    };
    let seconds = finish[end];
    let mut path = vec![StepIndex::new(end)];
    while let Some(previous) = via[end] {
        path.push(previous);
        end = previous.index();
    }
    path.reverse();
    let steps = path
        .into_iter()
        .map(|step| {
            let (seconds, source) = duration(workflow, step);
            PathStep {
                id: workflow.workflow().step(step).id.clone(),
                seconds,
                source,
                starts_at_seconds: finish[step.index()] - seconds,
            }
        })
        .collect();
    CriticalPath { seconds, steps }
}

/// Explicit dependencies that change nothing: the same pair is also a data or group
/// edge, or another path already leads from the dependency to the step.
///
/// For each step, only dependencies below the highest level among its dependencies can
/// be reachable from another one, and only through steps at or above the lowest such
/// level; a breadth-first search backwards from the higher dependencies, pruned to those
/// levels, finds them and a shortest path for each. Layered workflows cost O(E).
fn redundant_dependencies(workflow: &ValidatedWorkflow) -> (Vec<RedundantDependency>, bool) {
    let wf = workflow.workflow();
    let n = wf.steps().len();
    let id = |step: StepIndex| wf.step(step).id.clone();
    let budget = REDUNDANCY_BUDGET_PER_ELEMENT * (n + workflow.edge_count()) + REDUNDANCY_BUDGET_BASE;
    let mut spent = 0usize;
    let mut complete = true;

    let mut out = Vec::new();
    // Per-search marks, stamped with the step being examined + 1 so they need no reset.
    let mut visited = vec![0u32; n];
    let mut candidate = vec![0u32; n];
    let mut parent = vec![StepIndex::new(0); n];
    let mut queue = std::collections::VecDeque::new();

    for i in 0..n {
        let step = StepIndex::new(i);
        let stamp = i as u32 + 1;
        let deps = workflow.dependencies(step);
        let kinds = workflow.dependency_kinds(step);
        let mut found: Vec<(StepIndex, ImpliedBy, Vec<StepIndex>)> = Vec::new();

        let mut candidates = 0usize;
        let mut min_level = u32::MAX;
        let max_level = deps.iter().map(|&d| workflow.level(d)).max().unwrap_or(0);
        for (&dep, kind) in deps.iter().zip(kinds) {
            if !kind.dependency() {
                continue;
            }
            if kind.data() || kind.group() {
                let implied_by = if kind.data() { ImpliedBy::DataEdge } else { ImpliedBy::GroupEdge };
                found.push((dep, implied_by, vec![dep, step]));
            } else if workflow.level(dep) < max_level {
                candidate[dep.index()] = stamp;
                candidates += 1;
                min_level = min_level.min(workflow.level(dep));
            }
        }

        if candidates > 0 && complete {
            queue.clear();
            for &dep in deps {
                if workflow.level(dep) > min_level {
                    visited[dep.index()] = stamp;
                    parent[dep.index()] = step;
                    queue.push_back(dep);
                }
            }
            'search: while let Some(at) = queue.pop_front() {
                for &before in workflow.dependencies(at) {
                    spent += 1;
                    if spent > budget {
                        complete = false;
                        break 'search;
                    }
                    if workflow.level(before) < min_level {
                        continue;
                    }
                    if candidate[before.index()] == stamp {
                        // Found: `before` reaches `step` through `at`. Unmark so it is
                        // reported once, with the first (shortest) path.
                        candidate[before.index()] = 0;
                        let mut path = vec![before, at];
                        let mut walk = at;
                        while walk != step {
                            walk = parent[walk.index()];
                            path.push(walk);
                        }
                        found.push((before, ImpliedBy::Path, path));
                        candidates -= 1;
                        if candidates == 0 {
                            break 'search;
                        }
                    }
                    if visited[before.index()] != stamp {
                        visited[before.index()] = stamp;
                        parent[before.index()] = at;
                        queue.push_back(before);
                    }
                }
            }
        }

        found.sort_unstable_by_key(|(dep, _, _)| *dep);
        for (dep, implied_by, path) in found {
            let (via, via_elided) = elide(&path);
            out.push(RedundantDependency {
                step: id(step),
                dependency: id(dep),
                implied_by,
                via: via.into_iter().map(id).collect(),
                via_elided,
            });
        }
    }
    (out, complete)
}

fn elide(path: &[StepIndex]) -> (Vec<StepIndex>, usize) {
    if path.len() <= MAX_VIA_STEPS {
        return (path.to_vec(), 0);
    }
    let half = MAX_VIA_STEPS / 2;
    let mut kept = path[..half].to_vec();
    kept.extend_from_slice(&path[path.len() - half..]);
    (kept, path.len() - MAX_VIA_STEPS)
}

/// Steps held at a later level by explicit dependencies that carry no data, imply no
/// group and decide no branch. Ordering for a side effect the validator cannot see is a
/// good reason to keep such a dependency; this only points them out.
fn could_start_earlier(workflow: &ValidatedWorkflow) -> Vec<EarlierStart> {
    let wf = workflow.workflow();
    let has_conditions = wf.steps().iter().any(|s| matches!(s.kind, StepKind::Condition { .. }));
    let mut out = Vec::new();
    for i in 0..wf.steps().len() {
        let step = StepIndex::new(i);
        let level = workflow.level(step);
        if level == 0 {
            continue;
        }
        let deps = workflow.dependencies(step);
        let kinds = workflow.dependency_kinds(step);
        let needed = |dep: StepIndex, kind: &super::graph::EdgeKinds| {
            kind.data() || kind.group() || (has_conditions && is_branch_of(wf, dep, step))
        };
        let earliest_level = deps
            .iter()
            .zip(kinds)
            .filter(|(dep, kind)| needed(**dep, kind))
            .map(|(dep, _)| workflow.level(*dep) + 1)
            .max()
            .unwrap_or(0);
        if earliest_level < level {
            let held_by: Vec<StepId> = deps
                .iter()
                .zip(kinds)
                .filter(|(dep, kind)| !needed(**dep, kind) && workflow.level(**dep) + 1 > earliest_level)
                .map(|(dep, _)| wf.step(*dep).id.clone())
                .collect();
            out.push(EarlierStart { step: wf.step(step).id.clone(), level, earliest_level, held_by });
        }
    }
    out
}
