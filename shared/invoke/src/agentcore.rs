//! AgentCore runtimes: `InvokeAgentRuntime`, the payload as the request's body.

use aws_sdk_bedrockagentcore::operation::invoke_agent_runtime::InvokeAgentRuntimeError;
use aws_sdk_bedrockagentcore::primitives::Blob;
use serde_json::{Map, Value};
use tdev_domain::agents::InvokeError;

use crate::answer::{excerpt, to_bytes};
use crate::{error_chain, sdk};

const CALL: &str = "AgentCore InvokeAgentRuntime";

pub(crate) async fn invoke(
    client: &aws_sdk_bedrockagentcore::Client,
    runtime_arn: &str,
    qualifier: Option<&str>,
    payload: &Value,
) -> Result<Map<String, Value>, InvokeError> {
    let output = client
        .invoke_agent_runtime()
        .agent_runtime_arn(runtime_arn)
        .set_qualifier(qualifier.map(str::to_owned))
        .content_type("application/json")
        .payload(Blob::new(to_bytes(payload)?))
        .send()
        .await
        .map_err(|e| sdk::failure(CALL, e, transient, sdk::http_status))?;
    let body =
        output.response.collect().await.map_err(|e| {
            InvokeError::Unavailable(format!("{CALL}: reading the answer: {}", error_chain(&e)))
        })?;
    answer(body.into_bytes().to_vec())
}

/// The body if it is a JSON object; else its text as `{"output": <text>}` (a runtime is
/// free to answer plain text).
pub(crate) fn answer(body: Vec<u8>) -> Result<Map<String, Value>, InvokeError> {
    if let Ok(Value::Object(object)) = serde_json::from_slice(&body) {
        return Ok(object);
    }
    match String::from_utf8(body) {
        Ok(text) => Ok(Map::from_iter([("output".to_owned(), Value::String(text))])),
        Err(e) => Err(InvokeError::Rejected(format!(
            "{CALL}: the runtime answered neither JSON nor UTF-8 text: {}",
            excerpt(&String::from_utf8_lossy(e.as_bytes()))
        ))),
    }
}

/// Throttling, the service's own failures, and a conflict the service itself calls
/// retryable; validation, access, not found and the runtime's own errors are refusals.
fn transient(error: &InvokeAgentRuntimeError) -> bool {
    matches!(
        error,
        InvokeAgentRuntimeError::ThrottlingException(_)
            | InvokeAgentRuntimeError::ServiceQuotaExceededException(_)
            | InvokeAgentRuntimeError::InternalServerException(_)
            | InvokeAgentRuntimeError::RetryableConflictException(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_object_is_the_answer() {
        let answer = answer(br#"{"result": 3}"#.to_vec());
        assert_eq!(answer.map(Value::Object), Ok(serde_json::json!({"result": 3})));
    }

    #[test]
    fn text_is_wrapped() {
        let answer = answer(b"plain words".to_vec());
        assert_eq!(answer.map(Value::Object), Ok(serde_json::json!({"output": "plain words"})));
    }

    #[test]
    fn bytes_that_are_not_text_are_rejected() {
        assert!(matches!(answer(b"\xff\xfe".to_vec()), Err(InvokeError::Rejected(_))));
    }
}
