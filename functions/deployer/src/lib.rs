//! The deployer function: agent deployments under `/v1/deployments` (create, list, get,
//! events, roll back) and the version history of a deployed agent; and the deploy worker,
//! which moves deployments through the pipeline from the deploy queue (an SQS-triggered
//! Lambda, or in-process consumers in the local stack).

mod routes;

pub use routes::{ApiDoc, DeployerStore, router};

use tdev_domain::deploy::{DeployConfig, SpecLimits};

/// The pipeline's settings from `TDEV_DEPLOY_*` variables (defaults in [`DeployConfig`]).
pub fn config_from_env() -> anyhow::Result<DeployConfig> {
    use tdev_runtime::env::var_in;
    let defaults = DeployConfig::default();
    let seconds =
        |name: &str, default: std::time::Duration, max: u64| -> anyhow::Result<std::time::Duration> {
            Ok(std::time::Duration::from_secs(var_in(name, default.as_secs(), 1..=max)?))
        };
    let config = DeployConfig {
        limits: SpecLimits {
            max_bytes: var_in("TDEV_DEPLOY_MAX_SPEC_BYTES", defaults.limits.max_bytes, 1..=1024 * 1024)?,
        },
        lock_ttl: seconds("TDEV_DEPLOY_LOCK_SECONDS", defaults.lock_ttl, 86_400)?,
        deadline: seconds("TDEV_DEPLOY_DEADLINE_SECONDS", defaults.deadline, 7 * 86_400)?,
        max_attempts: var_in("TDEV_DEPLOY_MAX_ATTEMPTS", defaults.max_attempts, 1..=100)?,
        // A worker Lambda runs 15 minutes at most.
        work_budget: seconds("TDEV_DEPLOY_WORK_SECONDS", defaults.work_budget, 840)?,
        first_pause: defaults.first_pause,
    };
    // A lock that lapses while its holder works would let a second deployment in.
    if config.lock_ttl <= config.work_budget || config.deadline <= config.work_budget {
        anyhow::bail!(
            "TDEV_DEPLOY_LOCK_SECONDS and TDEV_DEPLOY_DEADLINE_SECONDS must be longer than TDEV_DEPLOY_WORK_SECONDS"
        );
    }
    Ok(config)
}
