//! The validation report: what `POST /v1/workflows:validate` returns, as JSON.

use serde::Serialize;
use serde_json::Value;

use super::graph::{Cycle, CycleEdge, CycleErrors, ValidatedWorkflow};
use super::model::Workflow;
use super::parse::{
    Format, LimitKind, Limits, ParseError, ParseErrors, parse, parse_canonical, parse_with_canonical,
};
use super::plan::{Plan, plan};

/// Why a document is not a valid workflow: it did not parse, or its graph has cycles
/// (looked for only once it parses).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkflowError {
    #[error("{0}")]
    Parse(ParseErrors),
    #[error("{0}")]
    Cycles(CycleErrors),
}

/// A workflow document parsed once and checked: the validated workflow, and its canonical
/// form (JSON, keys sorted, YAML merge keys applied), which is what is stored.
#[derive(Debug, Clone)]
pub struct Loaded {
    validated: ValidatedWorkflow,
    definition: Value,
}

impl Loaded {
    pub fn validated(&self) -> &ValidatedWorkflow {
        &self.validated
    }

    pub fn workflow(&self) -> &Workflow {
        self.validated.workflow()
    }

    /// The canonical form: the JSON and YAML spellings of one workflow give the same value.
    pub fn definition(&self) -> &Value {
        &self.definition
    }

    pub fn into_definition(self) -> Value {
        self.definition
    }
}

/// Parses and checks a workflow document: what the engine stores and runs from.
pub fn load(text: &str, format: Format, limits: &Limits) -> Result<Loaded, WorkflowError> {
    let (workflow, definition) = parse_with_canonical(text, format, limits).map_err(WorkflowError::Parse)?;
    let validated = ValidatedWorkflow::new(workflow).map_err(WorkflowError::Cycles)?;
    Ok(Loaded { validated, definition })
}

/// Reads back a stored canonical form ([`Loaded::definition`]).
pub fn load_definition(definition: &Value) -> Result<ValidatedWorkflow, WorkflowError> {
    let workflow = parse_canonical(definition).map_err(WorkflowError::Parse)?;
    ValidatedWorkflow::new(workflow).map_err(WorkflowError::Cycles)
}

/// [`load`] off the async runtime, within [`crate::bounded::DOCUMENT_BUDGET`].
pub async fn load_off_runtime(text: String, format: Format, limits: Limits) -> Result<Loaded, WorkflowError> {
    crate::bounded::off_runtime(crate::bounded::DOCUMENT_BUDGET, move || load(&text, format, &limits))
        .await
        .unwrap_or_else(|unfinished| Err(WorkflowError::Parse(unfinished_error(unfinished))))
}

/// [`validate`] off the async runtime, within [`crate::bounded::DOCUMENT_BUDGET`]; with
/// the validated workflow when it is valid.
pub async fn validate_off_runtime(
    text: String,
    format: Format,
    limits: Limits,
) -> (ValidationReport, Option<ValidatedWorkflow>) {
    crate::bounded::off_runtime(crate::bounded::DOCUMENT_BUDGET, move || {
        validate_parsed(parse(&text, format, &limits))
    })
    .await
    .unwrap_or_else(|unfinished| {
        let errors = unfinished_error(unfinished).into_errors().into_iter().map(ReportError::from).collect();
        (ValidationReport::invalid(errors, None), None)
    })
}

fn unfinished_error(unfinished: crate::bounded::Unfinished) -> super::ParseErrors {
    super::parse::whole_document_error(format!("the document could not be checked: {unfinished}"))
}

/// One problem, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReportError {
    /// Not JSON or YAML: where the parser gave up, counting from 1.
    Syntax { line: usize, column: usize, message: String },
    /// Larger than the service accepts.
    Limit { path: String, limit: LimitKind, max: usize, found: usize, message: String },
    /// A field is missing, of the wrong type or invalid; `path` is its JSON path.
    Field { path: String, message: String },
    /// Steps that wait for each other: one strongly connected component.
    Cycle {
        /// `a → b → a`: each arrow reads "must finish before".
        message: String,
        /// The cycle, its first step repeated last.
        steps: Vec<String>,
        /// Why each step of the cycle waits for the one before.
        edges: Vec<CycleEdge>,
        /// Every step of the component, in file order.
        component: Vec<String>,
    },
}

