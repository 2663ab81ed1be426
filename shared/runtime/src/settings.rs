//! The settings of each area, read from the environment: one reader per area, used by
//! every function (and the local stack) that needs that area, so each default and each
//! range is in one place. A value that does not parse or is out of range stops the
//! process at start with the variable's name. The variables are listed in the README.

use std::time::Duration;

use anyhow::Context as _;
use tdev_domain::auth::{AuthConfig, RateLimit, TokenSettings};
use tdev_domain::deploy::{DeployConfig, SpecLimits};
use tdev_domain::messaging::{Bands, BreakerSettings, MessagingConfig};
use tdev_domain::workflow::{LimitKind, Limits};

use crate::env::{var_in, var_or};

/// The workflow limits, each from the variable [`LimitKind::setting`] names, in range:
/// `TDEV_MAX_BODY_BYTES` (also every request body's limit), `TDEV_WORKFLOW_MAX_STEPS`
/// and `TDEV_WORKFLOW_MAX_EDGES`.
pub fn workflow_limits() -> anyhow::Result<Limits> {
    let limit = |kind: LimitKind, default: usize, max: usize| var_in(kind.setting(), default, 1..=max);
    Ok(Limits {
        // The most the local stack takes (the template allows 3 MiB: see docs/workflows.md).
        max_bytes: limit(LimitKind::MaxBytes, Limits::DEFAULT_MAX_BYTES, 256 * 1024 * 1024)?,
        max_steps: limit(LimitKind::MaxSteps, Limits::DEFAULT_MAX_STEPS, 1_000_000)?,
        max_edges: limit(LimitKind::MaxEdges, Limits::DEFAULT_MAX_EDGES, 10_000_000)?,
    })
}

/// Reads `TDEV_*` variables; unset ones take their documented defaults.
pub fn auth() -> anyhow::Result<AuthConfig> {
    let ttl = var_in(
        "TDEV_TOKEN_TTL_SECONDS",
        AuthConfig::DEFAULT_TOKEN_TTL_SECS,
        1..=AuthConfig::MAX_TOKEN_TTL_SECS,
    )?;
    let rate_limit =
        |capacity_var: &str, refill_var: &str, default: RateLimit| -> anyhow::Result<RateLimit> {
            Ok(RateLimit {
                capacity: var_in(capacity_var, default.capacity, 1..=RateLimit::MAX_CAPACITY)?,
                refill_per_minute: var_in(
                    refill_var,
                    default.refill_per_minute,
                    1..=RateLimit::MAX_REFILL_PER_MINUTE,
                )?,
            })
        };
    let default_rate_limit =
        rate_limit("TDEV_RATE_CAPACITY", "TDEV_RATE_REFILL_PER_MINUTE", RateLimit::DEFAULT)?;
    let failed_auth_limit = rate_limit(
        "TDEV_FAILED_AUTH_CAPACITY",
        "TDEV_FAILED_AUTH_REFILL_PER_MINUTE",
        AuthConfig::DEFAULT_FAILED_AUTH_LIMIT,
    )?;
    Ok(AuthConfig {
        token: TokenSettings {
            issuer: var_or("TDEV_JWT_ISSUER", "t-developer".to_owned())?,
            audience: var_or("TDEV_JWT_AUDIENCE", "t-developer-api".to_owned())?,
            leeway_secs: var_in("TDEV_JWT_LEEWAY_SECONDS", 5, 0..=300)?,
        },
        token_ttl_secs: ttl,
        default_rate_limit,
        failed_auth_limit,
        signing_secret: var_or("TDEV_SIGNING_SECRET", "tdev/signing-key".to_owned())?,
        key_cache_secs: var_in("TDEV_KEY_CACHE_SECONDS", 300, 0..=86_400)?,
    })
}

/// Messaging settings: `TDEV_MESSAGE_BANDS` (`1-3,4-7,8-10`), `TDEV_ENVELOPE_SECRET`,
/// `TDEV_ENVELOPE_COMPAT_SECRET` (empty or unset: compatibility mode off),
/// `TDEV_ENVELOPE_ENCRYPT` (`true`), `TDEV_ENVELOPE_FRESHNESS_SECONDS` (300),
/// `TDEV_MESSAGE_MAX_RECEIVES` (5), `TDEV_BREAKER_FAILURES` (5),
/// `TDEV_BREAKER_OPEN_SECONDS` (30), `TDEV_ATTEMPT_TIMEOUT_SECONDS` (50) and
/// `TDEV_KEY_CACHE_SECONDS` (300). `bands` is the default when `TDEV_MESSAGE_BANDS` is unset.
pub fn messaging(bands: Bands) -> anyhow::Result<MessagingConfig> {
    let defaults = MessagingConfig::default();
    let bands = match std::env::var("TDEV_MESSAGE_BANDS") {
        Ok(spec) if !spec.trim().is_empty() => {
            spec.parse().with_context(|| format!("TDEV_MESSAGE_BANDS={spec:?} is not valid"))?
        }
        _ => bands,
    };
    let max_receives = var_in("TDEV_MESSAGE_MAX_RECEIVES", defaults.max_receives, 1..=100)?;
    let failures = var_in("TDEV_BREAKER_FAILURES", defaults.breaker.failure_threshold, 1..=10_000)?;
    let seconds = |name: &str, default: Duration| -> anyhow::Result<Duration> {
        Ok(Duration::from_secs(var_in(name, default.as_secs(), 1..=86_400)?))
    };
    let attempt_timeout = attempt_timeout(defaults.attempt_timeout)?;
    Ok(MessagingConfig {
        bands,
        envelope_secret: var_or("TDEV_ENVELOPE_SECRET", defaults.envelope_secret)?,
        compat_secret: std::env::var("TDEV_ENVELOPE_COMPAT_SECRET").ok().filter(|s| !s.trim().is_empty()),
        encrypt: var_or("TDEV_ENVELOPE_ENCRYPT", defaults.encrypt)?,
        freshness: seconds("TDEV_ENVELOPE_FRESHNESS_SECONDS", defaults.freshness)?,
        max_receives,
        breaker: BreakerSettings {
            failure_threshold: failures,
            open_for: seconds("TDEV_BREAKER_OPEN_SECONDS", defaults.breaker.open_for)?,
            probe_timeout: attempt_timeout + Duration::from_secs(10),
        },
        attempt_timeout,
        keep_done: defaults.keep_done,
        key_cache: seconds("TDEV_KEY_CACHE_SECONDS", defaults.key_cache)?,
    })
}

/// The pipeline's settings from `TDEV_DEPLOY_*` variables (defaults in [`DeployConfig`]).
pub fn deploy() -> anyhow::Result<DeployConfig> {
    let defaults = DeployConfig::default();
    let seconds = |name: &str, default: Duration, max: u64| -> anyhow::Result<Duration> {
        Ok(Duration::from_secs(var_in(name, default.as_secs(), 1..=max)?))
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

/// `TDEV_ATTEMPT_TIMEOUT_SECONDS`: the longest one call to an agent may take (a message's
/// delivery, a step's attempt unless the step says less), `default` when unset. At most
/// 900 s: an attempt must end before a Lambda can (15 minutes at most).
pub fn attempt_timeout(default: Duration) -> anyhow::Result<Duration> {
    Ok(Duration::from_secs(var_in("TDEV_ATTEMPT_TIMEOUT_SECONDS", default.as_secs(), 1..=900)?))
}
