//! The layers every response passes through, applied once to the whole router.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::json::BodyLimit;
use crate::metrics::{self, EmfSettings};
use crate::problem::ApiError;
use crate::request_id::{HEADER, MakeId};

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub max_body_bytes: usize,
    /// `None`: no metrics (the local stack's default).
    pub emf: Option<EmfSettings>,
}

impl HttpSettings {
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
}

/// Adds problem+json for unknown routes and methods, the body limit, metrics, request
/// ids, request logs and a 500 problem for a panic.
pub fn finish(router: Router, settings: &HttpSettings) -> Router {
    let router = router
        .fallback(|| async { ApiError::NotFound("no route for this path".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(axum::Extension(BodyLimit(settings.max_body_bytes)));
    let router = match &settings.emf {
        Some(emf) => metrics::layer(router, emf.clone()),
        None => router,
    };
    router
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &axum::http::Request<_>| {
                    let id = request.headers().get(HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!(
                        "request",
                        request_id = %id,
                        method = %request.method(),
                        path = %request.uri().path(),
                    )
                })
                .on_request(())
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeId))
        .layer(tower::util::MapRequestLayer::new(crate::request_id::drop_unusable::<axum::body::Body>))
        .layer(CatchPanicLayer::custom(|_| ApiError::Internal("a handler panicked".into()).into_response()))
}
