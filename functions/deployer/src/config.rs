//! The deployer's settings, read once at start (variables in the README).

use tdev_domain::auth::AuthConfig;
use tdev_domain::deploy::DeployConfig;
use tdev_http::app::HttpSettings;
use tdev_runtime::settings;

/// The deployer function (bin `deployer`): deployments, history and rollback over HTTP.
pub struct ApiConfig {
    pub auth: AuthConfig,
    pub http: HttpSettings,
    pub deploy: DeployConfig,
}

impl ApiConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            auth: settings::auth()?,
            http: HttpSettings::from_env("deployer")?,
            deploy: settings::deploy()?,
        })
    }
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
