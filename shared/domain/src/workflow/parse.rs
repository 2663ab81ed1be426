//! Parsing workflow files, JSON or YAML, into a [`Workflow`], reporting every problem at
//! once: syntax errors with line and column, schema errors with their JSON path.
//!
//! The text is first parsed into a generic [`Node`] tree, then walked by hand; the walk
//! never stops at an error, so one pass finds them all.

use std::borrow::Cow;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, HashSet};
use std::fmt;

use serde_json::{Map, Value};

use super::graph::{Cycle, StepGraph, cycles_of};
use super::model::{
    Edge, EdgeReason, ErrorHandling, ResolvedTarget, RetryPolicy, Seconds, ServiceTarget, Step, StepId,
    StepIndex, StepKind, StepType, TargetSource, Workflow,
};
use super::path::{Loc, ROOT};
use super::tree::{self, Entry, Node};
use crate::validation::{FieldError, MAX_REPORTED};

/// The two notations a workflow may be written in; both give the same [`Workflow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Json,
    Yaml,
}

/// Bounds on what one document may hold, checked before or while parsing so that an
/// oversized document fails fast instead of exhausting memory. These are the system's
/// one set of workflow limits (docs/workflows.md#limits): a document arrives as a request
/// body, so `max_bytes` is the API's body limit too, set by the same variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The text's size in bytes. Default 3 MiB: the largest body that always reaches a
    /// Lambda function whole (see [`Limits::DEFAULT_MAX_BYTES`]).
    pub max_bytes: usize,
    /// Entries in `steps`. Default 20,000.
    pub max_steps: usize,
    /// Orderings, before de-duplication: entries in `dependencies` lists, data edges and
    /// group edges. Default 200,000.
    pub max_edges: usize,
}

impl Limits {
    /// API Gateway's HTTP API takes 10 MB, but a synchronous Lambda invocation carries at
    /// most 6 MB (6,291,456 bytes) of event, and the body travels inside it base64-encoded
    /// (4/3 larger) or as an escaped JSON string: 3 MiB leaves room for both and the
    /// headers.
    pub const DEFAULT_MAX_BYTES: usize = 3 * 1024 * 1024;
    /// What fits in `DEFAULT_MAX_BYTES` at about 150 bytes a step.
    pub const DEFAULT_MAX_STEPS: usize = 20_000;
    /// Ten per step.
    pub const DEFAULT_MAX_EDGES: usize = 200_000;
    /// No bounds: for a stored definition, which met the limits in force when stored.
    pub const NONE: Limits = Limits { max_bytes: usize::MAX, max_steps: usize::MAX, max_edges: usize::MAX };
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_steps: Self::DEFAULT_MAX_STEPS,
            max_edges: Self::DEFAULT_MAX_EDGES,
        }
    }
}

/// Which limit was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    MaxBytes,
    MaxSteps,
    MaxEdges,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::MaxBytes => "max_bytes",
            LimitKind::MaxSteps => "max_steps",
            LimitKind::MaxEdges => "max_edges",
        }
    }

    /// The environment variable that sets this limit.
    pub fn setting(self) -> &'static str {
        match self {
            LimitKind::MaxBytes => "TDEV_MAX_BODY_BYTES",
            LimitKind::MaxSteps => "TDEV_WORKFLOW_MAX_STEPS",
            LimitKind::MaxEdges => "TDEV_WORKFLOW_MAX_EDGES",
        }
    }

    /// The SAM template's parameter that sets [`Self::setting`] on AWS.
    pub fn parameter(self) -> &'static str {
        match self {
            LimitKind::MaxBytes => "MaxBodyBytes",
            LimitKind::MaxSteps => "WorkflowMaxSteps",
            LimitKind::MaxEdges => "WorkflowMaxEdges",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitExceeded {
    pub limit: LimitKind,
    pub max: usize,
    pub found: usize,
}

impl LimitExceeded {
    /// Where in the document the excess is.
    pub fn path(&self) -> &'static str {
        match self.limit {
            LimitKind::MaxSteps => "$.steps",
            LimitKind::MaxBytes | LimitKind::MaxEdges => "$",
        }
    }
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.limit {
            LimitKind::MaxBytes => "bytes",
            LimitKind::MaxSteps => "steps",
            LimitKind::MaxEdges => "dependencies and data edges",
        };
        let (found, max, limit) = (self.found, self.max, self.limit);
        write!(
            f,
            "{found} {what}, more than the limit of {max} ({}; set by {}, the template parameter {})",
            limit.as_str(),
            limit.setting(),
            limit.parameter()
        )
    }
}

/// One problem in a workflow document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The text is not JSON (or YAML) at all. Line and column count from 1.
    Syntax { line: usize, column: usize, message: String },
    /// The document is larger than the [`Limits`] allow.
    Limit(LimitExceeded),
    /// A field is missing, has the wrong type or an invalid value; `path` is its JSON path.
    Field(FieldError),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Syntax { line, column, message } => {
                write!(f, "line {line}, column {column}: {message}")
            }
            ParseError::Limit(limit) => write!(f, "{}: {limit}", limit.path()),
            ParseError::Field(e) => write!(f, "{}: {}", e.path, e.message),
        }
    }
}

/// Every problem found in one document, in the order found, and the cycles of the
/// graph as far as it could be read: a document with field errors still has its cycles
/// reported whenever its step ids and the orderings between them can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseErrors {
    errors: Vec<ParseError>,
    cycles: Vec<Cycle>,
}

/// Where a flat list of problems (problem+json) puts a cycle.
pub const CYCLE_PATH: &str = "$.dependencies";

impl ParseErrors {
    fn of(errors: Vec<ParseError>) -> Self {
        Self { errors, cycles: Vec::new() }
    }

    /// Every problem but the cycles.
    pub fn errors(&self) -> &[ParseError] {
        &self.errors
    }

    /// The cycles of the graph read from the document, each component once.
    pub fn cycles(&self) -> &[Cycle] {
        &self.cycles
    }

    pub fn into_parts(self) -> (Vec<ParseError>, Vec<Cycle>) {
        (self.errors, self.cycles)
    }

    /// Every problem as one list, each cycle last as a field error at [`CYCLE_PATH`].
    pub fn into_errors(self) -> Vec<ParseError> {
        let mut errors = self.errors;
        errors.extend(self.cycles.into_iter().map(|cycle| field(CYCLE_PATH.to_owned(), cycle.to_string())));
        errors
    }

    /// The field errors only, e.g. to assert on paths.
    pub fn field_errors(&self) -> impl Iterator<Item = &FieldError> {
        self.errors.iter().filter_map(|e| match e {
            ParseError::Field(f) => Some(f),
            _ => None,
        })
    }
}

impl fmt::Display for ParseErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cycles = self.cycles.iter().map(|c| c as &dyn fmt::Display);
        for (i, error) in self.errors.iter().map(|e| e as &dyn fmt::Display).chain(cycles).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseErrors {}

