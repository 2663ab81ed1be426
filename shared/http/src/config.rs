//! Settings from the environment, shared by every function and the local stack.

use std::str::FromStr;

use anyhow::{Context as _, bail};

use tdev_domain::auth::{AuthConfig, RateLimit, TokenSettings};

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
    /// `TDEV_MAX_BODY_BYTES`, `TDEV_METRICS` (`off` or `emf`) and `TDEV_METRICS_NAMESPACE`.
    pub fn from_env(service: &str) -> anyhow::Result<Self> {
        let emf = match var_or("TDEV_METRICS", "off".to_owned())?.as_str() {
            "off" => None,
            "emf" => Some(EmfSettings {
                namespace: var_or("TDEV_METRICS_NAMESPACE", "TDeveloper".to_owned())?,
                service: service.to_owned(),
            }),
            other => bail!("TDEV_METRICS={other:?}: use off or emf"),
        };
        Ok(Self { max_body_bytes: var_or("TDEV_MAX_BODY_BYTES", Self::DEFAULT_MAX_BODY_BYTES)?, emf })
    }
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
