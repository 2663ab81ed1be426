//! Lambda, Bedrock agents and AgentCore runtimes, against `aws-smithy-mocks`: the SDK
//! clients are real, and an interceptor answers in place of AWS, either with a modeled
//! output or error, or with raw HTTP responses that the SDK deserializes as it would
//! AWS's (error codes from `x-amzn-errortype`, the Bedrock answer as event-stream
//! frames). moto cannot run Lambda code without Docker and its Bedrock agents do not
//! work with the Rust SDK, so there is no emulator to call instead.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_bedrockagentcore::operation::invoke_agent_runtime::{
    InvokeAgentRuntimeError, InvokeAgentRuntimeInput, InvokeAgentRuntimeOutput,
};
use aws_sdk_bedrockagentcore::primitives::ByteStream;
use aws_sdk_bedrockagentruntime::operation::invoke_agent::InvokeAgentInput;
use aws_sdk_lambda::config::http::HttpResponse;
use aws_sdk_lambda::operation::invoke::{InvokeError as LambdaError, InvokeInput, InvokeOutput};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_mocks::{MockResponse, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use serde_json::{Value, json};
use tdev_domain::agents::{AgentInvoker, AgentTarget, InvokeError};
use tdev_invoke::{AwsClients, Invoker};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Clients that are never called (no region, no credentials), to be replaced by mocks.
fn idle_clients() -> AwsClients {
    AwsClients::new(&aws_config::SdkConfig::builder().build())
}

fn invoker(aws: AwsClients) -> Invoker {
    Invoker::from_clients(reqwest::Client::new(), Some(aws))
}

/// The last request a mocked operation received.
type Seen<T> = Arc<Mutex<Option<T>>>;

fn seen<T: Clone>(cell: &Seen<T>) -> T {
    cell.lock().expect("lock").clone().expect("the operation was called")
}

/// A raw HTTP response as AWS's restJson1 services send errors.
fn aws_error(status: u16, code: &'static str, message: &str) -> HttpResponse {
    let body = json!({"message": message}).to_string();
    let mut response = HttpResponse::new(StatusCode::try_from(status).expect("status"), SdkBody::from(body));
    response.headers_mut().insert("x-amzn-errortype", code);
    response.headers_mut().insert("content-type", "application/json");
    response
}

fn unavailable(result: Result<serde_json::Map<String, Value>, InvokeError>) -> String {
    match result {
        Err(InvokeError::Unavailable(message)) => message,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

fn rejected(result: Result<serde_json::Map<String, Value>, InvokeError>) -> String {
    match result {
        Err(InvokeError::Rejected(message)) => message,
        other => panic!("expected Rejected, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Lambda

/// A Lambda client whose `Invoke` answers with `answer` and records its request. Retries
/// are off: each test sees exactly one answer.
fn lambda(
    answer: impl Fn() -> MockResponse<InvokeOutput, LambdaError> + Send + Sync + 'static,
) -> (Invoker, Seen<InvokeInput>) {
    let cell: Seen<InvokeInput> = Arc::default();
    let record = cell.clone();
    let rule = mock!(aws_sdk_lambda::Client::invoke).then_compute_response(move |request| {
        *record.lock().expect("lock") = Some(request.clone());
        answer()
    });
    let client = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, [&rule], |config| config
        .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled()));
    let mut aws = idle_clients();
    aws.lambda = client;
    (invoker(aws), cell)
}

fn lambda_target() -> AgentTarget {
    AgentTarget::Lambda { function: "arn:aws:lambda:eu-west-1:123456789012:function:extractor:live".into() }
}

fn lambda_answer(payload: &'static [u8]) -> MockResponse<InvokeOutput, LambdaError> {
    MockResponse::Output(InvokeOutput::builder().status_code(200).payload(Blob::new(payload)).build())
}

#[tokio::test]
async fn lambda_sends_the_payload_as_a_request_response_event_and_answers_the_object() {
    let (invoker, request) = lambda(|| lambda_answer(br#"{"fields": {"total": 42}}"#));
    let payload = json!({"input": "invoice.pdf", "nested": {"pages": [1, 2]}, "accents": "é✓"});
    let answer = invoker.invoke(&lambda_target(), &payload, TIMEOUT).await.expect("answer");
    assert_eq!(Value::Object(answer), json!({"fields": {"total": 42}}));

    let request = seen(&request);
    assert_eq!(
        request.function_name(),
        Some("arn:aws:lambda:eu-west-1:123456789012:function:extractor:live")
    );
    assert_eq!(request.invocation_type(), Some(&InvocationType::RequestResponse));
    let event: Value =
        serde_json::from_slice(request.payload().expect("a payload").as_ref()).expect("JSON event");
    assert_eq!(event, payload);
}

#[tokio::test]
async fn lambda_gets_a_delivery_key_in_its_event() {
    let (invoker, request) = lambda(|| lambda_answer(br#"{"ok": true}"#));
    let payload = json!({"id": "m-1", "idempotency_key": "order-42"});
    invoker.invoke(&lambda_target(), &payload, TIMEOUT).await.expect("answer");
    let event: Value =
        serde_json::from_slice(seen(&request).payload().expect("a payload").as_ref()).expect("JSON event");
    assert_eq!(event["idempotency_key"], "order-42");
}

#[tokio::test]
async fn lambda_function_error_is_rejected_with_the_error_payload() {
    let (invoker, _) = lambda(|| {
        MockResponse::Output(
            InvokeOutput::builder()
                .status_code(200)
                .function_error("Unhandled")
                .payload(Blob::new(
                    br#"{"errorType": "KeyError", "errorMessage": "'input'", "stackTrace": []}"#.as_slice(),
                ))
                .build(),
        )
    });
    let message = rejected(invoker.invoke(&lambda_target(), &json!({}), TIMEOUT).await);
    assert!(message.starts_with("the function failed (Unhandled): "), "{message}");
    assert!(message.contains(r#""errorMessage": "'input'""#), "{message}");
}

#[tokio::test]
async fn lambda_answer_that_is_not_an_object_is_rejected() {
    let (invoker, _) = lambda(|| lambda_answer(br#""just a string""#));
    let message = rejected(invoker.invoke(&lambda_target(), &json!({}), TIMEOUT).await);
    assert_eq!(message, r#"the function answered a JSON string instead of an object: "just a string""#);

    let (invoker, _) = lambda(|| lambda_answer(b"null"));
    let message = rejected(invoker.invoke(&lambda_target(), &json!({}), TIMEOUT).await);
    assert_eq!(message, "the function answered a JSON null instead of an object: null");
}

#[tokio::test]
async fn lambda_throttling_is_unavailable() {
    let (invoker, _) =
        lambda(|| MockResponse::Http(aws_error(429, "TooManyRequestsException", "Rate Exceeded.")));
    let message = unavailable(invoker.invoke(&lambda_target(), &json!({}), TIMEOUT).await);
    assert_eq!(message, "Lambda Invoke: TooManyRequestsException: Rate Exceeded.");
}

#[tokio::test]
async fn lambda_service_errors_are_unavailable() {
    // A modeled error, as the SDK hands it over (no code: only the variant tells).
    let (invoker, _) = lambda(|| {
        MockResponse::Error(LambdaError::ServiceException(
            aws_sdk_lambda::types::error::ServiceException::builder().message("internal").build(),
        ))
    });
    let message = unavailable(invoker.invoke(&lambda_target(), &json!({}), TIMEOUT).await);
    assert!(message.starts_with("Lambda Invoke: "), "{message}");

    // A 502 that is not AWS's JSON at all (a proxy's page): judged by its status.
    let (invoker, _) = lambda(|| {
        MockResponse::Http(HttpResponse::new(
            StatusCode::try_from(502).expect("status"),
            SdkBody::from("<html>Bad Gateway</html>"),
        ))
    });
    let message = unavailable(invoker.invoke(&lambda_target(), &json!({}), TIMEOUT).await);
    assert!(message.starts_with("Lambda Invoke: HTTP 502: unhandled error"), "{message}");
}

#[tokio::test]
async fn lambda_refusals_are_rejected() {
    let (invoker, _) = lambda(|| {
        MockResponse::Http(aws_error(404, "ResourceNotFoundException", "Function not found: extractor"))
    });
    let message = rejected(invoker.invoke(&lambda_target(), &json!({}), TIMEOUT).await);
    assert_eq!(message, "Lambda Invoke: ResourceNotFoundException: Function not found: extractor");

    // Lambda's 502 for a disabled KMS key: no retry fixes it.
    let (invoker, _) =
        lambda(|| MockResponse::Http(aws_error(502, "KMSDisabledException", "the key is disabled")));
    let message = rejected(invoker.invoke(&lambda_target(), &json!({}), TIMEOUT).await);
    assert_eq!(message, "Lambda Invoke: KMSDisabledException: the key is disabled");

    // An error code this SDK does not know yet.
    let (invoker, _) = lambda(|| MockResponse::Http(aws_error(400, "BrandNewException", "nope")));
    let message = rejected(invoker.invoke(&lambda_target(), &json!({}), TIMEOUT).await);
    assert_eq!(message, "Lambda Invoke: BrandNewException: nope");
}

// ---------------------------------------------------------------------------------------
// Bedrock agents

/// One event-stream frame, as the service sends it.
fn frame(headers: &[(&'static str, &'static str)], payload: Vec<u8>) -> Vec<u8> {
    let message = Message::new_from_parts(
        headers
            .iter()
            .map(|(name, value)| Header::new(*name, HeaderValue::String((*value).into())))
            .collect(),
        payload,
    );
    let mut bytes = Vec::new();
    write_message_to(&message, &mut bytes).expect("frame");
    bytes
}

/// A `chunk` event carrying `text` (base64 in JSON, as the service encodes blobs).
fn chunk(text: &str) -> Vec<u8> {
    let payload = json!({"bytes": aws_smithy_types::base64::encode(text.as_bytes())}).to_string();
    frame(
        &[(":message-type", "event"), (":event-type", "chunk"), (":content-type", "application/json")],
        payload.into_bytes(),
    )
}

fn stream_exception(kind: &'static str, message: &str) -> Vec<u8> {
    frame(
        &[(":message-type", "exception"), (":exception-type", kind), (":content-type", "application/json")],
        json!({"message": message}).to_string().into_bytes(),
    )
}

/// The HTTP response of an `InvokeAgent` whose stream is `frames`.
fn agent_stream(session_id: &str, frames: Vec<Vec<u8>>) -> HttpResponse {
    let mut response =
        HttpResponse::new(StatusCode::try_from(200).expect("status"), SdkBody::from(frames.concat()));
    response.headers_mut().insert("content-type", "application/vnd.amazon.eventstream");
    response.headers_mut().insert("x-amzn-bedrock-agent-content-type", "application/json");
    response.headers_mut().insert("x-amz-bedrock-agent-session-id", session_id.to_owned());
    response
}

type AgentAnswer = MockResponse<
    aws_sdk_bedrockagentruntime::operation::invoke_agent::InvokeAgentOutput,
    aws_sdk_bedrockagentruntime::operation::invoke_agent::InvokeAgentError,
>;

/// A Bedrock agent client whose `InvokeAgent` answers `answer(request)` and records the
/// request.
fn bedrock(
    answer: impl Fn(&InvokeAgentInput) -> AgentAnswer + Send + Sync + 'static,
) -> (Invoker, Seen<InvokeAgentInput>) {
    let cell: Seen<InvokeAgentInput> = Arc::default();
    let record = cell.clone();
    let rule =
        mock!(aws_sdk_bedrockagentruntime::Client::invoke_agent).then_compute_response(move |request| {
            *record.lock().expect("lock") = Some(request.clone());
            answer(request)
        });
    let client = mock_client!(aws_sdk_bedrockagentruntime, RuleMode::MatchAny, [&rule], |config| config
        .retry_config(aws_sdk_bedrockagentruntime::config::retry::RetryConfig::disabled()));
    let mut aws = idle_clients();
    aws.bedrock_agent = client;
    (invoker(aws), cell)
}

fn agent_target() -> AgentTarget {
    AgentTarget::BedrockAgent { agent_id: "AGENT12345".into(), alias_id: "ALIAS67890".into() }
}

#[tokio::test]
async fn bedrock_agent_sends_the_input_and_session_and_joins_the_chunks() {
    let (invoker, request) = bedrock(|request| {
        let session = request.session_id().unwrap_or_default().to_owned();
        MockResponse::Http(agent_stream(&session, vec![chunk("Hello, "), chunk("wörld"), chunk("!")]))
    });
    let payload = json!({"input": "Say hello", "session_id": "run-42.step-1", "other": 1});
    let answer = invoker.invoke(&agent_target(), &payload, TIMEOUT).await.expect("answer");
    assert_eq!(Value::Object(answer), json!({"output": "Hello, wörld!", "session_id": "run-42.step-1"}));

    let request = seen(&request);
    assert_eq!(request.agent_id(), Some("AGENT12345"));
    assert_eq!(request.agent_alias_id(), Some("ALIAS67890"));
    assert_eq!(request.session_id(), Some("run-42.step-1"));
    assert_eq!(request.input_text(), Some("Say hello"));
}

#[tokio::test]
async fn bedrock_agent_gets_a_delivery_key_as_a_prompt_session_attribute_and_in_its_input() {
    let (invoker, request) = bedrock(|request| {
        let session = request.session_id().unwrap_or_default().to_owned();
        MockResponse::Http(agent_stream(&session, vec![chunk("done")]))
    });
    let payload = json!({"id": "m-1", "payload": {"n": 1}, "idempotency_key": "order-42"});
    invoker.invoke(&agent_target(), &payload, TIMEOUT).await.expect("answer");
    let request = seen(&request);
    let attributes = request.session_state().and_then(|state| state.prompt_session_attributes());
    assert_eq!(attributes.and_then(|a| a.get("idempotency_key")).map(String::as_str), Some("order-42"));
    let input: Value = serde_json::from_str(request.input_text().expect("input text")).expect("JSON input");
    assert_eq!(input["idempotency_key"], "order-42");

    let (invoker, request) = bedrock(|request| {
        let session = request.session_id().unwrap_or_default().to_owned();
        MockResponse::Http(agent_stream(&session, vec![chunk("done")]))
    });
    invoker.invoke(&agent_target(), &json!({"input": "x"}), TIMEOUT).await.expect("answer");
    assert_eq!(seen(&request).session_state(), None, "no key, no session state");
}

#[tokio::test]
async fn bedrock_agent_without_input_or_session_gets_the_payload_and_a_new_session() {
    let (invoker, request) = bedrock(|request| {
        let session = request.session_id().unwrap_or_default().to_owned();
        // Asked for structured output, the agent answers a JSON object, in two chunks.
        MockResponse::Http(agent_stream(
            &session,
            vec![chunk(r#"{"label": "sp"#), chunk(r#"am", "score": 0.9}"#)],
        ))
    });
    let payload = json!({"document": "Buy now!", "session_id": 7});
    let answer = invoker.invoke(&agent_target(), &payload, TIMEOUT).await.expect("answer");
    assert_eq!(Value::Object(answer), json!({"label": "spam", "score": 0.9}));

    let request = seen(&request);
    let sent: Value = serde_json::from_str(request.input_text().expect("input text")).expect("JSON input");
    assert_eq!(sent, payload);
    let session = request.session_id().expect("a session id");
    assert!(uuid::Uuid::parse_str(session).is_ok(), "a new UUID: {session}");
}

#[tokio::test]
async fn bedrock_agent_throttling_and_server_errors_are_unavailable() {
    let (invoker, _) =
        bedrock(|_| MockResponse::Http(aws_error(429, "ThrottlingException", "Rate exceeded")));
    let message = unavailable(invoker.invoke(&agent_target(), &json!({"input": "x"}), TIMEOUT).await);
    assert_eq!(message, "Bedrock InvokeAgent: ThrottlingException: Rate exceeded");

    let (invoker, _) = bedrock(|_| MockResponse::Http(aws_error(500, "InternalServerException", "oops")));
    unavailable(invoker.invoke(&agent_target(), &json!({"input": "x"}), TIMEOUT).await);
}

#[tokio::test]
async fn bedrock_agent_validation_and_access_errors_are_rejected() {
    let (invoker, _) =
        bedrock(|_| MockResponse::Http(aws_error(400, "ValidationException", "sessionId is malformed")));
    let message = rejected(invoker.invoke(&agent_target(), &json!({"input": "x"}), TIMEOUT).await);
    assert_eq!(message, "Bedrock InvokeAgent: ValidationException: sessionId is malformed");

    let (invoker, _) =
        bedrock(|_| MockResponse::Http(aws_error(403, "AccessDeniedException", "not allowed")));
    let message = rejected(invoker.invoke(&agent_target(), &json!({"input": "x"}), TIMEOUT).await);
    assert_eq!(message, "Bedrock InvokeAgent: AccessDeniedException: not allowed");
}

#[tokio::test]
async fn bedrock_agent_errors_in_the_stream_are_mapped_too() {
    let (invoker, _) = bedrock(|_| {
        MockResponse::Http(agent_stream(
            "s",
            vec![chunk("Hel"), stream_exception("throttlingException", "slow down")],
        ))
    });
    let message = unavailable(invoker.invoke(&agent_target(), &json!({"input": "x"}), TIMEOUT).await);
    assert!(
        message.starts_with("Bedrock InvokeAgent: ") && message.ends_with("ThrottlingException: slow down"),
        "{message}"
    );

    let (invoker, _) = bedrock(|_| {
        MockResponse::Http(agent_stream("s", vec![stream_exception("validationException", "bad input")]))
    });
    let message = rejected(invoker.invoke(&agent_target(), &json!({"input": "x"}), TIMEOUT).await);
    assert!(message.ends_with("ValidationException: bad input"), "{message}");
}

#[tokio::test]
async fn bedrock_agent_returning_control_is_rejected() {
    let (invoker, _) = bedrock(|_| {
        let payload = json!({"invocationId": "i-1", "invocationInputs": []}).to_string().into_bytes();
        let event = frame(
            &[
                (":message-type", "event"),
                (":event-type", "returnControl"),
                (":content-type", "application/json"),
            ],
            payload,
        );
        MockResponse::Http(agent_stream("s", vec![event]))
    });
    let message = rejected(invoker.invoke(&agent_target(), &json!({"input": "x"}), TIMEOUT).await);
    assert!(message.contains("RETURN_CONTROL"), "{message}");
}

// ---------------------------------------------------------------------------------------
// AgentCore runtimes

type RuntimeAnswer = MockResponse<InvokeAgentRuntimeOutput, InvokeAgentRuntimeError>;

/// An AgentCore client whose `InvokeAgentRuntime` answers with `answer` and records the
/// request.
fn agentcore(
    answer: impl Fn() -> RuntimeAnswer + Send + Sync + 'static,
) -> (Invoker, Seen<InvokeAgentRuntimeInput>) {
    let cell: Seen<InvokeAgentRuntimeInput> = Arc::default();
    let record = cell.clone();
    let rule =
        mock!(aws_sdk_bedrockagentcore::Client::invoke_agent_runtime).then_compute_response(move |request| {
            *record.lock().expect("lock") = Some(request.clone());
            answer()
        });
    let client = mock_client!(aws_sdk_bedrockagentcore, RuleMode::MatchAny, [&rule], |config| config
        .retry_config(aws_sdk_bedrockagentcore::config::retry::RetryConfig::disabled()));
    let mut aws = idle_clients();
    aws.agentcore = client;
    (invoker(aws), cell)
}

const RUNTIME_ARN: &str = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/summariser-AbCdEf1234";

fn runtime_answer(content_type: &str, body: &'static [u8]) -> RuntimeAnswer {
    MockResponse::Output(
        InvokeAgentRuntimeOutput::builder()
            .content_type(content_type)
            .response(ByteStream::from_static(body))
            .status_code(200)
            .build()
            .expect("output"),
    )
}

#[tokio::test]
async fn agentcore_sends_the_payload_and_answers_the_json_object() {
    let (invoker, request) = agentcore(|| runtime_answer("application/json", br#"{"summary": "short"}"#));
    let target =
        AgentTarget::AgentcoreRuntime { runtime_arn: RUNTIME_ARN.into(), qualifier: Some("prod".into()) };
    let payload = json!({"prompt": "Summarise this", "n": [1, 2, 3]});
    let answer = invoker.invoke(&target, &payload, TIMEOUT).await.expect("answer");
    assert_eq!(Value::Object(answer), json!({"summary": "short"}));

    let request = seen(&request);
    assert_eq!(request.agent_runtime_arn(), Some(RUNTIME_ARN));
    assert_eq!(request.qualifier(), Some("prod"));
    assert_eq!(request.content_type(), Some("application/json"));
    let body: Value =
        serde_json::from_slice(request.payload().expect("a payload").as_ref()).expect("JSON body");
    assert_eq!(body, payload);
}

#[tokio::test]
async fn agentcore_gets_a_delivery_key_in_its_body() {
    let (invoker, request) = agentcore(|| runtime_answer("application/json", br#"{"ok": true}"#));
    let target = AgentTarget::AgentcoreRuntime { runtime_arn: RUNTIME_ARN.into(), qualifier: None };
    let payload = json!({"id": "m-1", "idempotency_key": "order-42"});
    invoker.invoke(&target, &payload, TIMEOUT).await.expect("answer");
    let body: Value =
        serde_json::from_slice(seen(&request).payload().expect("a payload").as_ref()).expect("JSON body");
    assert_eq!(body["idempotency_key"], "order-42");
}

#[tokio::test]
async fn agentcore_text_is_wrapped_and_the_qualifier_is_optional() {
    let (invoker, request) = agentcore(|| runtime_answer("text/plain", b"A short summary."));
    let target = AgentTarget::AgentcoreRuntime { runtime_arn: RUNTIME_ARN.into(), qualifier: None };
    let answer = invoker.invoke(&target, &json!({"prompt": "x"}), TIMEOUT).await.expect("answer");
    assert_eq!(Value::Object(answer), json!({"output": "A short summary."}));
    assert_eq!(seen(&request).qualifier(), None);
}

#[tokio::test]
async fn agentcore_throttling_is_unavailable_and_refusals_are_rejected() {
    let target = AgentTarget::AgentcoreRuntime { runtime_arn: RUNTIME_ARN.into(), qualifier: None };

    let (invoker, _) =
        agentcore(|| MockResponse::Http(aws_error(429, "ThrottlingException", "Rate exceeded")));
    let message = unavailable(invoker.invoke(&target, &json!({}), TIMEOUT).await);
    assert_eq!(message, "AgentCore InvokeAgentRuntime: ThrottlingException: Rate exceeded");

    let (invoker, _) = agentcore(|| {
        MockResponse::Error(InvokeAgentRuntimeError::InternalServerException(
            aws_sdk_bedrockagentcore::types::error::InternalServerException::builder()
                .message("internal")
                .build(),
        ))
    });
    unavailable(invoker.invoke(&target, &json!({}), TIMEOUT).await);

    let (invoker, _) =
        agentcore(|| MockResponse::Http(aws_error(403, "AccessDeniedException", "not allowed")));
    let message = rejected(invoker.invoke(&target, &json!({}), TIMEOUT).await);
    assert_eq!(message, "AgentCore InvokeAgentRuntime: AccessDeniedException: not allowed");

    let (invoker, _) =
        agentcore(|| MockResponse::Http(aws_error(424, "RuntimeClientError", "the agent crashed")));
    let message = rejected(invoker.invoke(&target, &json!({}), TIMEOUT).await);
    assert_eq!(message, "AgentCore InvokeAgentRuntime: RuntimeClientError: the agent crashed");
}
