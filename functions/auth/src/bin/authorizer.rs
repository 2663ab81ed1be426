//! The Lambda authorizer in front of every `/v1` route of the HTTP API.
// The layout of `main`'s future (lambda_runtime's service stack over the store's futures)
// goes past the default query depth when the bin is built for `cargo test`.
#![recursion_limit = "256"]

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use lambda_runtime::{LambdaEvent, service_fn};
use tdev_auth::authorizer;
use tdev_auth::config::AuthorizerConfig;
use tdev_domain::SystemClock;
use tdev_domain::auth::AuthService;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tdev_runtime::telemetry::init();
    let AuthorizerConfig { auth } = AuthorizerConfig::from_env()?;
    let store = tdev_aws::AwsStore::from_env().await?;
    let service = Arc::new(AuthService::new(store, Arc::new(SystemClock), auth));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| {
        let service = service.clone();
        async move {
            authorizer::authorize(&service, &event.payload).await.map_err(|error| {
                tracing::error!(error = %error, "cannot decide: the store is unavailable");
                lambda_runtime::Error::from(error)
            })
        }
    }))
    .await
}
