//! The orchestrator function behind API Gateway: workflow definitions and runs.

use std::sync::Arc;

use tdev_domain::SystemClock;
use tdev_domain::auth::AuthService;
use tdev_http::app::{ApiSettings, finish};
use tdev_http::guard::Mode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tdev_runtime::telemetry::init();
    let ApiSettings { auth, http, area: limits } = tdev_orchestrator::config::api()?;
    let engine = tdev_orchestrator::on_aws(limits).await?;
    let engine = Arc::new(tdev_orchestrator::with_emf(engine, http.emf.as_ref()));
    let auth = Arc::new(AuthService::new(engine.store().clone(), Arc::new(SystemClock), auth));
    lambda_http::run(finish(tdev_orchestrator::router(engine, auth, Mode::AuthorizerContext), &http)).await
}
