//! The auth service: keys, token exchange, authentication and rate limiting, over ports.

use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use super::api_key::{ApiKey, ApiKeyId, NewApiKeyRequest, PresentedKey, fill_random};
use super::ports::{ApiKeyStore, RateLimitStore};
use super::principal::{AuthFailure, CredentialKind, Credentials, Principal};
use super::rate_limit::{RateDecision, RateLimit};
use super::scope::{Scope, Scopes};
use super::token::{self, Claims, MIN_SECRET_BYTES, SigningKey, SigningKeys, TokenError, TokenSettings};
use crate::clock::Clock;
use crate::health::ComponentHealth;
use crate::ports::{SecretStore, StoreError};
use crate::validation::ValidationErrors;

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub token: TokenSettings,
    /// Lifetime of issued tokens, and the most a caller may ask for.
    pub token_ttl_secs: u32,
    /// Applies to keys created without a rate limit of their own.
    pub default_rate_limit: RateLimit,
    /// Requests that fail to authenticate, per source address: past it they are answered
    /// 429 instead of 401, so guessing credentials is slow and a flood of them is cheap.
    pub failed_auth_limit: RateLimit,
    /// Name (or ARN) of the secret holding the token signing key.
    pub signing_secret: String,
    /// How long fetched signing keys are used before they are fetched again.
    pub key_cache_secs: i64,
}

impl AuthConfig {
    pub const DEFAULT_TOKEN_TTL_SECS: u32 = 900;
    pub const MAX_TOKEN_TTL_SECS: u32 = 3600;
    /// 30 failed attempts at once from one address, 30 more a minute.
    pub const DEFAULT_FAILED_AUTH_LIMIT: RateLimit = RateLimit { capacity: 30, refill_per_minute: 30 };
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Unauthenticated(#[from] AuthFailure),
    #[error("{0}")]
    Forbidden(String),
    #[error("invalid request: {0}")]
    Invalid(#[from] ValidationErrors),
    #[error("no such API key")]
    KeyNotFound,
    #[error("the signing key is misconfigured: {0}")]
    Misconfigured(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new key with its one-time plaintext.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub plaintext: String,
}

/// The body of a token request: both fields optional.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Narrow the token to these scopes (each must be held by the key).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Ask for a shorter lifetime than the configured one.
    #[serde(default)]
    pub ttl_seconds: Option<u32>,
}

impl crate::strict::shape::Shaped for TokenRequest {
    fn shape() -> &'static crate::strict::shape::Shape {
        use crate::strict::shape::{Field, Object, Shape};
        static SHAPE: Shape = Shape::Object(&Object {
            what: "a token request",
            fields: &[
                Field::optional("scopes", Shape::Nullable(&Shape::List(&super::scope::SCOPE))),
                Field::optional("ttl_seconds", Shape::Nullable(&Shape::U32)),
            ],
        });
        &SHAPE
    }
}

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: u32,
    pub scopes: Scopes,
}

struct CachedKeys {
    keys: Arc<SigningKeys>,
    fetched_at: Timestamp,
}

/// Refetching the keys for an unknown `kid` at most this often keeps a flood of forged
/// tokens from becoming a flood of Secrets Manager calls.
const MIN_REFETCH: SignedDuration = SignedDuration::from_secs(5);

pub struct AuthService<S> {
    store: S,
    clock: Arc<dyn Clock>,
    config: AuthConfig,
    keys: RwLock<Option<CachedKeys>>,
    refetch: tokio::sync::Mutex<()>,
}

