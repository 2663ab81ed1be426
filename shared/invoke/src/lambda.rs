//! Lambda agents: `Invoke`, `RequestResponse`, the payload as the event.

use aws_sdk_lambda::operation::invoke::InvokeError as LambdaError;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use serde_json::{Map, Value};
use tdev_domain::agents::InvokeError;

use crate::answer::{bytes_excerpt, json_object, to_bytes};
use crate::sdk;

const CALL: &str = "Lambda Invoke";

pub(crate) async fn invoke(
    client: &aws_sdk_lambda::Client,
    function: &str,
    payload: &Value,
) -> Result<Map<String, Value>, InvokeError> {
    let output = client
        .invoke()
        .function_name(function)
        .invocation_type(InvocationType::RequestResponse)
        .payload(Blob::new(to_bytes(payload)?))
        .send()
        .await
        .map_err(|e| sdk::failure(CALL, e, transient, sdk::http_status))?;
    let answer = output.payload.as_ref().map(Blob::as_ref).unwrap_or_default();
    // Lambda answers 200 when the function itself failed (it threw, timed out, ran out of
    // memory); `FunctionError` ("Unhandled") says so, and the payload holds the error.
    if let Some(kind) = &output.function_error {
        return Err(InvokeError::Rejected(format!(
            "the function failed ({kind}): {}",
            bytes_excerpt(answer)
        )));
    }
    json_object(answer).map_err(|what| InvokeError::Rejected(format!("the function answered {what}")))
}

/// The modeled errors after which the same call may succeed: throttling, Lambda's own
/// failures, and a function (or its network, file system, SnapStart snapshot) still being
/// set up.
fn transient(error: &LambdaError) -> bool {
    matches!(
        error,
        LambdaError::TooManyRequestsException(_)
            | LambdaError::ServiceException(_)
            | LambdaError::Ec2ThrottledException(_)
            | LambdaError::Ec2UnexpectedException(_)
            | LambdaError::EniLimitReachedException(_)
            | LambdaError::SubnetIpAddressLimitReachedException(_)
            | LambdaError::ResourceNotReadyException(_)
            | LambdaError::ResourceConflictException(_)
            | LambdaError::CodeArtifactUserPendingException(_)
            | LambdaError::SnapStartNotReadyException(_)
            | LambdaError::SnapStartTimeoutException(_)
            | LambdaError::EfsMountConnectivityException(_)
            | LambdaError::EfsMountTimeoutException(_)
            | LambdaError::EfsioException(_)
            | LambdaError::S3FilesMountConnectivityException(_)
            | LambdaError::S3FilesMountTimeoutException(_)
    )
}
