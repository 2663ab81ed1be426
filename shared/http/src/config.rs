//! Settings from the environment, shared by every function and the local stack.

use std::str::FromStr;

use anyhow::{Context as _, bail};

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
