//! The deployer function: agent deployments under `/v1/deployments` (create, list, get,
//! events, roll back) and the version history of a deployed agent; and the deploy worker,
//! which moves deployments through the pipeline from the deploy queue (an SQS-triggered
//! Lambda, or in-process consumers in the local stack).

mod routes;
pub mod worker;

pub use routes::{ApiDoc, DeployerStore, router};

use tdev_domain::deploy::{DeployConfig, SpecLimits};

/// The pipeline's settings from `TDEV_DEPLOY_*` variables (defaults in [`DeployConfig`]).
pub fn config_from_env() -> anyhow::Result<DeployConfig> {
    use tdev_http::config::var_or;
    let defaults = DeployConfig::default();
    let seconds = |name: &str, default: std::time::Duration| -> anyhow::Result<std::time::Duration> {
        Ok(std::time::Duration::from_secs(var_or(name, default.as_secs())?))
    };
    let config = DeployConfig {
        limits: SpecLimits { max_bytes: var_or("TDEV_DEPLOY_MAX_SPEC_BYTES", defaults.limits.max_bytes)? },
        lock_ttl: seconds("TDEV_DEPLOY_LOCK_SECONDS", defaults.lock_ttl)?,
        deadline: seconds("TDEV_DEPLOY_DEADLINE_SECONDS", defaults.deadline)?,
        max_attempts: var_or("TDEV_DEPLOY_MAX_ATTEMPTS", defaults.max_attempts)?,
        work_budget: seconds("TDEV_DEPLOY_WORK_SECONDS", defaults.work_budget)?,
        first_pause: defaults.first_pause,
    };
    if config.limits.max_bytes == 0 || config.max_attempts == 0 || config.work_budget.is_zero() {
        anyhow::bail!(
            "TDEV_DEPLOY_MAX_SPEC_BYTES, TDEV_DEPLOY_MAX_ATTEMPTS and TDEV_DEPLOY_WORK_SECONDS must be at least 1"
        );
    }
    // A lock that lapses while its holder works would let a second deployment in.
    if config.lock_ttl <= config.work_budget || config.deadline <= config.work_budget {
        anyhow::bail!(
            "TDEV_DEPLOY_LOCK_SECONDS and TDEV_DEPLOY_DEADLINE_SECONDS must be longer than TDEV_DEPLOY_WORK_SECONDS"
        );
    }
    Ok(config)
}
