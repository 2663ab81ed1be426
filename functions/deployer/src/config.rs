//! The deployer's settings, read once at start (variables in the README).

use tdev_domain::deploy::DeployConfig;
use tdev_http::app::ApiSettings;
use tdev_runtime::settings;

/// The deployer function (bin `deployer`): deployments, history and rollback over HTTP.
pub fn api() -> anyhow::Result<ApiSettings<DeployConfig>> {
    ApiSettings::from_env("deployer", settings::deploy)
}

/// The deploy worker (bin `deploy-worker`).
pub struct WorkerConfig {
    pub deploy: DeployConfig,
}

impl WorkerConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self { deploy: settings::deploy()? })
    }
}
