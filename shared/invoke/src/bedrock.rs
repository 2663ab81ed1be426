//! Bedrock agents: `InvokeAgent`, whose answer is an event stream of text chunks. The
//! payload's idempotency key (if it has one) is also the prompt session attribute
//! `idempotency_key`.

use aws_sdk_bedrockagentruntime::operation::invoke_agent::InvokeAgentError;
use aws_sdk_bedrockagentruntime::types::error::ResponseStreamError;
use aws_sdk_bedrockagentruntime::types::{ResponseStream, SessionState};
use serde_json::{Map, Value};
use tdev_domain::agents::{IDEMPOTENCY_KEY_FIELD, InvokeError};

use crate::{idempotency_key, sdk};

const CALL: &str = "Bedrock InvokeAgent";

pub(crate) async fn invoke(
    client: &aws_sdk_bedrockagentruntime::Client,
    agent_id: &str,
    alias_id: &str,
    payload: &Value,
) -> Result<Map<String, Value>, InvokeError> {
    // A caller that wants a conversation passes the session id back; the agent keeps
    // the conversation's memory under it.
    let session_id = match payload.get("session_id") {
        Some(Value::String(id)) => id.clone(),
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let input_text = match payload.get("input") {
        Some(Value::String(text)) => text.clone(),
        _ => payload.to_string(),
    };
    // An action group's Lambda function sees the prompt session attributes.
    let session_state = idempotency_key(payload)
        .map(|key| SessionState::builder().prompt_session_attributes(IDEMPOTENCY_KEY_FIELD, key).build());
    let mut output = client
        .invoke_agent()
        .agent_id(agent_id)
        .agent_alias_id(alias_id)
        .session_id(&session_id)
        .input_text(input_text)
        .set_session_state(session_state)
        .send()
        .await
        .map_err(|e| sdk::failure(CALL, e, transient, sdk::http_status))?;
    let mut chunks = Vec::new();
    while let Some(event) = output
        .completion
        .recv()
        .await
        .map_err(|e| sdk::failure(CALL, e, stream_transient, |_message| None))?
    {
        match event {
            ResponseStream::Chunk(part) => {
                if let Some(bytes) = part.bytes {
                    chunks.push(bytes.into_inner());
                }
            }
            // The agent wants its caller to run an action group's function and send the
            // result back: a conversation T-Developer's runs do not hold.
            ResponseStream::ReturnControl(_) => {
                return Err(InvokeError::Rejected(
                    "the agent returned control to its caller (an action group with RETURN_CONTROL), \
                     which T-Developer does not support: give the action group a Lambda function"
                        .to_owned(),
                ));
            }
            // Traces and files are not part of the answer.
            _ => {}
        }
    }
    let text = assemble(chunks)?;
    // The service echoes the session id; prefer its word, should it ever differ.
    let session_id = if output.session_id.is_empty() { session_id } else { output.session_id };
    Ok(answer(text, session_id))
}

/// The streamed chunks as one text. The bytes are joined before decoding: a chunk may end
/// in the middle of a multi-byte character.
pub(crate) fn assemble<B: AsRef<[u8]>>(chunks: impl IntoIterator<Item = B>) -> Result<String, InvokeError> {
    let mut bytes = Vec::new();
    for chunk in chunks {
        bytes.extend_from_slice(chunk.as_ref());
    }
    String::from_utf8(bytes)
        .map_err(|e| InvokeError::Rejected(format!("{CALL}: the agent's answer is not UTF-8 text: {e}")))
}

/// `{"output": text, "session_id": id}`; but an agent asked for structured output answers
/// a JSON object as its text, and then that object is the answer.
pub(crate) fn answer(text: String, session_id: String) -> Map<String, Value> {
    if let Ok(Value::Object(object)) = serde_json::from_str(&text) {
        return object;
    }
    Map::from_iter([
        ("output".to_owned(), Value::String(text)),
        ("session_id".to_owned(), Value::String(session_id)),
    ])
}

/// Throttling and the service's (or its model's) passing failures; validation, access,
/// not found, conflict and a failed dependency (an action group's Lambda) are refusals.
fn transient(error: &InvokeAgentError) -> bool {
    matches!(
        error,
        InvokeAgentError::ThrottlingException(_)
            | InvokeAgentError::ServiceQuotaExceededException(_)
            | InvokeAgentError::InternalServerException(_)
            | InvokeAgentError::BadGatewayException(_)
            | InvokeAgentError::ModelNotReadyException(_)
    )
}

/// The same errors, arriving in the middle of the stream.
fn stream_transient(error: &ResponseStreamError) -> bool {
    matches!(
        error,
        ResponseStreamError::ThrottlingException(_)
            | ResponseStreamError::ServiceQuotaExceededException(_)
            | ResponseStreamError::InternalServerException(_)
            | ResponseStreamError::BadGatewayException(_)
            | ResponseStreamError::ModelNotReadyException(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_joined_before_decoding() {
        // "né" with the two bytes of "é" in different chunks.
        let chunks: [&[u8]; 3] = [b"n", b"\xc3", b"\xa9"];
        assert_eq!(assemble(chunks), Ok("né".to_owned()));
    }

    #[test]
    fn no_chunks_is_an_empty_text() {
        assert_eq!(assemble(Vec::<Vec<u8>>::new()), Ok(String::new()));
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let chunks: [&[u8]; 1] = [b"\xff"];
        assert!(matches!(assemble(chunks), Err(InvokeError::Rejected(_))));
    }

    #[test]
    fn text_is_wrapped_with_the_session() {
        let answer = answer("Hello".to_owned(), "s-1".to_owned());
        assert_eq!(Value::Object(answer), serde_json::json!({"output": "Hello", "session_id": "s-1"}));
    }

    #[test]
    fn a_json_object_text_is_the_answer() {
        let answer = answer(r#" {"label": "spam", "score": 0.9} "#.to_owned(), "s-1".to_owned());
        assert_eq!(Value::Object(answer), serde_json::json!({"label": "spam", "score": 0.9}));
    }

    #[test]
    fn other_json_text_is_wrapped() {
        let answer = answer("[1, 2]".to_owned(), "s-1".to_owned());
        assert_eq!(Value::Object(answer), serde_json::json!({"output": "[1, 2]", "session_id": "s-1"}));
    }
}
