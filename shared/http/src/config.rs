//! Settings from the environment, shared by every function and the local stack.

use anyhow::Context as _;
use tdev_domain::auth::{AuthConfig, RateLimit, TokenSettings};
use tdev_domain::messaging::{Bands, BreakerSettings, MessagingConfig};
use tdev_domain::workflow::{LimitKind, Limits};
use tdev_runtime::env::{var_in, var_or};
use tdev_runtime::metrics::EmfSettings;

use crate::app::HttpSettings;

impl HttpSettings {
    /// `TDEV_MAX_BODY_BYTES` (see [`workflow_limits_from_env`]), `TDEV_METRICS` (`off` or
    /// `emf`) and `TDEV_METRICS_NAMESPACE`.
    pub fn from_env(service: &str) -> anyhow::Result<Self> {
        Ok(Self {
            max_body_bytes: workflow_limits_from_env()?.max_bytes,
            emf: EmfSettings::from_env(service)?,
        })
    }
}

/// The workflow limits, each from the variable [`LimitKind::setting`] names, in range:
/// `TDEV_MAX_BODY_BYTES` (also every request body's limit), `TDEV_WORKFLOW_MAX_STEPS`
/// and `TDEV_WORKFLOW_MAX_EDGES`.
pub fn workflow_limits_from_env() -> anyhow::Result<Limits> {
    let limit = |kind: LimitKind, default: usize, max: usize| var_in(kind.setting(), default, 1..=max);
    Ok(Limits {
        // The most the local stack takes (the template allows 3 MiB: see docs/workflows.md).
        max_bytes: limit(LimitKind::MaxBytes, Limits::DEFAULT_MAX_BYTES, 256 * 1024 * 1024)?,
        max_steps: limit(LimitKind::MaxSteps, Limits::DEFAULT_MAX_STEPS, 1_000_000)?,
        max_edges: limit(LimitKind::MaxEdges, Limits::DEFAULT_MAX_EDGES, 10_000_000)?,
    })
}

/// Reads `TDEV_*` variables; unset ones take their documented defaults.
pub fn auth_config_from_env() -> anyhow::Result<AuthConfig> {
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
pub fn messaging_config_from_env(bands: Bands) -> anyhow::Result<MessagingConfig> {
    use std::time::Duration;
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
    // An attempt must end before a Lambda can (15 minutes at most).
    let attempt_timeout = Duration::from_secs(var_in(
        "TDEV_ATTEMPT_TIMEOUT_SECONDS",
        defaults.attempt_timeout.as_secs(),
        1..=900,
    )?);
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