impl<S> AuthService<S> {
    pub fn new(store: S, clock: Arc<dyn Clock>, config: AuthConfig) -> Self {
        Self { store, clock, config, keys: RwLock::new(None), refetch: tokio::sync::Mutex::new(()) }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

impl<S: ApiKeyStore + SecretStore> AuthService<S> {
    /// The one authentication decision, used by the Lambda authorizer and by the local
    /// stack's middleware alike.
    pub async fn authenticate(&self, credentials: Credentials) -> Result<Principal, AuthError> {
        match credentials {
            Credentials::None => Err(AuthFailure::MissingCredentials.into()),
            Credentials::Both => Err(AuthFailure::AmbiguousCredentials.into()),
            Credentials::UnsupportedScheme => Err(AuthFailure::UnsupportedScheme.into()),
            Credentials::ApiKey(raw) => self.authenticate_key(&raw).await,
            Credentials::Bearer(token) => self.authenticate_token(&token).await,
        }
    }

    async fn authenticate_key(&self, raw: &str) -> Result<Principal, AuthError> {
        let presented = PresentedKey::parse(raw).ok_or(AuthFailure::MalformedApiKey)?;
        let key = self
            .store
            .get_key(&presented.id)
            .await?
            .filter(|key| key.matches(&presented.secret))
            .ok_or(AuthFailure::InvalidApiKey)?;
        if key.revoked_at.is_some() {
            return Err(AuthFailure::RevokedApiKey.into());
        }
        if key.is_expired(self.clock.now()) {
            return Err(AuthFailure::ExpiredApiKey.into());
        }
        Ok(Principal {
            key_id: key.id,
            scopes: key.scopes,
            via: CredentialKind::ApiKey,
            rate_limit: key.rate_limit.unwrap_or(self.config.default_rate_limit),
            key_expires_at: key.expires_at.map(|at| at.as_second()),
        })
    }

    async fn authenticate_token(&self, token: &str) -> Result<Principal, AuthError> {
        let kid = token::key_id(token).map_err(AuthFailure::from)?;
        let keys = self.keys_with(&kid).await?;
        let key = keys.find(&kid).ok_or(AuthFailure::InvalidToken(TokenError::UnknownKeyId))?;
        let claims =
            token::verify(token, key, &self.config.token, self.clock.now()).map_err(AuthFailure::from)?;
        let malformed = || AuthFailure::InvalidToken(TokenError::Malformed);
        Ok(Principal {
            key_id: ApiKeyId::parse(&claims.sub).ok_or_else(malformed)?,
            scopes: Scopes::parse_space_separated(&claims.scope).map_err(|_| malformed())?,
            via: CredentialKind::Token,
            rate_limit: claims.rl.unwrap_or(self.config.default_rate_limit),
            // The token's own expiry is never later than its key's.
            key_expires_at: Some(claims.exp),
        })
    }

    /// Exchanges an API key for a short-lived token, never wider than the key.
    pub async fn issue_token(
        &self,
        principal: &Principal,
        request: TokenRequest,
    ) -> Result<IssuedToken, AuthError> {
        if principal.via != CredentialKind::ApiKey {
            return Err(AuthError::Forbidden(AuthFailure::ApiKeyRequired.to_string()));
        }
        let mut errors = ValidationErrors::new();
        let max_ttl = self.config.token_ttl_secs;
        let ttl = request.ttl_seconds.unwrap_or(max_ttl);
        if !(1..=max_ttl).contains(&ttl) {
            errors.add("$.ttl_seconds", format!("must be 1 to {max_ttl}"));
        }
        let scopes = match request.scopes {
            None => principal.scopes.clone(),
            Some(names) => {
                let mut scopes = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    match name.parse::<Scope>() {
                        Ok(scope) => scopes.push(scope),
                        Err(e) => errors.add(format!("$.scopes[{i}]"), e.to_string()),
                    }
                }
                if names.is_empty() {
                    errors.add("$.scopes", "must name at least one scope, or be left out");
                }
                Scopes::new(scopes)
            }
        };
        if !errors.is_empty() {
            return Err(errors.into());
        }
        if !principal.scopes.covers(&scopes) {
            return Err(AuthError::Forbidden(format!(
                "the key does not hold every requested scope (it holds: {})",
                principal.scopes.to_space_separated()
            )));
        }
        let keys = self.keys_with("").await?;
        let now = self.clock.now().as_second();
        // Never wider than the key: not in scopes, and not in time.
        let exp = principal
            .key_expires_at
            .map_or(now + i64::from(ttl), |key_exp| key_exp.min(now + i64::from(ttl)));
        if exp <= now {
            return Err(AuthFailure::ExpiredApiKey.into());
        }
        let ttl = u32::try_from(exp - now).unwrap_or(ttl);
        let claims = Claims {
            iss: self.config.token.issuer.clone(),
            aud: self.config.token.audience.clone(),
            sub: principal.key_id.to_string(),
            exp,
            nbf: now,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            scope: scopes.to_space_separated(),
            rl: Some(principal.rate_limit),
        };
        Ok(IssuedToken { access_token: token::sign(&claims, &keys.current), expires_in: ttl, scopes })
    }

    pub async fn create_key(&self, request: NewApiKeyRequest) -> Result<CreatedKey, AuthError> {
        let now = self.clock.now();
        let (key, plaintext) = request.validate(now)?.issue(now);
        self.store.insert_key(&key).await?;
        Ok(CreatedKey { key, plaintext })
    }

    pub async fn list_keys(&self) -> Result<Vec<ApiKey>, AuthError> {
        Ok(self.store.list_keys().await?)
    }

    pub async fn get_key(&self, id: &str) -> Result<ApiKey, AuthError> {
        let id = ApiKeyId::parse(id).ok_or(AuthError::KeyNotFound)?;
        self.store.get_key(&id).await?.ok_or(AuthError::KeyNotFound)
    }

    pub async fn revoke_key(&self, id: &str) -> Result<ApiKey, AuthError> {
        let id = ApiKeyId::parse(id).ok_or(AuthError::KeyNotFound)?;
        match self.store.revoke_key(&id, self.clock.now()).await {
            Err(StoreError::NotFound) => Err(AuthError::KeyNotFound),
            other => Ok(other?),
        }
    }

    /// First start of a fresh installation: makes the signing secret if there is none and
    /// an admin key if there are no keys. Returns the admin key, which is shown once.
    pub async fn bootstrap(&self) -> Result<Option<CreatedKey>, AuthError> {
        match self.store.secret_versions(&self.config.signing_secret).await {
            Err(StoreError::NotFound) => {
                self.store.put_secret(&self.config.signing_secret, &random_secret()).await?;
            }
            other => {
                other?;
            }
        }
        if !self.store.list_keys().await?.is_empty() {
            return Ok(None);
        }
        let request = NewApiKeyRequest {
            name: "admin".into(),
            scopes: vec![Scope::Admin.as_str().into()],
            expires_at: None,
            rate_limit: None,
        };
        self.create_key(request).await.map(Some)
    }

    /// Makes a new signing key current. Tokens signed with the old one stay valid until
    /// they expire, because the old key stays as the previous version.
    pub async fn rotate_signing_key(&self) -> Result<String, AuthError> {
        let version = self.store.put_secret(&self.config.signing_secret, &random_secret()).await?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(version)
    }

    /// The signing keys, from the cache while it is fresh and knows `kid` (`""`: any).
    async fn keys_with(&self, kid: &str) -> Result<Arc<SigningKeys>, AuthError> {
        let now = self.clock.now();
        let fresh_for = SignedDuration::from_secs(self.config.key_cache_secs);
        let cached = self.cached_keys();
        if let Some((keys, fetched_at)) = &cached {
            let fresh = now.duration_since(*fetched_at) < fresh_for;
            let knows = kid.is_empty() || keys.find(kid).is_some();
            let recently = now.duration_since(*fetched_at) < MIN_REFETCH;
            if fresh && (knows || recently) {
                return Ok(keys.clone());
            }
        }
        let _one_fetch_at_a_time = self.refetch.lock().await;
        if let Some((keys, fetched_at)) = self.cached_keys()
            && cached.as_ref().is_none_or(|(_, before)| fetched_at > *before)
        {
            return Ok(keys);
        }
        let versions = self.store.secret_versions(&self.config.signing_secret).await?;
        let to_key = |v: crate::ports::SecretVersion| -> Result<SigningKey, AuthError> {
            if v.value.len() < MIN_SECRET_BYTES {
                return Err(AuthError::Misconfigured(format!(
                    "version {} is shorter than {MIN_SECRET_BYTES} bytes",
                    v.version_id
                )));
            }
            Ok(SigningKey { kid: v.version_id, secret: v.value.into_bytes() })
        };
        let keys = Arc::new(SigningKeys {
            current: to_key(versions.current)?,
            previous: versions.previous.map(to_key).transpose()?,
        });
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) =
            Some(CachedKeys { keys: keys.clone(), fetched_at: now });
        Ok(keys)
    }

