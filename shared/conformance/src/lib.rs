//! One conformance suite for every backend. Each function checks what a port promises
//! against a real store; `tests/conformance_*.rs` run it on SQLite and on moto.
//!
//! Every check names its records with fresh random ids, so runs can share a table.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use tdev_domain::agents::AgentStore;
use tdev_domain::auth::{
    ApiKey, ApiKeyStore, AuthConfig, NewApiKeyRequest, RateLimit, RateLimitStore, Scope, Scopes,
    TokenSettings,
};
use tdev_domain::ports::{HealthCheck, SecretStore, StoreError};

pub mod agents;
pub mod crash;
pub mod deployments;
pub mod engine;
pub mod messaging;
pub mod queue;
pub mod runs;
pub mod squads;
pub mod tasks;
pub mod tokens;
pub mod worker;

/// The auth settings the black-box tests run with: the defaults, without clock leeway.
pub fn test_auth_config() -> AuthConfig {
    AuthConfig {
        token: TokenSettings {
            issuer: "t-developer".into(),
            audience: "t-developer-api".into(),
            leeway_secs: 0,
        },
        token_ttl_secs: AuthConfig::DEFAULT_TOKEN_TTL_SECS,
        default_rate_limit: RateLimit::DEFAULT,
        failed_auth_limit: AuthConfig::DEFAULT_FAILED_AUTH_LIMIT,
        signing_secret: "tdev/signing-key".into(),
        key_cache_secs: 300,
    }
}

/// Runs every check.
pub async fn run_all<S>(store: Arc<S>)
where
    S: ApiKeyStore + RateLimitStore + SecretStore + AgentStore + HealthCheck,
{
    api_keys(&*store).await;
    agents::run_all(&*store).await;
    rate_limits(store.clone()).await;
    secrets(&*store).await;
    health(&*store).await;
}

fn new_key(name: &str, now: Timestamp) -> ApiKey {
    let request = NewApiKeyRequest {
        name: name.into(),
        scopes: vec!["read".into(), "agents:write".into()],
        expires_at: Some(now + SignedDuration::from_hours(1)),
        rate_limit: Some(RateLimit { capacity: 7, refill_per_minute: 11 }),
    };
    match request.validate(now) {
        Ok(valid) => valid.issue(now).0,
        Err(e) => panic!("the suite's own key request is invalid: {e}"),
    }
}

/// Keys round-trip every field, ids are unique, revocation is seen at once and kept.
pub async fn api_keys<S: ApiKeyStore>(store: &S) {
    let now = Timestamp::from_second(1_700_000_000).unwrap();
    let key = new_key("conformance", now);
    store.insert_key(&key).await.expect("insert");
    assert_eq!(store.get_key(&key.id).await.expect("get"), Some(key.clone()), "round trip");
    assert_eq!(key.scopes, Scopes::new([Scope::Read, Scope::AgentsWrite]));

    let duplicate = store.insert_key(&key).await;
    assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "duplicate id: {duplicate:?}");

    let other = new_key("second", now + SignedDuration::from_secs(1));
    store.insert_key(&other).await.expect("insert second");
    let listed = store.list_keys().await.expect("list");
    let ours: Vec<_> = listed.iter().filter(|k| k.id == key.id || k.id == other.id).collect();
    assert_eq!(ours, vec![&key, &other], "listed oldest first with every field");

    let revoked_at = now + SignedDuration::from_secs(5);
    let revoked = store.revoke_key(&key.id, revoked_at).await.expect("revoke");
    assert_eq!(revoked.revoked_at, Some(revoked_at));
    let again =
        store.revoke_key(&key.id, revoked_at + SignedDuration::from_secs(5)).await.expect("revoke again");
    assert_eq!(again.revoked_at, Some(revoked_at), "a second revoke keeps the first time");
    let read_back = store.get_key(&key.id).await.expect("get revoked").expect("still stored");
    assert_eq!(read_back.revoked_at, Some(revoked_at), "revocation is seen by the next read");

    let missing = new_key("never stored", now);
    assert_eq!(store.get_key(&missing.id).await.expect("get missing"), None);
    let revoke_missing = store.revoke_key(&missing.id, now).await;
    assert!(matches!(revoke_missing, Err(StoreError::NotFound)), "{revoke_missing:?}");
}

