//! The auth function behind API Gateway: keys, tokens, health and the API docs.

use std::sync::Arc;

use tdev_auth::router;
use tdev_domain::SystemClock;
use tdev_domain::auth::AuthService;
use tdev_http::app::ApiSettings;
use tdev_http::app::finish;
use tdev_http::guard::Mode;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tdev_runtime::telemetry::init();
    let ApiSettings { auth, http, .. } = tdev_auth::config::api()?;
    let store = tdev_aws::AwsStore::from_env().await?;
    let api = tdev_auth::api_document(auth.token_ttl_secs);
    let service = Arc::new(AuthService::new(store, Arc::new(SystemClock), auth));
    let app = router(service, Mode::AuthorizerContext).merge(tdev_http::docs::router(api));
    lambda_http::run(finish(app, &http)).await
}
