//! A request id on every response and log line: the caller's `x-request-id` if sent,
//! else API Gateway's request id, else a new UUID.

use axum::http::{HeaderValue, Request};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use tower_http::request_id::{MakeRequestId, RequestId};

pub const HEADER: &str = "x-request-id";

#[derive(Debug, Clone, Copy, Default)]
pub struct MakeId;

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, request: &Request<B>) -> Option<RequestId> {
        let from_gateway = match request.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(context)) => context.request_id.clone(),
            _ => None,
        };
        let id = from_gateway.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}