pub fn parse(text: &str, format: Format, limits: &Limits) -> Result<Workflow, ParseErrors> {
    let root = read(text, format, limits)?;
    walk(&root, limits)
}

pub fn parse_json(text: &str, limits: &Limits) -> Result<Workflow, ParseErrors> {
    parse(text, Format::Json, limits)
}

pub fn parse_yaml(text: &str, limits: &Limits) -> Result<Workflow, ParseErrors> {
    parse(text, Format::Yaml, limits)
}

/// Parses a document once into the workflow and its canonical form: the document as
/// JSON, with YAML merge keys applied and keys sorted, so that the JSON and YAML
/// spellings of one workflow give the same value. That value is what is stored, and
/// [`parse_canonical`] reads it back.
pub(super) fn parse_with_canonical(
    text: &str,
    format: Format,
    limits: &Limits,
) -> Result<(Workflow, Value), ParseErrors> {
    let root = read(text, format, limits)?;
    let workflow = walk(&root, limits)?;
    Ok((workflow, tree::to_value(&root)))
}

/// Reads back a canonical form that [`parse_with_canonical`] made, without text: it was
/// within the limits when it was made (which may have been lowered since).
pub(super) fn parse_canonical(definition: &Value) -> Result<Workflow, ParseErrors> {
    walk(&tree::from_value(definition), &Limits::NONE)
}

/// The document's tree, within the size limit; for YAML with its merge keys applied.
fn read<'t>(text: &'t str, format: Format, limits: &Limits) -> Result<Node<'t>, ParseErrors> {
    check_size(text, limits)?;
    match format {
        Format::Json => tree::from_json(text).map_err(|e| {
            let (line, column) = (e.line(), e.column());
            let full = e.to_string();
            let suffix = format!(" at line {line} column {column}");
            let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
            ParseErrors::of(vec![ParseError::Syntax { line, column, message }])
        }),
        Format::Yaml => {
            // Straight into the tree, like JSON, so that repeated keys reach the walk and
            // are reported with their paths (yaml_serde's own Value would reject them,
            // placed only at the start of the enclosing mapping).
            let mut root = tree::from_yaml(text).map_err(yaml_error)?;
            tree::apply_merge_keys(&mut root);
            Ok(root)
        }
    }
}

fn yaml_error(e: crate::yaml::YamlError) -> ParseErrors {
    let full = e.to_string();
    let error = match e.location() {
        Some((line, column)) => {
            // libyaml puts the position mid-message ("… at line 6 column 1, while …").
            let position = format!(" at line {line} column {column}");
            let message = full.replacen(&position, "", 1);
            let message = message.strip_prefix(&format!("line {line}: ")).unwrap_or(&message).to_owned();
            ParseError::Syntax { line, column, message }
        }
        // Errors about the whole document (an alias repetition limit) have no place.
        None => field("$".to_owned(), full),
    };
    ParseErrors::of(vec![error])
}

/// A problem with the document as a whole, at `$`.
pub(super) fn whole_document_error(message: String) -> ParseErrors {
    ParseErrors::of(vec![field("$".into(), message)])
}

fn check_size(text: &str, limits: &Limits) -> Result<(), ParseErrors> {
    if text.len() > limits.max_bytes {
        let limit = LimitExceeded { limit: LimitKind::MaxBytes, max: limits.max_bytes, found: text.len() };
        return Err(ParseErrors::of(vec![ParseError::Limit(limit)]));
    }
    Ok(())
}

fn field(path: String, message: impl Into<String>) -> ParseError {
    ParseError::Field(FieldError { path, message: message.into() })
}

// ---------------------------------------------------------------------------------------
// The walk.

const WORKFLOW_FIELDS: [&str; 12] = [
    "id",
    "name",
    "version",
    "description",
    "created_at",
    "steps",
    "dependencies",
    "defaults",
    "timeout",
    "error_handling",
    "tags",
    "metadata",
];
/// The fields of `defaults` that mean something; its other keys only hold YAML anchors.
const DEFAULTS_FIELDS: [&str; 2] = ["target", "targets"];
const TARGET_KINDS: [&str; 3] = ["http", "lambda", "agent"];
const STEP_FIELDS: [&str; 10] = [
    "id",
    "name",
    "type",
    "agent_id",
    "inputs",
    "outputs",
    "parameters",
    "timeout",
    "retry_policy",
    "estimate",
];
const RETRY_FIELDS: [&str; 4] =
    ["max_attempts", "backoff_factor", "initial_delay_seconds", "max_delay_seconds"];

/// What pass one learns about each step: its id and outputs, which other steps refer to.
struct Head {
    id: Option<StepId>,
    outputs: Vec<String>,
}

/// The workflow's `defaults`: service targets for steps that name none.
#[derive(Default)]
struct Defaults<'n> {
    target: Option<ServiceTarget>,
    /// Step id → target, with the path of the entry.
    targets: Vec<(&'n str, String, ServiceTarget)>,
}

/// The graph as far as a document with errors could be read, for its cycles. A step
/// whose id could not be read is named by its path.
struct PartialGraph {
    ids: Vec<StepId>,
    inputs: Vec<Vec<String>>,
    edges: Vec<Edge>,
}

impl StepGraph for PartialGraph {
    fn step_count(&self) -> usize {
        self.ids.len()
    }

    fn edges(&self) -> &[Edge] {
        &self.edges
    }

    fn id(&self, step: StepIndex) -> &StepId {
        &self.ids[step.index()]
    }

    fn input(&self, step: StepIndex, input: u32) -> &str {
        &self.inputs[step.index()][input as usize]
    }
}

/// A condition's branch step, checked once every edge is known.
struct BranchCheck {
    condition: StepIndex,
    target: StepIndex,
    path: String,
}

struct Walker<'n> {
    /// The first [`MAX_REPORTED`] problems; `found` counts them all.
    errors: Vec<ParseError>,
    found: usize,
    /// Step id → first step with it.
    ids: HashMap<&'n str, StepIndex>,
    /// Output name → (producing step, its position in that step's outputs).
    producers: HashMap<&'n str, (StepIndex, usize)>,
    branch_checks: Vec<BranchCheck>,
    /// Data edges, found while reading each step's inputs.
    data_edges: Vec<Edge>,
    /// Inputs no step produces, in order of first use.
    required: Vec<String>,
    required_seen: HashSet<&'n str>,
    /// What could be read of group steps whose step lists have errors: for the cycles.
    partial_groups: Vec<(StepIndex, StepType, Vec<StepIndex>)>,
    /// The cycles of the graph of a document with errors.
    cycles: Vec<Cycle>,
}

/// A set for spotting repeats in one list: a linear scan over a fixed array while the
/// list is short (most are), a hash set beyond. Allocates nothing for short lists.
struct Seen<T> {
    small: [Option<T>; 16],
    len: usize,
    large: Option<HashSet<T>>,
}

impl<T: Copy> Default for Seen<T> {
    fn default() -> Self {
        Self { small: [None; 16], len: 0, large: None }
    }
}

