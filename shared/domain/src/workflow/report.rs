//! The validation report: what `POST /v1/workflows:validate` returns, as JSON.

use serde::Serialize;

use super::graph::{CycleEdge, CycleErrors, ValidatedWorkflow};
use super::model::Workflow;
use super::parse::{Format, LimitKind, Limits, ParseError, ParseErrors, parse};
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

/// Parses and checks a workflow document: what the engine runs from.
pub fn load(text: &str, format: Format, limits: &Limits) -> Result<ValidatedWorkflow, WorkflowError> {
    let workflow = parse(text, format, limits).map_err(WorkflowError::Parse)?;
    ValidatedWorkflow::new(workflow).map_err(WorkflowError::Cycles)
}

/// [`load`] off the async runtime, within [`crate::bounded::DOCUMENT_BUDGET`].
pub async fn load_off_runtime(
    text: String,
    format: Format,
    limits: Limits,
) -> Result<ValidatedWorkflow, WorkflowError> {
    crate::bounded::off_runtime(crate::bounded::DOCUMENT_BUDGET, move || load(&text, format, &limits))
        .await
        .unwrap_or_else(|unfinished| Err(WorkflowError::Parse(unfinished_error(unfinished))))
}

/// [`validate`] off the async runtime, within [`crate::bounded::DOCUMENT_BUDGET`].
pub async fn validate_off_runtime(text: String, format: Format, limits: Limits) -> ValidationReport {
    crate::bounded::off_runtime(crate::bounded::DOCUMENT_BUDGET, move || validate(&text, format, &limits))
        .await
        .unwrap_or_else(|unfinished| {
            let errors =
                unfinished_error(unfinished).into_errors().into_iter().map(ReportError::from).collect();
            ValidationReport { valid: false, errors, workflow: None, plan: None }
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

/// Either every error found, or the plan.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ValidationReport {
    /// True exactly when `errors` is empty; then `plan` is present.
    pub valid: bool,
    pub errors: Vec<ReportError>,
    /// Present once the document parses, even if it has cycles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

/// Parses, checks and plans a workflow document, reporting every problem found.
pub fn validate(text: &str, format: Format, limits: &Limits) -> ValidationReport {
    let workflow = match parse(text, format, limits) {
        Ok(workflow) => workflow,
        Err(errors) => {
            let errors = errors.into_errors().into_iter().map(ReportError::from).collect();
            return ValidationReport { valid: false, errors, workflow: None, plan: None };
        }
    };
    let summary = WorkflowSummary::of(&workflow);
    match ValidatedWorkflow::new(workflow) {
        Ok(validated) => ValidationReport {
            valid: true,
            errors: Vec::new(),
            workflow: Some(summary),
            plan: Some(plan(&validated)),
        },
        Err(cycles) => {
            let unlisted = cycles.0.len().saturating_sub(crate::validation::MAX_REPORTED);
            let mut errors: Vec<ReportError> = cycles
                .0
                .into_iter()
                .take(crate::validation::MAX_REPORTED)
                .map(|cycle| ReportError::Cycle {
                    message: cycle.to_string(),
                    steps: cycle.steps.into_iter().map(|s| s.as_str().to_owned()).collect(),
                    edges: cycle.edges,
                    component: cycle.component.into_iter().map(|s| s.as_str().to_owned()).collect(),
                })
                .collect();
            if unlisted > 0 {
                let message = format!("{unlisted} more cycles, not listed");
                errors.push(ReportError::Field { path: "$".into(), message });
            }
            ValidationReport { valid: false, errors, workflow: Some(summary), plan: None }
        }
    }
}
