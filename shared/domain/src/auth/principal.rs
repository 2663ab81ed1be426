//! Who is calling, and the authorizer's verdict as it travels to the functions.
//!
//! API Gateway HTTP APIs answer every authorizer denial with a bare 403, so the
//! authorizer passes its verdict in the context instead and the function's guard answers
//! with a proper 401 problem document. Either way one function, [`AuthService::authenticate`],
//! makes the decision.
//!
//! [`AuthService::authenticate`]: super::AuthService::authenticate

use serde_json::{Map, Value, json};

use super::api_key::ApiKeyId;
use super::rate_limit::RateLimit;
use super::scope::{Scope, Scopes};
use super::token::TokenError;

/// The credential a request carried, as found in its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    None,
    ApiKey(String),
    Bearer(String),
    /// Both `Authorization` and `X-Api-Key`: refused rather than guessed at.
    Both,
    /// An `Authorization` header that is not `Bearer <token>`.
    UnsupportedScheme,
}

impl Credentials {
    /// Reads the `Authorization` and `X-Api-Key` header values.
    pub fn from_headers(authorization: Option<&str>, api_key: Option<&str>) -> Self {
        match (authorization, api_key) {
            (None, None) => Credentials::None,
            (Some(_), Some(_)) => Credentials::Both,
            (None, Some(key)) => Credentials::ApiKey(key.to_owned()),
            (Some(auth), None) => match auth.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                    Credentials::Bearer(token.trim().to_owned())
                }
                _ => Credentials::UnsupportedScheme,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    ApiKey,
    Token,
}

impl CredentialKind {
    fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "api_key",
            CredentialKind::Token => "token",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The API key behind the call (a token's subject is the key it was exchanged for),
    /// which is also the client whose rate bucket is charged.
    pub key_id: ApiKeyId,
    pub scopes: Scopes,
    pub via: CredentialKind,
    pub rate_limit: RateLimit,
    /// When the key stops working, in seconds since the epoch: a token issued for this
    /// principal expires no later.
    pub key_expires_at: Option<i64>,
}

impl Principal {
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.grants(scope)
    }
}

/// Why a request is not authenticated. Each maps to a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no credentials: send Authorization: Bearer <token> or X-Api-Key: <key>")]
    MissingCredentials,
    #[error("send either Authorization or X-Api-Key, not both")]
    AmbiguousCredentials,
    #[error("the Authorization scheme must be Bearer")]
    UnsupportedScheme,
    #[error("the API key is not in the form tdk_<id>_<secret>")]
    MalformedApiKey,
    #[error("the API key is not valid")]
    InvalidApiKey,
    #[error("the API key has been revoked")]
    RevokedApiKey,
    #[error("the API key has expired")]
    ExpiredApiKey,
    #[error("{0}")]
    InvalidToken(#[from] TokenError),
    #[error("this operation needs an API key, not a token")]
    ApiKeyRequired,
}

impl AuthFailure {
    /// A stable code for logs and the authorizer context.
    pub fn code(&self) -> &'static str {
        match self {
            AuthFailure::MissingCredentials => "missing_credentials",
            AuthFailure::AmbiguousCredentials => "ambiguous_credentials",
            AuthFailure::UnsupportedScheme => "unsupported_scheme",
            AuthFailure::MalformedApiKey => "malformed_api_key",
            AuthFailure::InvalidApiKey => "invalid_api_key",
            AuthFailure::RevokedApiKey => "revoked_api_key",
            AuthFailure::ExpiredApiKey => "expired_api_key",
            AuthFailure::InvalidToken(_) => "invalid_token",
            AuthFailure::ApiKeyRequired => "api_key_required",
        }
    }
}

/// The outcome of authentication, as carried in the authorizer context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Authenticated(Principal),
    Unauthenticated { code: String, detail: String },
}

impl From<Result<Principal, AuthFailure>> for Verdict {
    fn from(result: Result<Principal, AuthFailure>) -> Self {
        match result {
            Ok(principal) => Verdict::Authenticated(principal),
            Err(failure) => {
                Verdict::Unauthenticated { code: failure.code().to_owned(), detail: failure.to_string() }
            }
        }
    }
}

impl Verdict {
    /// A flat map of strings, numbers and booleans: what an HTTP API authorizer's simple
    /// response may carry.
    pub fn to_context(&self) -> Map<String, Value> {
        let value = match self {
            Verdict::Authenticated(p) => json!({
                "authenticated": true,
                "key_id": p.key_id.as_str(),
                "scopes": p.scopes.to_space_separated(),
                "via": p.via.as_str(),
                "rate_capacity": p.rate_limit.capacity,
                "rate_refill_per_minute": p.rate_limit.refill_per_minute,
                "key_expires_at": p.key_expires_at,
            }),
            Verdict::Unauthenticated { code, detail } => json!({
                "authenticated": false,
                "code": code,
                "detail": detail,
            }),
        };
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    /// Reads a context written by [`Verdict::to_context`]; `None` if it is not one.
    pub fn from_context(context: &Map<String, Value>) -> Option<Self> {
        let text = |name: &str| context.get(name).and_then(Value::as_str);
        let number = |name: &str| {
            context
                .get(name)
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                .and_then(|n| u32::try_from(n).ok())
        };
        let authenticated = match context.get("authenticated")? {
            Value::Bool(b) => *b,
            Value::String(s) => s == "true",
            _ => return None,
        };
        if !authenticated {
            return Some(Verdict::Unauthenticated {
                code: text("code")?.to_owned(),
                detail: text("detail")?.to_owned(),
            });
        }
        let via = match text("via")? {
            "api_key" => CredentialKind::ApiKey,
            "token" => CredentialKind::Token,
            _ => return None,
        };
        Some(Verdict::Authenticated(Principal {
            key_id: ApiKeyId::parse(text("key_id")?)?,
            scopes: Scopes::parse_space_separated(text("scopes")?).ok()?,
            via,
            rate_limit: RateLimit {
                capacity: number("rate_capacity")?,
                refill_per_minute: number("rate_refill_per_minute")?,
            },
            key_expires_at: context
                .get("key_expires_at")
                .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_become_credentials() {
        assert_eq!(Credentials::from_headers(None, None), Credentials::None);
        assert_eq!(Credentials::from_headers(Some("Bearer abc"), None), Credentials::Bearer("abc".into()));
        assert_eq!(Credentials::from_headers(Some("bearer  abc "), None), Credentials::Bearer("abc".into()));
        assert_eq!(Credentials::from_headers(Some("Basic abc"), None), Credentials::UnsupportedScheme);
        assert_eq!(Credentials::from_headers(Some("Bearer"), None), Credentials::UnsupportedScheme);
        assert_eq!(Credentials::from_headers(None, Some("k")), Credentials::ApiKey("k".into()));
        assert_eq!(Credentials::from_headers(Some("Bearer a"), Some("k")), Credentials::Both);
    }

    #[test]
    fn verdicts_round_trip_through_the_context() {
        let principal = Principal {
            key_id: ApiKeyId::parse("abcdefghijklmnop").unwrap(),
            scopes: Scopes::new([Scope::Read, Scope::MessagesSend]),
            via: CredentialKind::Token,
            rate_limit: RateLimit { capacity: 3, refill_per_minute: 7 },
            key_expires_at: Some(1_800_000_000),
        };
        for verdict in [
            Verdict::Authenticated(principal),
            Verdict::from(Err(AuthFailure::InvalidToken(TokenError::Expired))),
        ] {
            assert_eq!(Verdict::from_context(&verdict.to_context()), Some(verdict));
        }
        assert_eq!(Verdict::from_context(&Map::new()), None);
    }
}
