//! The guard in front of every `/v1` route: who is calling, and may they call now.
//!
//! In Lambda the authorizer has already decided and put its verdict in the request
//! context; locally the guard asks the same [`AuthService::authenticate`]. Then the
//! caller's token bucket is charged, and the response carries `RateLimit-*` headers.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lambda_http::RequestExt;
use tdev_domain::auth::{
    ApiKeyStore, AuthError, AuthService, Credentials, Principal, RateDecision, RateLimitStore, Scope, Verdict,
};
use tdev_domain::ports::SecretStore;

use crate::problem::ApiError;

/// Where the authentication verdict comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Behind API Gateway: read the verdict the Lambda authorizer put in the context.
    /// A request without one is refused, so a route left without the authorizer fails
    /// closed.
    AuthorizerContext,
    /// The local stack: authenticate here.
    Authenticate,
}

struct Guard<S> {
    service: Arc<AuthService<S>>,
    mode: Mode,
}

/// Puts the guard in front of every route of `router`.
pub fn layer<S>(router: axum::Router, service: Arc<AuthService<S>>, mode: Mode) -> axum::Router
where
    S: ApiKeyStore + SecretStore + RateLimitStore,
{
    let guard = Arc::new(Guard { service, mode });
    router.layer(axum::middleware::from_fn_with_state(guard, check::<S>))
}

async fn check<S>(State(guard): State<Arc<Guard<S>>>, mut request: Request, next: Next) -> Response
where
    S: ApiKeyStore + SecretStore + RateLimitStore,
{
    let verdict = match guard.mode {
        Mode::AuthorizerContext => verdict_from_authorizer(&request),
        Mode::Authenticate => match guard.service.authenticate(credentials(request.headers())).await {
            Ok(principal) => Verdict::Authenticated(principal),
            Err(AuthError::Unauthenticated(failure)) => Verdict::from(Err(failure)),
            Err(other) => return ApiError::from(other).into_response(),
        },
    };
    let principal = match verdict {
        Verdict::Authenticated(principal) => principal,
        Verdict::Unauthenticated { code, detail } => {
            let source = source_address(&request);
            tracing::info!(code = %code, source = %source, "unauthenticated request");
            return match guard.service.rate_limit_failure(&source).await {
                Ok(decision) if !decision.allowed => {
                    let retry_after_secs = decision.retry_after_secs.unwrap_or(1);
                    let mut response = ApiError::RateLimited { retry_after_secs }.into_response();
                    rate_limit_headers(response.headers_mut(), &decision);
                    response
                }
                // A store that cannot count does not turn a 401 into a 503.
                _ => ApiError::Unauthenticated { code, detail }.into_response(),
            };
        }
    };
    let decision = match guard.service.rate_limit(&principal).await {
        Ok(decision) => decision,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let mut response = match decision.retry_after_secs {
        Some(retry_after_secs) if !decision.allowed => {
            tracing::info!(client = %principal.key_id, "rate limited");
            ApiError::RateLimited { retry_after_secs }.into_response()
        }
        _ => {
            request.extensions_mut().insert(Caller(principal));
            next.run(request).await
        }
    };
    rate_limit_headers(response.headers_mut(), &decision);
    response
}

/// Where a request came from: API Gateway's source IP, else the peer address the local
/// server saw, else `unknown` (all such requests share one bucket).
fn source_address(request: &Request) -> String {
    if let Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) = request.request_context_ref()
        && let Some(ip) = context.http.source_ip.as_deref()
    {
        return ip.to_owned();
    }
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |info| info.0.ip().to_string())
}

/// Reads the `Authorization` and `X-Api-Key` headers.
pub fn credentials(headers: &HeaderMap) -> Credentials {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or(""));
    Credentials::from_headers(text("authorization"), text("x-api-key"))
}

fn verdict_from_authorizer(request: &Request) -> Verdict {
    request
        .request_context_ref()
        .and_then(|context| context.authorizer())
        .map(|authorizer| authorizer.fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .and_then(|context| Verdict::from_context(&context))
        .unwrap_or_else(|| Verdict::Unauthenticated {
            code: "no_authorizer_verdict".into(),
            detail: "the request did not pass through the authorizer".into(),
        })
}

/// `RateLimit-Limit`, `-Remaining` and `-Reset` (IETF draft "RateLimit header fields").
fn rate_limit_headers(headers: &mut HeaderMap, decision: &RateDecision) {
    headers.insert("ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(decision.reset_secs));
}

/// The authenticated caller of a `/v1` route.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    /// 403 unless the caller holds `scope` (or `admin`).
    pub fn require(&self, scope: Scope) -> Result<&Principal, ApiError> {
        if self.0.may(scope) {
            Ok(&self.0)
        } else {
            Err(ApiError::Forbidden(format!("this operation needs the `{scope}` scope")))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or(ApiError::Unauthenticated {
            code: "missing_credentials".into(),
            detail: "this route needs authentication".into(),
        })
    }
}
