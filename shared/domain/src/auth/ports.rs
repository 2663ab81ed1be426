//! What authentication and rate limiting need from the world.

use std::future::Future;

use jiff::Timestamp;

use super::api_key::{ApiKey, ApiKeyId};
use super::rate_limit::{RateDecision, RateLimit};
use crate::ports::{HealthCheck, SecretStore, StoreError};

pub trait ApiKeyStore: Send + Sync + 'static {
    /// Stores a new key; `Conflict` if the id is taken.
    fn insert_key(&self, key: &ApiKey) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A strongly consistent read: a revocation is seen by the next call.
    fn get_key(&self, id: &ApiKeyId) -> impl Future<Output = Result<Option<ApiKey>, StoreError>> + Send;

    /// Every key, oldest first.
    fn list_keys(&self) -> impl Future<Output = Result<Vec<ApiKey>, StoreError>> + Send;

    /// Marks the key revoked at `at` and returns it; revoking again keeps the first time.
    /// `NotFound` if there is no such key.
    fn revoke_key(
        &self,
        id: &ApiKeyId,
        at: Timestamp,
    ) -> impl Future<Output = Result<ApiKey, StoreError>> + Send;
}

pub trait RateLimitStore: Send + Sync + 'static {
    /// Charges one token to `client`'s bucket with [`crate::auth::acquire`], atomically
    /// against every other instance sharing the store.
    fn acquire(
        &self,
        client: &str,
        limit: &RateLimit,
        now: Timestamp,
    ) -> impl Future<Output = Result<RateDecision, StoreError>> + Send;
}

/// Every port authentication and rate limiting use: what every function's guard needs.
pub trait AuthStore: ApiKeyStore + RateLimitStore + SecretStore + HealthCheck {}
impl<T: ApiKeyStore + RateLimitStore + SecretStore + HealthCheck> AuthStore for T {}