    fn cached_keys(&self) -> Option<(Arc<SigningKeys>, Timestamp)> {
        let guard = self.keys.read().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().map(|c| (c.keys.clone(), c.fetched_at))
    }
}

impl<S: ApiKeyStore + SecretStore> AuthService<S> {
    /// Whether the signing keys can be loaded, for `GET /health`.
    pub async fn signing_key_health(&self) -> ComponentHealth {
        let result = self.keys_with("").await;
        ComponentHealth {
            name: "signing_keys",
            ok: result.is_ok(),
            detail: result.err().map(|e| e.to_string()),
        }
    }
}

impl<S: RateLimitStore> AuthService<S> {
    /// Charges one request to the principal's bucket.
    pub async fn rate_limit(&self, principal: &Principal) -> Result<RateDecision, StoreError> {
        self.store.acquire(principal.key_id.as_str(), &principal.rate_limit, self.clock.now()).await
    }

    /// Charges one failed authentication to the bucket of the address it came from (a
    /// bucket apart from every key's: key ids have no `#`).
    pub async fn rate_limit_failure(&self, source: &str) -> Result<RateDecision, StoreError> {
        let client = format!("unauthenticated#{source}");
        self.store.acquire(&client, &self.config.failed_auth_limit, self.clock.now()).await
    }
}

fn random_secret() -> String {
    let mut bytes = [0u8; 48];
    fill_random(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_request_shape_names_the_fields_serde_reads() {
        crate::strict::shape::assert_names_serde_fields::<TokenRequest>();
    }
}
