//! The OpenAPI document at `/openapi.json` and Swagger UI at `/docs`, without auth.

use utoipa_swagger_ui::SwaggerUi;

pub fn router(api: utoipa::openapi::OpenApi) -> axum::Router {
    SwaggerUi::new("/docs").url("/openapi.json", api).into()
}
