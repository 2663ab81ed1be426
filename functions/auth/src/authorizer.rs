//! The Lambda authorizer for the HTTP API (payload 2.0, simple responses).
//!
//! It always answers `isAuthorized: true` and puts its verdict in the context: an HTTP
//! API can only answer a denial with a bare 403, while a caller with a bad credential
//! deserves a 401 problem document saying why. The function's guard reads the verdict
//! and answers 401 itself before any handler runs (see `tdev_http::guard`).

use aws_lambda_events::apigw::{
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
};
use serde_json::Value;
use tdev_domain::auth::{ApiKeyStore, AuthError, AuthService, Credentials, Verdict};
use tdev_domain::ports::SecretStore;

/// Decides one request. An error (the store is down) makes API Gateway answer 500,
/// which is right: nobody is let in on a guess.
pub async fn authorize<S: ApiKeyStore + SecretStore>(
    service: &AuthService<S>,
    event: &ApiGatewayV2CustomAuthorizerV2Request,
) -> Result<ApiGatewayV2CustomAuthorizerSimpleResponse, AuthError> {
    let header = |name: &str| event.headers.get(name).map(|v| v.to_str().unwrap_or(""));
    let credentials = Credentials::from_headers(header("authorization"), header("x-api-key"));
    let verdict = match service.authenticate(credentials).await {
        Ok(principal) => Verdict::Authenticated(principal),
        Err(AuthError::Unauthenticated(failure)) => Verdict::from(Err(failure)),
        Err(other) => return Err(other),
    };
    let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
    response.is_authorized = true;
    response.context = Value::Object(verdict.to_context());
    Ok(response)
}
