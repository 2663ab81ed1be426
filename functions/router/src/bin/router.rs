//! The router function behind API Gateway.

use std::sync::Arc;

use aws_config::BehaviorVersion;
use tdev_domain::SystemClock;
use tdev_domain::agents::Registry;
use tdev_domain::auth::AuthService;
use tdev_domain::messaging::Messenger;
use tdev_http::app::{ApiSettings, finish};
use tdev_http::guard::Mode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tdev_runtime::telemetry::init();
    let ApiSettings { auth, http, area: messaging } = tdev_router::config::api()?;
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let store = tdev_aws::AwsStore::with_table_from_env(&sdk)?;
    let queues = tdev_router::queues_from_env(&sdk, &messaging.bands)?;
    let clock = Arc::new(SystemClock);
    let registry = Arc::new(Registry::new(store.clone(), clock.clone()));
    let messenger = Arc::new(Messenger::new(store.clone(), queues, clock.clone(), messaging));
    let auth = Arc::new(AuthService::new(store, clock, auth));
    let routes = tdev_router::router(registry, messenger, auth, Mode::AuthorizerContext);
    lambda_http::run(finish(routes, &http)).await
}