impl<T: Copy + Eq + std::hash::Hash> Seen<T> {
    /// False if `item` was seen before.
    fn insert(&mut self, item: T) -> bool {
        if let Some(large) = &mut self.large {
            return large.insert(item);
        }
        if self.small[..self.len].contains(&Some(item)) {
            return false;
        }
        if self.len < self.small.len() {
            self.small[self.len] = Some(item);
            self.len += 1;
        } else {
            let mut large: HashSet<T> = self.small.iter().flatten().copied().collect();
            large.insert(item);
            self.large = Some(large);
        }
        true
    }
}

fn walk<'n>(root: &'n Node<'n>, limits: &Limits) -> Result<Workflow, ParseErrors> {
    let mut w = Walker {
        errors: Vec::new(),
        found: 0,
        ids: HashMap::new(),
        producers: HashMap::new(),
        branch_checks: Vec::new(),
        data_edges: Vec::new(),
        required: Vec::new(),
        required_seen: HashSet::new(),
        partial_groups: Vec::new(),
        cycles: Vec::new(),
    };
    match w.build(root, limits) {
        Some(workflow) if w.found == 0 => Ok(workflow),
        _ => {
            if w.found > w.errors.len() {
                let more = w.found - w.errors.len();
                w.errors.push(field("$".into(), format!("{more} more problems, not listed")));
            }
            Err(ParseErrors { errors: w.errors, cycles: w.cycles })
        }
    }
}

impl<'n> Walker<'n> {
    fn error(&mut self, loc: &Loc<'_>, message: impl Into<String>) {
        if self.errors.len() < MAX_REPORTED {
            self.push_error(field(loc.render(), message));
        } else {
            self.found += 1;
        }
    }

    /// Records a problem: the first [`MAX_REPORTED`] are kept, all are counted.
    fn push_error(&mut self, error: ParseError) {
        self.found += 1;
        if self.errors.len() < MAX_REPORTED {
            self.errors.push(error);
        }
    }

    fn build(&mut self, root: &'n Node<'n>, limits: &Limits) -> Option<Workflow> {
        let Node::Map(entries) = root else {
            self.type_error(root, &ROOT, "an object (a workflow)");
            return None;
        };
        let [
            id,
            name,
            version,
            description,
            created_at,
            steps,
            dependencies,
            defaults,
            timeout,
            error_handling,
            tags,
            metadata,
        ] = self.fields(entries, &ROOT, &WORKFLOW_FIELDS, "a workflow");

        let id = self.required(id, &ROOT, "id").and_then(|node| self.label(node, &ROOT.key("id")));
        let name = self.required(name, &ROOT, "name").and_then(|node| self.label(node, &ROOT.key("name")));
        let version = match present(version) {
            Some(node) => {
                self.version(node, &ROOT.key("version")).and_then(|v| self.safe(v, &ROOT.key("version")))
            }
            None => Some("1.0.0"),
        };
        let description = present(description).and_then(|n| self.string(n, &ROOT.key("description")));
        let created_at = present(created_at).and_then(|n| self.string(n, &ROOT.key("created_at")));
        let timeout = present(timeout).and_then(|n| self.seconds(n, &ROOT.key("timeout")));
        let error_handling = match present(error_handling) {
            None => ErrorHandling::Stop,
            Some(node) => match self.string(node, &ROOT.key("error_handling")) {
                Some("stop") => ErrorHandling::Stop,
                Some("continue") => ErrorHandling::Continue,
                Some(other) => {
                    let message = format!("must be \"stop\" or \"continue\", not {other:?}");
                    self.error(&ROOT.key("error_handling"), message);
                    ErrorHandling::Stop
                }
                None => ErrorHandling::Stop,
            },
        };
        let tags = present(tags).map_or_else(Vec::new, |node| {
            self.list(node, &ROOT.key("tags"), "a list of strings", |w, item, loc| {
                w.string(item, loc).map(str::to_owned)
            })
        });
        let metadata = present(metadata)
            .map_or_else(Map::new, |node| self.free_object(node, &ROOT.key("metadata")).unwrap_or_default());

        let steps_loc = ROOT.key("steps");
        let step_nodes: &'n [Node<'n>] = match self.required(steps, &ROOT, "steps") {
            Some(Node::Seq(items)) if items.is_empty() => {
                self.error(&steps_loc, "must list at least one step");
                &[]
            }
            Some(Node::Seq(items)) => items,
            Some(other) => {
                self.type_error(other, &steps_loc, "a list of steps");
                &[]
            }
            None => &[],
        };
        // Step indices are u32; cap there even if the configured limit is higher.
        let max_steps = limits.max_steps.min(u32::MAX as usize);
        if step_nodes.len() > max_steps {
            let limit = LimitExceeded { limit: LimitKind::MaxSteps, max: max_steps, found: step_nodes.len() };
            self.push_error(ParseError::Limit(limit));
            return None;
        }

        self.ids.reserve(step_nodes.len());
        self.producers.reserve(step_nodes.len());
        let heads = self.heads(step_nodes, &steps_loc);
        let ids: Vec<Option<StepId>> = heads.iter().map(|h| h.id.clone()).collect();
        // Each step, or what could be read of it (its inputs) when it has errors.
        let parsed: Vec<Result<Step, Vec<String>>> = step_nodes
            .iter()
            .zip(heads)
            .enumerate()
            .map(|(i, (node, head))| self.step(node, &steps_loc.index(i), StepIndex::new(i), head))
            .collect();
        let mut explicit: Vec<Vec<StepIndex>> = vec![Vec::new(); parsed.len()];
        let mut edge_count = 0usize;
        if let Some(node) = present(dependencies) {
            edge_count += self.dependencies(node, &mut explicit);
        }
        let defaults = present(defaults).map(|node| self.defaults(node)).unwrap_or_default();
        let mut parsed = parsed;
        self.apply_defaults(defaults, &mut parsed);

        if parsed.iter().all(Result::is_ok) && self.partial_groups.is_empty() {
            let mut steps: Vec<Step> = parsed.into_iter().flatten().collect();
            for (step, deps) in steps.iter_mut().zip(explicit) {
                step.dependencies = deps;
            }
            let groups: Vec<(StepIndex, StepType, &[StepIndex])> = steps
                .iter()
                .enumerate()
                .filter(|(_, s)| s.kind.step_type().is_group())
                .map(|(i, s)| (StepIndex::new(i), s.kind.step_type(), s.kind.grouped_steps()))
                .collect();
            let deps: Vec<&[StepIndex]> = steps.iter().map(|s| s.dependencies.as_slice()).collect();
            let edges = self.edges(&deps, &groups, edge_count, limits)?;
            self.check_branches(&steps, &edges);
            if self.found != 0 {
                // The graph is whole: its cycles are reported with the other problems.
                let graph = PartialGraph {
                    ids: steps.iter().map(|s| s.id.clone()).collect(),
                    inputs: steps.into_iter().map(|s| s.inputs).collect(),
                    edges,
                };
                self.cycles = cycles_of(&graph);
                return None;
            }
            let required_inputs = std::mem::take(&mut self.required);
            let index = steps.iter().enumerate().map(|(i, s)| (s.id.clone(), StepIndex::new(i))).collect();
            return Some(Workflow {
                id: id?.to_owned(),
                name: name?.to_owned(),
                version: version?.to_owned(),
                description: description.map(str::to_owned),
                created_at: created_at.map(str::to_owned),
                timeout,
                error_handling,
                tags,
                metadata,
                steps,
                index,
                edges,
                required_inputs,
            });
        }