/// Buckets are per client and exact under concurrency: of 2 × capacity simultaneous
/// requests, exactly `capacity` pass; time refills them.
pub async fn rate_limits<S: RateLimitStore>(store: Arc<S>) {
    let limit = RateLimit { capacity: 20, refill_per_minute: 60 };
    let now = Timestamp::from_second(1_700_000_000).unwrap();
    let client = unique("client");
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let store = store.clone();
            let client = client.clone();
            tokio::spawn(async move { store.acquire(&client, &limit, now).await })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        let decision = task.await.expect("task").expect("acquire");
        if decision.allowed {
            allowed += 1;
        } else {
            assert_eq!(decision.retry_after_secs, Some(1));
            assert_eq!(decision.remaining, 0);
        }
    }
    assert_eq!(allowed, 20, "exactly the capacity passes");

    let other = unique("client");
    assert!(store.acquire(&other, &limit, now).await.expect("other").allowed, "buckets are per client");

    let later = now + SignedDuration::from_secs(2);
    let refilled = store.acquire(&client, &limit, later).await.expect("later");
    assert!(refilled.allowed, "two seconds refill two tokens");
    assert!(store.acquire(&client, &limit, later).await.expect("later 2").allowed);
    assert!(!store.acquire(&client, &limit, later).await.expect("later 3").allowed);
}

/// Secrets keep their current and previous versions across rotation.
pub async fn secrets<S: SecretStore>(store: &S) {
    let name = unique("secret");
    let missing = store.secret_versions(&name).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");

    let v1 = store.put_secret(&name, "first-value-first-value-first-value").await.expect("create");
    let versions = store.secret_versions(&name).await.expect("read v1");
    assert_eq!(versions.current.version_id, v1);
    assert_eq!(versions.current.value, "first-value-first-value-first-value");
    assert_eq!(versions.previous, None);

    let v2 = store.put_secret(&name, "second-value-second-value-second").await.expect("rotate");
    assert_ne!(v1, v2, "each version has its own id");
    let versions = store.secret_versions(&name).await.expect("read v2");
    assert_eq!(versions.current.version_id, v2);
    assert_eq!(versions.current.value, "second-value-second-value-second");
    let previous = versions.previous.expect("previous kept");
    assert_eq!((previous.version_id, previous.value.as_str()), (v1, "first-value-first-value-first-value"));

    let v3 = store.put_secret(&name, "third-value-third-value-third-value").await.expect("rotate again");
    let versions = store.secret_versions(&name).await.expect("read v3");
    assert_eq!(versions.current.version_id, v3);
    assert_eq!(versions.previous.expect("previous").version_id, v2, "only one previous");
}

/// Health names each component and says it is up.
pub async fn health<S: HealthCheck>(store: &S) {
    let components = store.health().await;
    assert!(!components.is_empty(), "health names its components");
    for component in components {
        assert!(component.ok, "{} is down: {:?}", component.name, component.detail);
    }
}

/// Runs `attempts` at once, each on a task of its own: the positions of those that
/// succeeded. Every other must have lost with `Conflict`; `what` names any other failure.
pub(crate) async fn race<F>(attempts: impl IntoIterator<Item = F>, what: &str) -> Vec<usize>
where
    F: Future<Output = Result<(), StoreError>> + Send + 'static,
{
    let handles: Vec<_> = attempts.into_iter().map(tokio::spawn).collect();
    let mut won = Vec::new();
    for (position, handle) in handles.into_iter().enumerate() {
        match handle.await.expect("task") {
            Ok(()) => won.push(position),
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("{what}: {other}"),
        }
    }
    won
}

pub(crate) fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("tdev-conformance-{prefix}-{nanos}-{n}")
}
