//! Settings from the environment, shared by every function and the local stack.

use std::str::FromStr;

use anyhow::{Context as _, bail};

use tdev_domain::auth::{AuthConfig, RateLimit, TokenSettings};
use tdev_domain::messaging::{Bands, BreakerSettings, MessagingConfig};
use tdev_domain::workflow::{LimitKind, Limits};

use crate::app::HttpSettings;
use crate::metrics::EmfSettings;

/// `name` parsed as `T`, or `default` when unset; a value that does not parse is an
/// error that names the variable.
pub fn var_or<T: FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match std::env::var(name) {
        Ok(raw) => raw.trim().parse().with_context(|| format!("{name}={raw:?} is not valid")),
        Err(_) => Ok(default),
    }
}

impl HttpSettings {
    /// `TDEV_MAX_BODY_BYTES` (see [`workflow_limits_from_env`]), `TDEV_METRICS` (`off` or
    /// `emf`) and `TDEV_METRICS_NAMESPACE`.
    pub fn from_env(service: &str) -> anyhow::Result<Self> {
        let emf = match var_or("TDEV_METRICS", "off".to_owned())?.as_str() {
            "off" => None,
            "emf" => Some(EmfSettings {
                namespace: var_or("TDEV_METRICS_NAMESPACE", "TDeveloper".to_owned())?,
                service: service.to_owned(),
            }),
            other => bail!("TDEV_METRICS={other:?}: use off or emf"),
        };
        Ok(Self { max_body_bytes: workflow_limits_from_env()?.max_bytes, emf })
    }
}

/// The workflow limits, each from the variable [`LimitKind::setting`] names, at least 1:
/// `TDEV_MAX_BODY_BYTES` (also every request body's limit), `TDEV_WORKFLOW_MAX_STEPS`
/// and `TDEV_WORKFLOW_MAX_EDGES`.
pub fn workflow_limits_from_env() -> anyhow::Result<Limits> {
    let limit = |kind: LimitKind, default: usize| -> anyhow::Result<usize> {
        let value = var_or(kind.setting(), default)?;
        if value == 0 {
            bail!("{} must be at least 1", kind.setting());
        }
        Ok(value)
    };
    Ok(Limits {
        max_bytes: limit(LimitKind::MaxBytes, Limits::DEFAULT_MAX_BYTES)?,
        max_steps: limit(LimitKind::MaxSteps, Limits::DEFAULT_MAX_STEPS)?,
        max_edges: limit(LimitKind::MaxEdges, Limits::DEFAULT_MAX_EDGES)?,
    })
}

/// Reads `TDEV_*` variables; unset ones take their documented defaults.
pub fn auth_config_from_env() -> anyhow::Result<AuthConfig> {
    let ttl: u32 = var_or("TDEV_TOKEN_TTL_SECONDS", AuthConfig::DEFAULT_TOKEN_TTL_SECS)?;
    if !(1..=AuthConfig::MAX_TOKEN_TTL_SECS).contains(&ttl) {
        bail!("TDEV_TOKEN_TTL_SECONDS must be 1 to {}", AuthConfig::MAX_TOKEN_TTL_SECS);
    }
    let default_rate_limit = RateLimit {
        capacity: var_or("TDEV_RATE_CAPACITY", RateLimit::DEFAULT.capacity)?,
        refill_per_minute: var_or("TDEV_RATE_REFILL_PER_MINUTE", RateLimit::DEFAULT.refill_per_minute)?,
    };
    if default_rate_limit.capacity == 0 || default_rate_limit.refill_per_minute == 0 {
        bail!("TDEV_RATE_CAPACITY and TDEV_RATE_REFILL_PER_MINUTE must be at least 1");
    }
    Ok(AuthConfig {
        token: TokenSettings {
            issuer: var_or("TDEV_JWT_ISSUER", "t-developer".to_owned())?,
            audience: var_or("TDEV_JWT_AUDIENCE", "t-developer-api".to_owned())?,
            leeway_secs: var_or("TDEV_JWT_LEEWAY_SECONDS", 5)?,
        },
        token_ttl_secs: ttl,
        default_rate_limit,
        signing_secret: var_or("TDEV_SIGNING_SECRET", "tdev/signing-key".to_owned())?,
        key_cache_secs: var_or("TDEV_KEY_CACHE_SECONDS", 300)?,
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
        Ok(spec) if !spec.trim().is_empty() => spec.parse()?,
        _ => bands,
    };
    let max_receives: u32 = var_or("TDEV_MESSAGE_MAX_RECEIVES", defaults.max_receives)?;
    let failures: u32 = var_or("TDEV_BREAKER_FAILURES", defaults.breaker.failure_threshold)?;
    if max_receives == 0 || failures == 0 {
        bail!("TDEV_MESSAGE_MAX_RECEIVES and TDEV_BREAKER_FAILURES must be at least 1");
    }
    let seconds = |name: &str, default: Duration| -> anyhow::Result<Duration> {
        Ok(Duration::from_secs(var_or(name, default.as_secs())?))
    };
    let attempt_timeout = seconds("TDEV_ATTEMPT_TIMEOUT_SECONDS", defaults.attempt_timeout)?;
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