        // Some step has errors: the graph of what could be read, for its cycles.
        let partial_groups = std::mem::take(&mut self.partial_groups);
        let mut groups: Vec<(StepIndex, StepType, &[StepIndex])> = parsed
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().ok().map(|s| (i, s)))
            .filter(|(_, s)| s.kind.step_type().is_group())
            .map(|(i, s)| (StepIndex::new(i), s.kind.step_type(), s.kind.grouped_steps()))
            .collect();
        groups.extend(partial_groups.iter().map(|(i, t, steps)| (*i, *t, steps.as_slice())));
        groups.sort_unstable_by_key(|(i, _, _)| *i);
        let deps: Vec<&[StepIndex]> = explicit.iter().map(Vec::as_slice).collect();
        let edges = self.edges(&deps, &groups, edge_count, limits)?;
        let graph = PartialGraph {
            ids: ids
                .into_iter()
                .enumerate()
                .map(|(i, id)| id.unwrap_or_else(|| StepId::of_unreadable(&steps_loc.index(i).render())))
                .collect(),
            inputs: parsed
                .into_iter()
                .map(|s| match s {
                    Ok(step) => step.inputs,
                    Err(inputs) => inputs,
                })
                .collect(),
            edges,
        };
        self.cycles = cycles_of(&graph);
        None
    }

    /// Pass one: every step's id and outputs, so that pass two can resolve references
    /// to steps declared later in the file.
    fn heads(&mut self, nodes: &'n [Node<'n>], steps_loc: &Loc<'_>) -> Vec<Head> {
        let mut heads = Vec::with_capacity(nodes.len());
        for (i, node) in nodes.iter().enumerate() {
            let loc = steps_loc.index(i);
            let index = StepIndex::new(i);
            let mut head = Head { id: None, outputs: Vec::new() };
            let Node::Map(entries) = node else {
                self.type_error(node, &loc, "an object (a step)");
                heads.push(head);
                continue;
            };
            // Repeated keys are reported in pass two; here the first one counts.
            let id_node = entries.iter().find(|(k, _)| k == "id").map(|(_, v)| v);
            match id_node {
                None | Some(Node::Null) => {}
                Some(id_node) => {
                    let id_loc = loc.key("id");
                    if let Some(raw) = self.string(id_node, &id_loc) {
                        match StepId::parse(raw) {
                            Err(message) => self.error(&id_loc, message),
                            Ok(id) => match self.ids.entry(raw) {
                                MapEntry::Vacant(slot) => {
                                    slot.insert(index);
                                    head.id = Some(id);
                                }
                                MapEntry::Occupied(first) => {
                                    let first = first.get().index();
                                    let message =
                                        format!("duplicate step id {raw:?}: also the id of $.steps[{first}]");
                                    self.error(&id_loc, message);
                                }
                            },
                        }
                    }
                }
            }
            if let Some(outputs) = present(entries.iter().find(|(k, _)| k == "outputs").map(|(_, v)| v)) {
                head.outputs = self.outputs(outputs, &loc.key("outputs"), index);
            }
            heads.push(head);
        }
        heads
    }

    fn outputs(&mut self, node: &'n Node<'n>, loc: &Loc<'_>, step: StepIndex) -> Vec<String> {
        let Node::Seq(items) = node else {
            self.type_error(node, loc, "a list of data names");
            return Vec::new();
        };
        let mut outputs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_loc = loc.index(i);
            let Some(name) = self.non_blank(item, &item_loc) else { continue };
            match self.producers.entry(name) {
                MapEntry::Vacant(slot) => {
                    slot.insert((step, i));
                    outputs.push(name.to_owned());
                }
                MapEntry::Occupied(first) => {
                    let (other, position) = *first.get();
                    let message = if other == step {
                        format!("output {name:?} is listed twice (also at [{position}])")
                    } else {
                        format!(
                            "output {name:?} is also produced by $.steps[{}].outputs[{position}]: a step \
                             reading it would not know which to wait for",
                            other.index()
                        )
                    };
                    self.error(&item_loc, message);
                }
            }
        }
        outputs
    }

    /// Pass two: one step's every field. A step with errors gives what could be read of
    /// its inputs instead, for the graph.
    fn step(
        &mut self,
        node: &'n Node<'n>,
        loc: &Loc<'_>,
        index: StepIndex,
        head: Head,
    ) -> Result<Step, Vec<String>> {
        // Not an object: already reported by pass one.
        let Node::Map(entries) = node else { return Err(Vec::new()) };
        let [
            id,
            name,
            step_type,
            agent_id,
            inputs,
            outputs,
            parameters,
            timeout_node,
            retry_node,
            estimate_node,
        ] = self.fields(entries, loc, &STEP_FIELDS, "a step");
        if id.is_none_or(|n| matches!(n, Node::Null)) {
            self.error(&loc.key("id"), "is required");
        }
        let name = self.required(name, loc, "name").and_then(|n| self.label(n, &loc.key("name")));
        let type_loc = loc.key("type");
        let step_type = self.required(step_type, loc, "type").and_then(|node| {
            let raw = self.string(node, &type_loc)?;
            let found = StepType::from_name(raw);
            if found.is_none() {
                let message =
                    crate::validation::unknown_value("step type", raw, &StepType::ALL.map(StepType::as_str));
                self.error(&type_loc, message);
            }
            found
        });

        let inputs_loc = loc.key("inputs");
        // Data edges are resolved here, while each name is at hand: one lookup per input.
        let inputs: Vec<String> = present(inputs).map_or_else(Vec::new, |node| {
            let mut seen = Seen::default();
            let mut position = 0u32;
            self.list(node, &inputs_loc, "a list of data names", |w, item, item_loc| {
                let name = w.non_blank(item, item_loc)?;
                if !seen.insert(name) {
                    w.error(item_loc, format!("input {name:?} is listed twice"));
                    return None;
                }
                match w.producers.get(name) {
                    Some(&(from, _)) => {
                        let reason = EdgeReason::Data { input: position };
                        w.data_edges.push(Edge { from, to: index, reason });
                    }
                    None => {
                        if w.required_seen.insert(name) {
                            w.required.push(name.to_owned());
                        }
                    }
                }
                position += 1;
                Some(name.to_owned())
            })
        });
        let timeout = present(timeout_node).and_then(|n| self.seconds(n, &loc.key("timeout")));
        let estimate = present(estimate_node).and_then(|n| self.seconds(n, &loc.key("estimate")));
        let retry = match present(retry_node) {
            Some(node) => self.retry_policy(node, &loc.key("retry_policy")),
            None => Some(RetryPolicy::default()),
        };

        // Fields that make no sense for the type are errors, never silently ignored.
        let Some(step_type) = step_type else { return Err(inputs) };
        if step_type != StepType::Agent && present(agent_id).is_some() {
            let message = match step_type {
                StepType::Loop => "a loop step names its agent in parameters.agent_id",
                _ => "only agent steps take agent_id",
            };
            self.error(&loc.key("agent_id"), message);
        }
        // How many outputs were declared; None if `outputs` was not a list (reported).
        let declared = match present(outputs) {
            None => Some(0),
            Some(Node::Seq(items)) => Some(items.len()),
            Some(_) => None,
        };
        let outputs_loc = loc.key("outputs");
        if step_type.is_group() {
            let does_no_work =
                |field: &str| format!("a {step_type} step does no work of its own, so it takes no {field}");
            if !inputs.is_empty() {
                self.error(&inputs_loc, does_no_work("inputs"));
            }
            if declared.is_some_and(|n| n > 0) {
                let message = format!(
                    "a {step_type} step's outputs are those of the steps it lists; declare them there"
                );
                self.error(&outputs_loc, message);
            }
            for (node, field) in
                [(timeout_node, "timeout"), (retry_node, "retry_policy"), (estimate_node, "estimate")]
            {
                if present(node).is_some() {
                    self.error(&loc.key(field), does_no_work(field));
                }
            }
        }
        if step_type == StepType::Condition {
            if present(retry_node).is_some() {
                let message = "a condition is evaluated, not invoked: it takes no retry_policy";
                self.error(&loc.key("retry_policy"), message);
            }
            if declared.is_some_and(|n| n > 1) {
                self.error(&outputs_loc, "a condition step has at most one output: its result");
            }
        }
        if step_type == StepType::Squad {
            // The squad's own limits and failure policy govern its task.
            for (node, field, instead) in
                [(timeout_node, "timeout", "limits.deadline"), (retry_node, "retry_policy", "on_failure")]
            {
                if present(node).is_some() {
                    let message =
                        format!("a squad step takes no {field}: the squad's {instead} governs its task");
                    self.error(&loc.key(field), message);
                }
            }
        }
        if step_type == StepType::Loop && declared.is_some_and(|n| n != 1) {
            self.error(&outputs_loc, "a loop step collects its results into exactly one output");
        }

        let kind = self.kind(step_type, agent_id, parameters, loc, index, &inputs);
        let (Some(id), Some(name), Some(kind), Some(retry_policy)) = (head.id, name, kind, retry) else {
            return Err(inputs);
        };
        Ok(Step {
            id,
            name: name.to_owned(),
            kind,
            inputs,
            outputs: head.outputs,
            dependencies: Vec::new(),
            timeout,
            retry_policy,
            estimate,
        })
    }

    fn kind(
        &mut self,
        step_type: StepType,
        agent_id: Option<&'n Node<'n>>,
        parameters: Option<&'n Node<'n>>,
        loc: &Loc<'_>,
        this: StepIndex,
        inputs: &[String],
    ) -> Option<StepKind> {
        let params_loc = loc.key("parameters");
        // For every type but agent, parameters is a fixed set of fields; absent reads as {}.
        let empty: &'n [Entry<'n>] = &[];
        let params = match present(parameters) {
            None => Some(empty),
            Some(Node::Map(entries)) => Some(entries.as_slice()),
            Some(other) => {
                self.type_error(other, &params_loc, "an object");
                None
            }
        };
        match step_type {
            StepType::Agent => {
                let agent_id = self
                    .required(agent_id, loc, "agent_id")
                    .and_then(|n| self.non_blank(n, &loc.key("agent_id")));
                let parameters = match present(parameters) {
                    None => Some(Map::new()),
                    Some(node) => self.free_object(node, &params_loc),
                };
                Some(StepKind::Agent { agent_id: agent_id?.to_owned(), parameters: parameters? })
            }
            StepType::Service => {
                let [target] = self.fields(params?, &params_loc, &["target"], "a service step's parameters");
                // No target: valid, resolved from `defaults` or reported as not runnable.
                let target = match present(target) {
                    None => None,
                    Some(node) => Some(ResolvedTarget {
                        target: self.service_target(node, &params_loc.key("target"))?,
                        source: TargetSource::Step,
                    }),
                };
                Some(StepKind::Service { target })
            }
            StepType::Condition => {
                let [expression, when_true, when_false] = self.fields(
                    params?,
                    &params_loc,
                    &["expression", "when_true", "when_false"],
                    "a condition step's parameters",
                );
                let expression_loc = params_loc.key("expression");
                let expression = self
                    .required(expression, &params_loc, "expression")
                    .and_then(|n| self.non_blank(n, &expression_loc))
                    .and_then(|text| match super::condition::compile(text) {
                        Ok(_) => Some(text),
                        Err(message) => {
                            self.error(&expression_loc, message);
                            None
                        }
                    });
                let mut taken = HashMap::new();
                let mut branch = |w: &mut Self, node: Option<&'n Node<'n>>, name: &'static str| {
                    let branch_loc = params_loc.key(name);
                    let Some(node) = present(node) else { return Some(Vec::new()) };
                    let before = w.found;
                    let targets = w.list(node, &branch_loc, "a list of step ids", |w, item, item_loc| {
                        let target = w.step_ref(item, item_loc)?;
                        if target == this {
                            w.error(item_loc, "a condition cannot branch to itself");
                            return None;
                        }
                        if let Some(other) = taken.insert(target, name) {
                            let message = if other == name {
                                "is listed twice".to_owned()
                            } else {
                                format!("is already in {other}: a step belongs to one branch at most")
                            };
                            w.error(item_loc, message);
                            return None;
                        }
                        w.branch_checks.push(BranchCheck {
                            condition: this,
                            target,
                            path: item_loc.render(),
                        });
                        Some(target)
                    });
                    (w.found == before).then_some(targets)
                };
                let when_true = branch(self, when_true, "when_true");
                let when_false = branch(self, when_false, "when_false");
                Some(StepKind::Condition {
                    expression: expression?.to_owned(),
                    when_true: when_true?,
                    when_false: when_false?,
                })
            }
            StepType::Loop => {
                let [over, agent_id, max_concurrency] = self.fields(
                    params?,
                    &params_loc,
                    &["over", "agent_id", "max_concurrency"],
                    "a loop step's parameters",
                );
                let over_loc = params_loc.key("over");
                let over =
                    self.required(over, &params_loc, "over").and_then(|n| self.non_blank(n, &over_loc));
                if let Some(name) = over
                    && !inputs.iter().any(|input| input == name)
                {
                    self.error(&over_loc, format!("must name one of the step's inputs; {name:?} is not one"));
                }
                let agent_id = self
                    .required(agent_id, &params_loc, "agent_id")
                    .and_then(|n| self.non_blank(n, &params_loc.key("agent_id")));
                let max_concurrency = match present(max_concurrency) {
                    None => Some(10),
                    Some(node) => self.integer(node, &params_loc.key("max_concurrency"), 1, 100),
                };
                Some(StepKind::Loop {
                    over: over?.to_owned(),
                    agent_id: agent_id?.to_owned(),
                    max_concurrency: max_concurrency?,
                })
            }
            StepType::Squad => {
                let [squad, version] =
                    self.fields(params?, &params_loc, &["squad", "version"], "a squad step's parameters");
                let squad = self
                    .required(squad, &params_loc, "squad")
                    .and_then(|n| self.non_blank(n, &params_loc.key("squad")));
                let version = match present(version) {
                    None => Some(None),
                    Some(node) => self.version(node, &params_loc.key("version")).map(|v| Some(v.to_owned())),
                };
                Some(StepKind::Squad { squad: squad?.to_owned(), version: version? })
            }
            StepType::Parallel | StepType::Sequential => {
                let [steps] = self.fields(params?, &params_loc, &["steps"], "a group step's parameters");
                let steps_loc = params_loc.key("steps");
                let node = self.required(steps, &params_loc, "steps")?;
                let before = self.found;
                let mut seen = Seen::default();
                let steps = self.list(node, &steps_loc, "a list of step ids", |w, item, item_loc| {
                    let target = w.step_ref(item, item_loc)?;
                    if target == this {
                        w.error(item_loc, format!("a {step_type} step cannot list itself"));
                        return None;
                    }
                    if !seen.insert(target) {
                        w.error(item_loc, "is listed twice");
                        return None;
                    }
                    Some(target)
                });
                if matches!(node, Node::Seq(items) if items.is_empty()) {
                    self.error(&steps_loc, "must list at least one step");
                }
                if self.found != before {
                    // What could be read still orders steps: keep it for the cycles.
                    self.partial_groups.push((this, step_type, steps));
                    return None;
                }
                Some(match step_type {
                    StepType::Parallel => StepKind::Parallel { steps },
                    _ => StepKind::Sequential { steps },
                })
            }
        }
    }

    fn service_target(&mut self, node: &'n Node<'n>, loc: &Loc<'_>) -> Option<ServiceTarget> {
        let Node::Map(entries) = node else {
            self.type_error(node, loc, "an object");
            return None;
        };
        let [kind, url, function, agent_id] =
            self.fields(entries, loc, &["kind", "url", "function", "agent_id"], "a service target");
        let kind_loc = loc.key("kind");
        let kind = self.required(kind, loc, "kind").and_then(|n| self.string(n, &kind_loc))?;
        // Each kind takes one field; the others are errors, never ignored.
        let own = match kind {
            "http" => "url",
            "lambda" => "function",
            "agent" => "agent_id",
            other => {
                self.error(&kind_loc, crate::validation::unknown_value("target kind", other, &TARGET_KINDS));
                return None;
            }
        };
        for (name, node, message) in [
            ("url", url, "only http targets take a url"),
            ("function", function, "only lambda targets take a function"),
            ("agent_id", agent_id, "only agent targets take an agent_id"),
        ] {
            if name != own && present(node).is_some() {
                self.error(&loc.key(name), message);
            }
        }
        match kind {
            "http" => {
                let url_loc = loc.key("url");
                let raw = self.required(url, loc, "url").and_then(|n| self.string(n, &url_loc))?;
                match url::Url::parse(raw) {
                    Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
                        Some(ServiceTarget::Http { url })
                    }
                    Ok(_) => {
                        self.error(&url_loc, "must be an http:// or https:// URL");
                        None
                    }
                    Err(e) => {
                        self.error(&url_loc, format!("is not a URL: {e}"));
                        None
                    }
                }
            }
            "lambda" => {
                let function = self
                    .required(function, loc, "function")
                    .and_then(|n| self.non_blank(n, &loc.key("function")))?;
                Some(ServiceTarget::Lambda { function: function.to_owned() })
            }
            _ => {
                let agent_id = self
                    .required(agent_id, loc, "agent_id")
                    .and_then(|n| self.non_blank(n, &loc.key("agent_id")))?;
                Some(ServiceTarget::Agent { agent_id: agent_id.to_owned() })
            }
        }
    }

    /// The workflow's `defaults`. Its own fields are checked (a near miss of one is an
    /// error); every other key only holds YAML anchors for the steps, and is not read.
    fn defaults(&mut self, node: &'n Node<'n>) -> Defaults<'n> {
        let loc = ROOT.key("defaults");
        let mut out = Defaults::default();
        let Node::Map(entries) = node else {
            self.type_error(node, &loc, "an object");
            return out;
        };
        let mut seen = Seen::default();
        for (key, value) in entries {
            let key_loc = loc.key(key);
            let key: &str = key.as_ref();
            if !DEFAULTS_FIELDS.contains(&key) {
                if crate::validation::did_you_mean(key, &DEFAULTS_FIELDS).is_some() {
                    let message = unknown_field_message(key, &DEFAULTS_FIELDS, "defaults");
                    self.error(
                        &key_loc,
                        format!("{message} (other keys are not read: they hold YAML anchors)"),
                    );
                }
                continue;
            }
            if !seen.insert(key) {
                self.error(&key_loc, "duplicate key");
                continue;
            }
            if key == "target" {
                if present(Some(value)).is_some() {
                    out.target = self.service_target(value, &key_loc);
                }
                continue;
            }
            match present(Some(value)) {
                None => {}
                Some(Node::Map(targets)) => {
                    let mut ids = HashSet::with_capacity(targets.len());
                    for (step, target) in targets {
                        let step_loc = key_loc.key(step);
                        if !ids.insert(step.as_ref()) {
                            self.error(&step_loc, "duplicate key");
                            continue;
                        }
                        if let Some(target) = self.service_target(target, &step_loc) {
                            out.targets.push((step, step_loc.render(), target));
                        }
                    }
                }
                Some(other) => self.type_error(other, &key_loc, "an object mapping step ids to targets"),
            }
        }
        out
    }

    /// Gives each service step without a target its `defaults.targets` entry, else
    /// `defaults.target`; checks that every entry names a service step without its own.
    fn apply_defaults(&mut self, defaults: Defaults<'n>, steps: &mut [Result<Step, Vec<String>>]) {
        let mut by_step: HashMap<StepIndex, ServiceTarget> = HashMap::with_capacity(defaults.targets.len());
        for (id, path, target) in defaults.targets {
            let Some(&index) = self.ids.get(id) else {
                let known: Vec<&str> = self.ids.keys().copied().collect();
                let message = format!("unknown step {id:?}{}", crate::validation::suggestion(id, &known));
                self.push_error(field(path, message));
                continue;
            };
            // A step with errors of its own: its type may be unknown; nothing to check.
            let Ok(step) = &steps[index.index()] else { continue };
            match &step.kind {
                StepKind::Service { target: None } => {
                    by_step.insert(index, target);
                }
                StepKind::Service { target: Some(_) } => {
                    let message = format!(
                        "step {id:?} has its own parameters.target ($.steps[{}]); keep one of the two",
                        index.index()
                    );
                    self.push_error(field(path, message));
                }
                other => {
                    let message = format!(
                        "step {id:?} is {} step; only service steps take a target",
                        article(other.step_type().as_str())
                    );
                    self.push_error(field(path, message));
                }
            }
        }
        for (i, step) in steps.iter_mut().enumerate() {
            let Ok(Step { kind: StepKind::Service { target: target @ None }, .. }) = step else { continue };
            *target = match by_step.remove(&StepIndex::new(i)) {
                Some(target) => Some(ResolvedTarget { target, source: TargetSource::DefaultForStep }),
                None => defaults
                    .target
                    .clone()
                    .map(|target| ResolvedTarget { target, source: TargetSource::Default }),
            };
        }
    }

    fn retry_policy(&mut self, node: &'n Node<'n>, loc: &Loc<'_>) -> Option<RetryPolicy> {
        let Node::Map(entries) = node else {
            self.type_error(node, loc, "an object");
            return None;
        };
        let [max_attempts, backoff_factor, initial_delay, max_delay] =
            self.fields(entries, loc, &RETRY_FIELDS, "a retry policy");
        let defaults = RetryPolicy::default();
        let before = self.found;
        let max_attempts = present(max_attempts).map_or(Some(defaults.max_attempts), |n| {
            self.integer(n, &loc.key("max_attempts"), 1, RetryPolicy::MAX_ATTEMPTS)
        });
        let backoff_factor = present(backoff_factor).map_or(Some(defaults.backoff_factor), |n| {
            let factor_loc = loc.key("backoff_factor");
            let factor = self.number(n, &factor_loc)?;
            if factor < 1.0 {
                self.error(&factor_loc, "must be at least 1 (1 keeps the delay constant)");
                return None;
            }
            Some(factor)
        });
        let delay = |w: &mut Self, node: Option<&'n Node<'n>>, name: &str, default: f64| {
            let Some(node) = present(node) else { return Some(default) };
            let delay_loc = loc.key(name);
            let seconds = w.number(node, &delay_loc)?;
            if !(0.0..=Seconds::MAX).contains(&seconds) {
                w.error(&delay_loc, "must be 0 to 31536000 seconds");
                return None;
            }
            Some(seconds)
        };
        let initial = delay(self, initial_delay, "initial_delay_seconds", defaults.initial_delay_seconds);
        let max = delay(self, max_delay, "max_delay_seconds", defaults.max_delay_seconds);
        if let (Some(initial), Some(max)) = (initial, max)
            && max < initial
        {
            let message = if present(max_delay).is_some() {
                "must be at least initial_delay_seconds"
            } else {
                "exceeds max_delay_seconds (300 by default); set max_delay_seconds too"
            };
            let at = if present(max_delay).is_some() { "max_delay_seconds" } else { "initial_delay_seconds" };
            self.error(&loc.key(at), message);
        }
        if self.found != before {
            return None;
        }
        Some(RetryPolicy {
            max_attempts: max_attempts?,
            backoff_factor: backoff_factor?,
            initial_delay_seconds: initial?,
            max_delay_seconds: max?,
        })
    }

    /// Fills each step's explicit dependencies (`explicit[i]`: step i's, in listed order);
    /// returns how many entries there were.
    fn dependencies(&mut self, node: &'n Node<'n>, explicit: &mut [Vec<StepIndex>]) -> usize {
        let loc = ROOT.key("dependencies");
        let Node::Map(entries) = node else {
            self.type_error(node, &loc, "an object mapping step ids to lists of step ids");
            return 0;
        };
        let mut count = 0;
        let mut keys: HashSet<&str> = HashSet::with_capacity(entries.len());
        for (key, value) in entries {
            let key_loc = loc.key(key);
            if !keys.insert(key.as_ref()) {
                self.error(&key_loc, "duplicate key: merge the two lists");
                continue;
            }
            let step = match self.ids.get(key.as_ref()) {
                Some(index) => Some(*index),
                None => {
                    self.error(&key_loc, format!("unknown step {:?}", key.as_ref()));
                    None
                }
            };
            let mut seen = Seen::default();
            let deps = self.list(value, &key_loc, "a list of step ids", |w, item, item_loc| {
                let dep = w.step_ref(item, item_loc)?;
                if !seen.insert(dep) {
                    w.error(item_loc, "is listed twice");
                    return None;
                }
                Some(dep)
            });
            count += deps.len();
            if let Some(step) = step {
                explicit[step.index()] = deps;
            }
        }
        count
    }

    /// Every edge: explicit dependencies (`deps[i]`: step i's), then data edges, then the
    /// edges of the `groups` (in file order), each in file order. `None` if there are too many.
    fn edges(
        &mut self,
        deps: &[&[StepIndex]],
        groups: &[(StepIndex, StepType, &[StepIndex])],
        explicit: usize,
        limits: &Limits,
    ) -> Option<Vec<Edge>> {
        let data = self.data_edges.len();
        let group: usize = groups.iter().map(|(_, _, steps)| steps.len()).sum();
        let total = explicit + data + group;
        if total > limits.max_edges {
            let limit = LimitExceeded { limit: LimitKind::MaxEdges, max: limits.max_edges, found: total };
            self.push_error(ParseError::Limit(limit));
            return None;
        }
        let mut edges = Vec::with_capacity(total);
        for (i, deps) in deps.iter().enumerate() {
            let to = StepIndex::new(i);
            edges.extend(deps.iter().map(|&from| Edge { from, to, reason: EdgeReason::Dependency }));
        }
        edges.append(&mut self.data_edges);
        for &(group, step_type, steps) in groups {
            let reason = EdgeReason::Group { group };
            if step_type == StepType::Sequential {
                edges.extend(steps.windows(2).map(|pair| Edge { from: pair[0], to: pair[1], reason }));
                if let Some(&last) = steps.last() {
                    edges.push(Edge { from: last, to: group, reason });
                }
            } else {
                edges.extend(steps.iter().map(|&from| Edge { from, to: group, reason }));
            }
        }
        Some(edges)
    }

    /// A condition's branch steps must depend on it directly, by any kind of edge: the
    /// engine decides what to skip when the condition completes, among its dependents.
    fn check_branches(&mut self, steps: &[Step], edges: &[Edge]) {
        if self.branch_checks.is_empty() {
            return;
        }
        let wanted: HashSet<(StepIndex, StepIndex)> =
            self.branch_checks.iter().map(|c| (c.condition, c.target)).collect();
        let found: HashSet<(StepIndex, StepIndex)> =
            edges.iter().map(|e| (e.from, e.to)).filter(|pair| wanted.contains(pair)).collect();
        for check in std::mem::take(&mut self.branch_checks) {
            if !found.contains(&(check.condition, check.target)) {
                let message = format!(
                    "step {:?} must depend on condition {:?} directly (in dependencies, or by reading its output)",
                    steps[check.target.index()].id.as_str(),
                    steps[check.condition.index()].id.as_str()
                );
                self.push_error(field(check.path, message));
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // Field helpers. Each reports its own errors and returns None on one.

    /// Picks the named fields out of an object, reporting unknown and repeated keys.
    /// A present `null` is returned as such; [`present`] treats it as absent.
    fn fields<const N: usize>(
        &mut self,
        entries: &'n [Entry<'n>],
        loc: &Loc<'_>,
        names: &[&'static str; N],
        what: &str,
    ) -> [Option<&'n Node<'n>>; N] {
        let mut found = [None; N];
        for (key, value) in entries {
            match names.iter().position(|name| *name == key.as_ref()) {
                Some(i) if found[i].is_some() => self.error(&loc.key(key), "duplicate key"),
                // An invalid value is reported where it is read, with what was expected.
                Some(i) => found[i] = Some(value),
                None if matches!(value, Node::Invalid(_)) => self.type_error(value, &loc.key(key), ""),
                None => {
                    let message = unknown_field_message(key, names, what);
                    self.error(&loc.key(key), message);
                }
            }
        }
        found
    }

    fn required(&mut self, node: Option<&'n Node<'n>>, parent: &Loc<'_>, name: &str) -> Option<&'n Node<'n>> {
        match node {
            None => {
                self.error(&parent.key(name), "is required");
                None
            }
            Some(Node::Null) => {
                self.error(&parent.key(name), "is required (null given)");
                None
            }
            Some(node) => Some(node),
        }
    }

    fn type_error(&mut self, node: &Node<'_>, loc: &Loc<'_>, expected: &str) {
        match node {
            Node::Invalid(message) => self.error(loc, *message),
            other => self.error(loc, format!("must be {expected}, not {}", other.kind())),
        }
    }

    fn string(&mut self, node: &'n Node<'n>, loc: &Loc<'_>) -> Option<&'n str> {
        match node {
            Node::Str(s) => Some(s.as_ref()),
            other => {
                self.type_error(other, loc, "a string");
                None
            }
        }
    }

    fn non_blank(&mut self, node: &'n Node<'n>, loc: &Loc<'_>) -> Option<&'n str> {
        let s = self.string(node, loc)?;
        if s.trim().is_empty() {
            self.error(loc, "must not be empty");
            return None;
        }
        Some(s)
    }

    /// An id or a name: not blank, and nothing that hides or reorders text.
    fn label(&mut self, node: &'n Node<'n>, loc: &Loc<'_>) -> Option<&'n str> {
        let text = self.non_blank(node, loc)?;
        self.safe(text, loc)
    }

    fn safe(&mut self, text: &'n str, loc: &Loc<'_>) -> Option<&'n str> {
        if crate::validation::unsafe_char(text).is_some() {
            self.error(loc, crate::validation::UNSAFE_TEXT);
            return None;
        }
        Some(text)
    }

    fn version(&mut self, node: &'n Node<'n>, loc: &Loc<'_>) -> Option<&'n str> {
        if let Node::Number(n) = node {
            // YAML reads `version: 1.0` as a number; say how to keep the text.
            self.error(loc, format!("must be a string; write \"{n}\" in quotes"));
            return None;
        }
        self.string(node, loc)
    }

    fn number(&mut self, node: &'n Node<'n>, loc: &Loc<'_>) -> Option<f64> {
        match node {
            Node::Number(n) => n.as_f64(),
            other => {
                self.type_error(other, loc, "a number");
                None
            }
        }
    }

    fn seconds(&mut self, node: &'n Node<'n>, loc: &Loc<'_>) -> Option<Seconds> {
        let n = self.number(node, loc)?;
        Seconds::new(n).map_err(|message| self.error(loc, message)).ok()
    }

    /// A whole number in `min..=max`; `3.0` counts as whole.
    fn integer(&mut self, node: &'n Node<'n>, loc: &Loc<'_>, min: u32, max: u32) -> Option<u32> {
        let n = self.number(node, loc)?;
        if n.fract() != 0.0 || n < f64::from(min) || n > f64::from(max) {
            self.error(loc, format!("must be a whole number from {min} to {max}"));
            return None;
        }
        Some(n as u32)
    }

    /// A list whose every item `item` accepts; items it rejects are left out (and reported).
    fn list<T>(
        &mut self,
        node: &'n Node<'n>,
        loc: &Loc<'_>,
        expected: &str,
        mut item: impl FnMut(&mut Self, &'n Node<'n>, &Loc<'_>) -> Option<T>,
    ) -> Vec<T> {
        let Node::Seq(items) = node else {
            self.type_error(node, loc, expected);
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, node) in items.iter().enumerate() {
            if let Some(value) = item(self, node, &loc.index(i)) {
                out.push(value);
            }
        }
        out
    }

    fn step_ref(&mut self, node: &'n Node<'n>, loc: &Loc<'_>) -> Option<StepIndex> {
        let id = self.string(node, loc)?;
        match self.ids.get(id) {
            Some(index) => Some(*index),
            None => {
                self.error(loc, format!("unknown step {id:?}"));
                None
            }
        }
    }

    /// Any object, kept as JSON (metadata, an agent's parameters).
    fn free_object(&mut self, node: &'n Node<'n>, loc: &Loc<'_>) -> Option<Map<String, Value>> {
        match self.free_value(node, loc)? {
            Value::Object(map) => Some(map),
            _ => {
                self.type_error(node, loc, "an object");
                None
            }
        }
    }

    fn free_value(&mut self, node: &'n Node<'n>, loc: &Loc<'_>) -> Option<Value> {
        Some(match node {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::Str(s) => Value::String(s.as_ref().to_owned()),
            Node::Invalid(message) => {
                self.error(loc, *message);
                return None;
            }
            Node::Seq(items) => {
                let mut ok = true;
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match self.free_value(item, &loc.index(i)) {
                        Some(v) => out.push(v),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                Value::Array(out)
            }
            Node::Map(entries) => {
                let mut ok = true;
                let mut out = Map::new();
                for (key, value) in entries {
                    let key_loc = loc.key(key);
                    let Some(value) = self.free_value(value, &key_loc) else {
                        ok = false;
                        continue;
                    };
                    if out.insert(Cow::as_ref(key).to_owned(), value).is_some() {
                        self.error(&key_loc, "duplicate key");
                        ok = false;
                    }
                }
                if !ok {
                    return None;
                }
                Value::Object(out)
            }
        })
    }
}

/// `None` for an absent field and for an explicit `null`: the old system's files write
/// `null` for unset optional fields, and it means the same.
fn present<'n>(node: Option<&'n Node<'n>>) -> Option<&'n Node<'n>> {
    node.filter(|n| !matches!(n, Node::Null))
}

/// `a url`, `an agent_id`.
fn article(name: &str) -> String {
    let an = name.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {name}", if an { "an" } else { "a" })
}

fn unknown_field_message(key: &str, names: &[&str], what: &str) -> String {
    crate::validation::unknown_field(key, names, what)
}
