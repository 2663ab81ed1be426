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

/// The domain's metrics as EMF lines, in the namespace [`init`] set (nowhere before it).
pub struct Emf;

impl tdev_domain::ports::Metrics for Emf {
    fn record(&self, dimensions: &[(&str, &str)], measurements: &[tdev_domain::ports::Measurement]) {
        let Some(settings) = EVENTS.get() else { return };
        if let Some(line) = emf_line(settings, dimensions, measurements) {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
    }
}

/// One EMF line: `Service` and `dimensions` as the dimension set, every measurement a metric.
fn emf_line(
    settings: &EmfSettings,
    dimensions: &[(&str, &str)],
    measurements: &[tdev_domain::ports::Measurement],
) -> Option<serde_json::Value> {
    let names: Vec<&str> =
        std::iter::once("Service").chain(dimensions.iter().map(|(name, _)| *name)).collect();
    let metrics: Vec<serde_json::Value> =
        measurements.iter().map(|m| json!({"Name": m.name, "Unit": m.unit})).collect();
    let mut line = json!({
        "_aws": {
            "Timestamp": jiff::Timestamp::now().as_millisecond(),
            "CloudWatchMetrics": [{"Namespace": settings.namespace, "Dimensions": [names], "Metrics": metrics}]
        },
        "Service": settings.service,
    });
    let object = line.as_object_mut()?;
    for (name, value) in dimensions {
        object.insert((*name).to_owned(), json!(value));
    }
    for m in measurements {
        object.insert(m.name.to_owned(), json!(m.value));
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use tdev_domain::ports::Measurement;

    use super::*;

    #[test]
    fn a_line_names_its_dimensions_and_every_measurement() {
        let settings = EmfSettings { namespace: "TDeveloper".into(), service: "step-worker".into() };
        let figures = [
            Measurement { name: "SquadTasks", value: 1.0, unit: "Count" },
            Measurement { name: "SquadAgreementRate", value: 66.5, unit: "Percent" },
        ];
        let line = emf_line(&settings, &[("Squad", "board")], &figures).unwrap();
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Dimensions"], json!([["Service", "Squad"]]));
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "SquadTasks", "Unit": "Count"}, {"Name": "SquadAgreementRate", "Unit": "Percent"}])
        );
        assert_eq!(
            (line["Squad"].clone(), line["SquadAgreementRate"].clone()),
            (json!("board"), json!(66.5))
        );
        assert_eq!(line["Service"], "step-worker");
    }
}
