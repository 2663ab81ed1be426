//! The orchestrator's settings, read once at start (variables in the README).

use std::time::Duration;

use tdev_domain::agents::DEFAULT_ATTEMPT_TIMEOUT;
use tdev_domain::workflow::Limits;
use tdev_http::app::ApiSettings;
use tdev_runtime::metrics::EmfSettings;
use tdev_runtime::settings;

/// The orchestrator function (bin `orchestrator`): workflows and runs over HTTP.
pub fn api() -> anyhow::Result<ApiSettings<Limits>> {
    ApiSettings::from_env("orchestrator", settings::workflow_limits)
}

/// The step worker (bin `step-worker`).
pub struct WorkerConfig {
    pub limits: Limits,
    /// Below the worker Lambda's timeout: the template sets it so.
    pub attempt_timeout: Duration,
    /// Squad tasks' figures as EMF (`TDEV_METRICS`).
    pub metrics: Option<EmfSettings>,
}

impl WorkerConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            limits: settings::workflow_limits()?,
            attempt_timeout: settings::attempt_timeout(DEFAULT_ATTEMPT_TIMEOUT)?,
            metrics: EmfSettings::from_env("step-worker")?,
        })
    }
}
