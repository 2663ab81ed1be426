//! Request metrics as CloudWatch Embedded Metric Format (see `tdev_runtime::metrics`): one
//! JSON line per request on stdout.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;
use tdev_runtime::metrics::EmfSettings;

pub fn layer(router: axum::Router, settings: EmfSettings) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(Arc::new(settings), record))
}

async fn record(State(settings): State<Arc<EmfSettings>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let line = emf_line(&settings, &method, &path, status, started.elapsed().as_secs_f64() * 1000.0);
    let mut out = std::io::stdout().lock();
    // A metric that cannot be written must not fail the request it measures.
    let _ = writeln!(out, "{line}");
    response
}

fn emf_line(settings: &EmfSettings, method: &str, path: &str, status: u16, latency_ms: f64) -> String {
    let timestamp = jiff::Timestamp::now().as_millisecond();
    json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": settings.namespace,
                "Dimensions": [["Service"]],
                "Metrics": [
                    {"Name": "Requests", "Unit": "Count"},
                    {"Name": "Latency", "Unit": "Milliseconds"},
                    {"Name": "Errors", "Unit": "Count"},
                    {"Name": "ClientErrors", "Unit": "Count"},
                    {"Name": "Throttles", "Unit": "Count"}
                ]
            }]
        },
        "Service": settings.service,
        "Method": method,
        "Path": path,
        "Status": status,
        "Requests": 1,
        "Latency": latency_ms,
        "Errors": u8::from(status >= 500),
        "ClientErrors": u8::from((400..500).contains(&status)),
        "Throttles": u8::from(status == 429),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_request_is_a_client_error_and_a_throttle() {
        let settings = EmfSettings { namespace: "TDeveloper".into(), service: "auth".into() };
        let line: serde_json::Value =
            serde_json::from_str(&emf_line(&settings, "GET", "/v1/keys", 429, 1.5)).unwrap();
        assert_eq!(line["Throttles"], 1);
        assert_eq!(line["ClientErrors"], 1);
        assert_eq!(line["Errors"], 0);
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "TDeveloper");
        let names: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for name in &names {
            assert!(line.get(name).is_some(), "{name} has a value");
        }
    }
}
