//! The router function behind API Gateway.

use std::sync::Arc;

use tdev_domain::SystemClock;
use tdev_domain::agents::Registry;
use tdev_domain::auth::AuthService;
use tdev_http::app::{HttpSettings, finish};
use tdev_http::guard::Mode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tdev_http::telemetry::init();
    let auth = tdev_http::config::auth_config_from_env()?;
    let http = HttpSettings::from_env("router")?;
    let store = tdev_aws::AwsStore::from_env().await?;
    let clock = Arc::new(SystemClock);
    let registry = Arc::new(Registry::new(store.clone(), clock.clone()));
    let auth = Arc::new(AuthService::new(store, clock, auth));
    lambda_http::run(finish(tdev_router::router(registry, auth, Mode::AuthorizerContext), &http)).await
}
