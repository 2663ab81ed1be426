//! What is kept of each deployment: the record, its audit trail, and its backup.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::state::DeploymentStatus;
use crate::agents::AgentTarget;

fn canonical_kind<S: serde::Serializer>(kind: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&super::PlatformKind::canonical(kind))
}

/// Why a rollback happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RollbackReason {
    /// An operator asked for it.
    Manual,
    /// A step of the deployment failed.
    Failure,
    /// The smoke test failed.
    HealthCheck,
    /// The deployment did not finish before its deadline.
    Timeout,
    /// An operator or a monitor saw too many errors.
    ErrorRate,
}

impl RollbackReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackReason::Manual => "manual",
            RollbackReason::Failure => "failure",
            RollbackReason::HealthCheck => "health_check",
            RollbackReason::Timeout => "timeout",
            RollbackReason::ErrorRate => "error_rate",
        }
    }
}

/// What a deployment does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeploymentKind {
    /// Ships a spec.
    Deploy,
    /// Puts an earlier version back: points the alias (or endpoint) at `to_version` and
    /// restores that version's draft configuration from a backup.
    Rollback {
        to_version: String,
        reason: RollbackReason,
        /// The deployment being undone.
        undoes: String,
    },
}

/// One deployment: a deploy or a rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deployment {
    #[schema(example = "dep-4f9c…")]
    pub id: String,
    /// The agent's name (the spec's `name`).
    pub agent: String,
    /// The target's kind (`bedrock_agent`, `agentcore_runtime`, `local`); a record
    /// written with the older kebab-case spelling is answered in this one.
    #[serde(rename = "target", serialize_with = "canonical_kind")]
    pub platform: String,
    #[serde(flatten)]
    pub kind: DeploymentKind,
    pub status: DeploymentStatus,
    /// The spec as submitted (its JSON form), valid or not: any JSON value.
    #[schema(value_type = Value)]
    pub spec: Value,
    /// SHA-256 of the spec's compact JSON.
    pub spec_hash: String,
    /// The version this deployment put in service, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The version in service when it started (what a failure rolls back to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<String>,
    /// How the version in service is invoked, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoke_target: Option<AgentTarget>,
    /// Who asked: the API key or token subject.
    pub requested_by: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// Work not done by then is rolled back (reason `timeout`).
    pub deadline: Timestamp,
    /// Why it failed or was rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The reason a failed deployment was rolled back with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_reason: Option<RollbackReason>,
    /// Transient failures at the current status.
    #[serde(default)]
    pub attempts: u32,
    /// Each stored change adds one; also the sequence number of its event.
    pub revision: u64,
}

/// One line of the audit trail: a transition, or a note within a status (a retry, a
/// poll). Events are never changed or removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeploymentEvent {
    pub deployment_id: String,
    /// The record's revision after the change; events are listed in this order.
    pub seq: u64,
    pub at: Timestamp,
    /// The status after the change.
    pub status: DeploymentStatus,
    pub detail: String,
}

/// What the target held for the agent before a deployment changed anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Snapshot {
    /// The version the alias (or endpoint) served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_version: Option<String>,
    /// The target's own description of the configuration (for Bedrock Agents: the agent,
    /// its action groups, knowledge bases and alias routing), enough to restore it.
    #[schema(value_type = Object)]
    pub config: Value,
}

/// The backup a deployment takes before it changes anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Backup {
    pub deployment_id: String,
    pub agent: String,
    pub taken_at: Timestamp,
    /// `None`: the agent did not exist on the target.
    pub snapshot: Option<Snapshot>,
}

/// Which deployments to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentFilter {
    pub agent: Option<String>,
    pub status: Option<DeploymentStatus>,
    pub limit: usize,
}

impl DeploymentFilter {
    pub fn matches(&self, deployment: &Deployment) -> bool {
        self.agent.as_ref().is_none_or(|a| *a == deployment.agent)
            && self.status.is_none_or(|s| s == deployment.status)
    }
}

/// Who holds an agent's deployment lock, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentLock {
    pub agent: String,
    pub holder: String,
    pub until: Timestamp,
}
