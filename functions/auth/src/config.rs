//! The auth function's settings, read once at start (variables in the README).

use tdev_domain::auth::AuthConfig;
use tdev_http::app::HttpSettings;
use tdev_runtime::settings;

/// The auth function (bin `auth`): keys, tokens, health and the API document.
pub struct ApiConfig {
    pub auth: AuthConfig,
    pub http: HttpSettings,
}

impl ApiConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self { auth: settings::auth()?, http: HttpSettings::from_env("auth")? })
    }
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
