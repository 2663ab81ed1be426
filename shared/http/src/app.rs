//! The layers every response passes through, applied once to the whole router.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tdev_domain::workflow::Limits;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::json::BodyLimit;
use tdev_runtime::metrics::EmfSettings;

use crate::metrics;
use crate::problem::ApiError;
use crate::request_id::{HEADER, MakeId};

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub max_body_bytes: usize,
    /// `None`: no metrics (the local stack's default).
    pub emf: Option<EmfSettings>,
}

impl HttpSettings {
    /// `TDEV_MAX_BODY_BYTES` (the workflow size limit, see `tdev_runtime::settings::workflow_limits`),
    /// `TDEV_METRICS` (`off` or `emf`) and `TDEV_METRICS_NAMESPACE`.
    pub fn from_env(service: &str) -> anyhow::Result<Self> {
        Ok(Self {
            max_body_bytes: tdev_runtime::settings::workflow_limits()?.max_bytes,
            emf: EmfSettings::from_env(service)?,
        })
    }
}

/// The settings of a function behind API Gateway, read once at start: the auth settings,
/// the HTTP settings, and its own area's (`()` for none).
pub struct ApiSettings<T> {
    pub auth: tdev_domain::auth::AuthConfig,
    pub http: HttpSettings,
    pub area: T,
}

impl<T> ApiSettings<T> {
    /// The auth settings (`tdev_runtime::settings::auth`), the HTTP settings with `service`
    /// as the metrics' `Service`, then the area's settings from `area`.
    pub fn from_env(service: &str, area: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<Self> {
        Ok(Self {
            auth: tdev_runtime::settings::auth()?,
            http: HttpSettings::from_env(service)?,
            area: area()?,
        })
    }
}

/// The longest path and query taken (API Gateway takes 10 KiB of request line and headers).
/// Longer ones are a 414 problem; past 64 KiB, hyper itself answers 414, without a body.
pub const MAX_URI_BYTES: usize = 8 * 1024;

impl HttpSettings {
    /// The workflow document limit: a workflow is the largest body the API takes.
    pub const DEFAULT_MAX_BODY_BYTES: usize = Limits::DEFAULT_MAX_BYTES;
}

/// Adds problem+json for unknown routes and methods, the URI and body limits, metrics,
/// request ids, request logs and a 500 problem for a panic.
pub fn finish(router: Router, settings: &HttpSettings) -> Router {
    let router = router
        .fallback(|| async { ApiError::NotFound("no route for this path".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(axum::Extension(BodyLimit(settings.max_body_bytes)))
        .layer(axum::middleware::from_fn(limit_uri));
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

async fn limit_uri(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let length = uri.path_and_query().map_or(uri.path().len(), |p| p.as_str().len());
    if length > MAX_URI_BYTES {
        return ApiError::UriTooLong.into_response();
    }
    next.run(request).await
}
