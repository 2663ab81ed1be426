//! Authentication and authorization: API keys, tokens, scopes and rate limits.
//!
//! The model is one file each (`api_key.rs`, `token.rs`, `scope.rs`, `rate_limit.rs`, and
//! `principal.rs`: who a caller is and what it may do); `ports.rs` says what auth needs
//! from the world, and `service.rs` is what every function's guard and the auth API ask.

mod api_key;
mod ports;
mod principal;
mod rate_limit;
mod scope;
mod service;
mod token;

pub use api_key::{ApiKey, ApiKeyId, KeyName, NewApiKey, NewApiKeyRequest, PresentedKey};
pub use ports::{ApiKeyStore, AuthStore, RateLimitStore};
pub use principal::{AuthFailure, CredentialKind, Credentials, Principal, Verdict};
pub use rate_limit::{BucketState, RateDecision, RateLimit, acquire};
pub use scope::{Scope, Scopes};
pub use service::{AuthConfig, AuthError, AuthService, CreatedKey, IssuedToken, TokenRequest};
pub use token::{Claims, SigningKey, SigningKeys, TokenError, TokenSettings};
