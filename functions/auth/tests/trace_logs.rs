//! Every log line of a Lambda invocation carries its X-Ray trace id. In a test binary of
//! its own: tracing caches which callsites are enabled per process, and tests on other
//! threads without a subscriber made that cache drop this test's lines now and then.

mod support;

use std::sync::Arc;

use serde_json::{Value, json};
use support::{Call, fixture, lambda, set_route};
use tower::ServiceExt as _;

#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

#[tokio::test]
async fn every_log_line_of_an_invocation_names_its_x_ray_trace() {
    let lambda = lambda().await;
    let logs = Logs::default();
    // This thread only (a current-thread runtime): other tests keep their own output.
    let _subscriber =
        tracing::subscriber::set_default(tdev_runtime::telemetry::subscriber("info", logs.clone()));
    let trace = "Root=1-6650f1c2-5e2d1c0b9a8f7e6d5c4b3a29;Parent=53995c3f42cd8ad8;Sampled=1";
    let mut context = lambda_http::Context::default();
    context.request_id = "e6f4a9d2-invocation".into();
    context.xray_trace_id = Some(trace.into());

    // As lambda_http::run does: the event through the adapter, in the runtime's span.
    let mut event = fixture("http-request.json");
    let call = Call::post("/v1/tokens", &json!({"api_key": "tdev_not-a-key"}).to_string());
    set_route(&mut event, &call);
    event["body"] = json!(call.body);
    let request: lambda_http::request::LambdaRequest = serde_json::from_value(event).unwrap();
    let span = lambda_http::lambda_runtime::layers::trace::request_span(&context);
    let adapter = lambda_http::Adapter::from(lambda.app.clone());
    let response = tracing::Instrument::instrument(
        adapter.oneshot(lambda_http::LambdaEvent::new(request, context)),
        span,
    )
    .await
    .unwrap();
    let response = serde_json::to_value(response).unwrap();
    assert_eq!(response["statusCode"], 401, "a bad key: {response}");

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert!(lines.len() >= 2, "the request's lines: {text}");
    for line in &lines {
        let spans = line["spans"].as_array().unwrap_or_else(|| panic!("no spans: {line}"));
        assert_eq!(spans[0]["xrayTraceId"], trace, "{line}");
        assert_eq!(spans[0]["requestId"], "e6f4a9d2-invocation", "{line}");
    }
    assert!(lines.iter().any(|l| l["message"] == "finished processing request"), "{text}");
}
