//! A request id on every response and log line: the caller's `x-request-id` if sent and
//! usable, else API Gateway's request id, else a new UUID.
//!
//! A caller's id is echoed in the response and written into every log line of the
//! request, so it is used only when it is at most [`MAX_LEN`] characters of
//! `A-Z a-z 0-9 - _ . :`; any other is replaced, as if none had been sent.

use axum::http::{HeaderValue, Request};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use tower_http::request_id::{MakeRequestId, RequestId};

pub const HEADER: &str = "x-request-id";
/// The longest caller-chosen request id kept (a UUID is 36).
pub const MAX_LEN: usize = 128;

fn usable(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Removes a caller's request id that is too long or holds other characters, so that
/// [`MakeId`] makes a new one.
pub fn drop_unusable<B>(mut request: Request<B>) -> Request<B> {
    let all_usable = request.headers().get_all(HEADER).iter().count() <= 1
        && request.headers().get(HEADER).is_none_or(|v| usable(v.as_bytes()));
    if !all_usable {
        request.headers_mut().remove(HEADER);
    }
    request
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callers_id_is_kept_only_when_short_and_plain() {
        let with = |id: &str| {
            let request = Request::builder().header(HEADER, id).body(()).unwrap();
            drop_unusable(request).headers().get(HEADER).map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(with("abc-123_x.y:z").as_deref(), Some("abc-123_x.y:z"));
        assert_eq!(with(&"a".repeat(MAX_LEN)).map(|v| v.len()), Some(MAX_LEN));
        assert_eq!(with(&"a".repeat(MAX_LEN + 1)), None);
        assert_eq!(with("has space"), None);
        assert_eq!(with("<script>"), None);
        let two = Request::builder().header(HEADER, "a").header(HEADER, "b").body(()).unwrap();
        assert_eq!(drop_unusable(two).headers().get(HEADER), None);
    }
}
