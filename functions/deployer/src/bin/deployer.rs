//! The deployer function behind API Gateway: deployments, rollbacks, history.

use std::sync::Arc;

use tdev_domain::SystemClock;
use tdev_domain::auth::AuthService;
use tdev_http::app::{ApiSettings, finish};
use tdev_http::guard::Mode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tdev_runtime::telemetry::init();
    let ApiSettings { auth, http, area: deploy } = tdev_deployer::config::api()?;
    let deployments = Arc::new(tdev_deployer::on_aws(deploy).await?);
    let auth = Arc::new(AuthService::new(deployments.store().clone(), Arc::new(SystemClock), auth));
    lambda_http::run(finish(tdev_deployer::router(deployments, auth, Mode::AuthorizerContext), &http)).await
}