impl From<Cycle> for ReportError {
    fn from(cycle: Cycle) -> Self {
        ReportError::Cycle {
            message: cycle.to_string(),
            steps: cycle.steps.into_iter().map(|s| s.as_str().to_owned()).collect(),
            edges: cycle.edges,
            component: cycle.component.into_iter().map(|s| s.as_str().to_owned()).collect(),
        }
    }
}

impl From<ParseError> for ReportError {
    fn from(error: ParseError) -> Self {
        match error {
            ParseError::Syntax { line, column, message } => ReportError::Syntax { line, column, message },
            ParseError::Limit(limit) => ReportError::Limit {
                path: limit.path().to_owned(),
                limit: limit.limit,
                max: limit.max,
                found: limit.found,
                message: limit.to_string(),
            },
            ParseError::Field(e) => ReportError::Field { path: e.path, message: e.message },
        }
    }
}

/// Who the workflow is, once it parses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WorkflowSummary {
    pub id: String,
    pub name: String,
    pub version: String,
    pub steps: usize,
    /// Data names no step produces: a run must be started with them.
    pub required_inputs: Vec<String>,
}

impl WorkflowSummary {
    fn of(workflow: &Workflow) -> Self {
        Self {
            id: workflow.id().to_owned(),
            name: workflow.name().to_owned(),
            version: workflow.version().to_owned(),
            steps: workflow.steps().len(),
            required_inputs: workflow.required_inputs().to_vec(),
        }
    }
}

/// A place in a workflow document: a step and the JSON path concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StepPath {
    /// The step's id.
    pub step: String,
    pub path: String,
}

/// Where a workflow names an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgentPath {
    pub agent_id: String,
    /// The id of the step that calls it.
    pub step: String,
    /// The JSON path of the agent id in the document.
    pub path: String,
}

/// A finding that is not an error: the workflow is valid and can be stored, but a run
/// will be refused until it is dealt with. Tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// Service steps with no target (workflows from the system this replaces name what a
    /// step does, not where it runs): every one, in file order.
    NotRunnable { message: String, steps: Vec<StepPath> },
    /// Agents the workflow calls that are not registered (yet), with every place each is
    /// named. Only the API reports this: it needs the agent registry.
    UnknownAgents { message: String, agents: Vec<String>, references: Vec<AgentPath> },
}

/// How to give a service step a target, for messages.
const HOW_TO_TARGET: &str = "give the step parameters.target, or the workflow defaults.target (for every \
     service step without one) or defaults.targets.<step id>";

/// The service steps with no target, each with the path its target would have.
pub fn untargeted(workflow: &Workflow) -> Vec<StepPath> {
    workflow
        .untargeted_steps()
        .map(|i| StepPath {
            step: workflow.step(i).id.as_str().to_owned(),
            path: format!("$.steps[{}].parameters.target", i.index()),
        })
        .collect()
}

/// The refusal of a run for a step without a target.
pub fn untargeted_message(step: &str) -> String {
    format!("service step {step:?} has no target, so it cannot run: {HOW_TO_TARGET}")
}

impl Notice {
    /// The not-runnable finding, if any service step has no target.
    pub fn not_runnable(workflow: &Workflow) -> Option<Notice> {
        let steps = untargeted(workflow);
        if steps.is_empty() {
            return None;
        }
        let message = format!(
            "valid, but not runnable yet: {} service step(s) have no target ({}); a run is refused \
             until each has one: {HOW_TO_TARGET}",
            steps.len(),
            steps.iter().map(|s| s.step.as_str()).collect::<Vec<_>>().join(", ")
        );
        Some(Notice::NotRunnable { message, steps })
    }

