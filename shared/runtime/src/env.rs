//! Settings from the environment: an unset variable takes its default; a value that does
//! not parse, or is out of range, stops the process at start with the variable's name.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;

use anyhow::{Context as _, bail};

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

/// `name` parsed as `T` and within `range`, or `default` when unset: every numeric
/// setting is read this way, so a value that would misbehave later (a refill rate whose
/// interval rounds to zero) stops the process at start with the variable's name.
pub fn var_in<T: FromStr + PartialOrd + Display>(
    name: &str,
    default: T,
    range: RangeInclusive<T>,
) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let value = var_or(name, default)?;
    if !range.contains(&value) {
        bail!("{name}={value} is out of range: it must be {} to {}", range.start(), range.end());
    }
    Ok(value)
}
