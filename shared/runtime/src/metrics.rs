//! Metrics as CloudWatch Embedded Metric Format: one JSON line on stdout, which CloudWatch
//! Logs turns into metrics without any API call. HTTP request metrics are written by
//! `tdev-http`'s layer in the same format.

use std::io::Write as _;

use serde_json::json;

use crate::env::var_or;

#[derive(Debug, Clone)]
pub struct EmfSettings {
    pub namespace: String,
    pub service: String,
}

/// Where [`count`] writes: set once at start-up by [`init`]; unset, counts go nowhere.
static EVENTS: std::sync::OnceLock<EmfSettings> = std::sync::OnceLock::new();

/// Makes [`count`] write EMF lines in `settings`' namespace (the first call wins).
pub fn init(settings: EmfSettings) {
    let _ = EVENTS.set(settings);
}

/// Adds `value` to the metric `name` (dimension `Service`), as one EMF line on stdout.
pub fn count(name: &str, value: u64) {
    let Some(settings) = EVENTS.get() else { return };
    let line = json!({
        "_aws": {
            "Timestamp": jiff::Timestamp::now().as_millisecond(),
            "CloudWatchMetrics": [{
                "Namespace": settings.namespace,
                "Dimensions": [["Service"]],
                "Metrics": [{"Name": name, "Unit": "Count"}]
            }]
        },
        "Service": settings.service,
        name: value,
    });
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

impl EmfSettings {
    /// `TDEV_METRICS` (`off`, the default, or `emf`) and `TDEV_METRICS_NAMESPACE`
    /// (`TDeveloper`); `service` is the `Service` dimension.
    pub fn from_env(service: &str) -> anyhow::Result<Option<Self>> {
        match var_or("TDEV_METRICS", "off".to_owned())?.as_str() {
            "off" => Ok(None),
            "emf" => Ok(Some(EmfSettings {
                namespace: var_or("TDEV_METRICS_NAMESPACE", "TDeveloper".to_owned())?,
                service: service.to_owned(),
            })),
            other => anyhow::bail!("TDEV_METRICS={other:?}: use off or emf"),
        }
    }
}