    /// The unknown-agents finding for `missing` agent ids (each once), with every place
    /// the workflow names one of them.
    pub fn unknown_agents(workflow: &Workflow, missing: &[&str]) -> Option<Notice> {
        if missing.is_empty() {
            return None;
        }
        let references = workflow
            .agent_references()
            .into_iter()
            .filter(|r| missing.contains(&r.agent_id))
            .map(|r| AgentPath {
                agent_id: r.agent_id.to_owned(),
                step: workflow.step(r.step).id.as_str().to_owned(),
                path: r.path,
            })
            .collect();
        let message = format!(
            "not registered (yet): {}; a run is refused until each is registered (POST /v1/agents)",
            missing.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ")
        );
        Some(Notice::UnknownAgents {
            message,
            agents: missing.iter().map(|a| (*a).to_owned()).collect(),
            references,
        })
    }
}

/// Either every error found, or the plan.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ValidationReport {
    /// True exactly when `errors` is empty; then `plan` is present.
    pub valid: bool,
    /// Valid, and a run can start: every service step has a target and (when the API
    /// checked) every agent named is registered. False whenever `notices` is not empty.
    pub runnable: bool,
    pub errors: Vec<ReportError>,
    /// Findings that are not errors, once the document parses (even with cycles): what a
    /// run still lacks.
    pub notices: Vec<Notice>,
    /// Present once the document parses, even if it has cycles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

impl ValidationReport {
    fn invalid(errors: Vec<ReportError>, workflow: Option<WorkflowSummary>) -> Self {
        Self { valid: false, runnable: false, errors, notices: Vec::new(), workflow, plan: None }
    }

    /// Adds a notice; the workflow is then not runnable.
    pub fn notice(&mut self, notice: Notice) {
        self.runnable = false;
        self.notices.push(notice);
    }
}

/// Reported errors: the first [`crate::validation::MAX_REPORTED`] cycles, and a count of
/// the rest.
fn cycle_errors(cycles: Vec<Cycle>, errors: &mut Vec<ReportError>) {
    let unlisted = cycles.len().saturating_sub(crate::validation::MAX_REPORTED);
    errors.extend(cycles.into_iter().take(crate::validation::MAX_REPORTED).map(ReportError::from));
    if unlisted > 0 {
        let message = format!("{unlisted} more cycles, not listed");
        errors.push(ReportError::Field { path: "$".into(), message });
    }
}

/// Parses, checks and plans a workflow document, reporting every problem found: field
/// errors and the cycles of the graph as far as it can be read, together.
pub fn validate(text: &str, format: Format, limits: &Limits) -> ValidationReport {
    validate_parsed(parse(text, format, limits)).0
}

/// The report, and the workflow when it is valid.
fn validate_parsed(parsed: Result<Workflow, ParseErrors>) -> (ValidationReport, Option<ValidatedWorkflow>) {
    let workflow = match parsed {
        Ok(workflow) => workflow,
        Err(errors) => {
            let (errors, cycles) = errors.into_parts();
            let mut errors: Vec<ReportError> = errors.into_iter().map(ReportError::from).collect();
            cycle_errors(cycles, &mut errors);
            return (ValidationReport::invalid(errors, None), None);
        }
    };
    let summary = WorkflowSummary::of(&workflow);
    // Reported with the cycles too: what a run would lack once they are broken.
    let not_runnable = Notice::not_runnable(&workflow);
    let (mut report, validated) = match ValidatedWorkflow::new(workflow) {
        Ok(validated) => {
            let report = ValidationReport {
                valid: true,
                runnable: true,
                errors: Vec::new(),
                notices: Vec::new(),
                workflow: Some(summary),
                plan: Some(plan(&validated)),
            };
            (report, Some(validated))
        }
        Err(cycles) => {
            let mut errors = Vec::new();
            cycle_errors(cycles.0, &mut errors);
            (ValidationReport::invalid(errors, Some(summary)), None)
        }
    };
    if let Some(notice) = not_runnable {
        report.notice(notice);
    }
    (report, validated)
}
