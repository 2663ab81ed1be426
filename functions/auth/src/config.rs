//! The auth function's settings, read once at start (variables in the README).

use tdev_domain::auth::AuthConfig;
use tdev_http::app::ApiSettings;
use tdev_runtime::settings;

/// The auth function (bin `auth`): keys, tokens, health and the API document.
pub fn api() -> anyhow::Result<ApiSettings<()>> {
    ApiSettings::from_env("auth", || Ok(()))
}

/// The authorizer (bin `authorizer`).
pub struct AuthorizerConfig {
    pub auth: AuthConfig,
}

impl AuthorizerConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self { auth: settings::auth()? })
    }
}
