//! The envelope keys the messaging services seal and open with, read from the secret
//! store and cached: a key rotated since they were read is picked up when a message
//! names it (at most every few seconds), and every key after the cache's time to live.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiff::Timestamp;

use super::envelope::{CompatKeys, Keyring, Opener};
use crate::ports::{SecretStore, StoreError};

/// Why the keys could not be had.
#[derive(Debug, thiserror::Error)]
pub(super) enum KeyError {
    /// A secret is missing or not as documented.
    #[error("{0}")]
    Misconfigured(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The envelope keys, read from the secret store and cached.
pub(super) struct Keys<S> {
    store: S,
    secret: String,
    compat_secret: Option<String>,
    ttl: Duration,
    cached: RwLock<Option<(Arc<Opener>, Timestamp)>>,
    reload: tokio::sync::Mutex<()>,
    freshness: Duration,
}

/// Refetching for an unknown key id happens at most this often.
const MIN_REFETCH: Duration = Duration::from_secs(5);

impl<S: SecretStore> Keys<S> {
    /// Keys from `secret` (and with `compat_secret` the existing producers' keys), read
    /// again after `ttl`; messages are opened with `freshness`.
    pub(super) fn new(
        store: S,
        secret: String,
        compat_secret: Option<String>,
        ttl: Duration,
        freshness: Duration,
    ) -> Self {
        let (cached, reload) = (RwLock::new(None), tokio::sync::Mutex::new(()));
        Self { store, secret, compat_secret, ttl, cached, reload, freshness }
    }

    /// Forgets the cached keys: the next opener reads the secret again.
    pub(super) fn forget(&self) {
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn cached(&self) -> Option<(Arc<Opener>, Timestamp)> {
        self.cached.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The opener (which holds the keyring), fresh enough, and knowing `kid` if given.
    pub(super) async fn opener(&self, now: Timestamp, kid: Option<&str>) -> Result<Arc<Opener>, KeyError> {
        let age = |at: Timestamp| Duration::try_from(now.duration_since(at)).unwrap_or(Duration::ZERO);
        let before = self.cached();
        if let Some((opener, at)) = &before {
            // `kid` is given when the cached keys did not know it.
            if age(*at) < self.ttl && (kid.is_none() || age(*at) < MIN_REFETCH) {
                return Ok(opener.clone());
            }
        }
        let _one_at_a_time = self.reload.lock().await;
        if let Some((opener, at)) = self.cached()
            && before.as_ref().is_none_or(|(_, earlier)| at > *earlier)
        {
            return Ok(opener);
        }
        let versions = self.store.secret_versions(&self.secret).await.map_err(|e| match e {
            StoreError::NotFound => KeyError::Misconfigured(format!("no secret {:?}", self.secret)),
            e => KeyError::Store(e),
        })?;
        let compat = match &self.compat_secret {
            None => None,
            Some(name) => {
                let value = self.store.secret_versions(name).await?.current.value;
                Some(compat_keys(&value)?)
            }
        };
        let opener =
            Arc::new(Opener { keys: Keyring::from_secret(&versions), compat, freshness: self.freshness });
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = Some((opener.clone(), now));
        Ok(opener)
    }
}

/// The compatibility secret: `{"passphrase": "...", "signing_key": "..."}` (the signing
/// key defaults to the passphrase), or the bare passphrase.
fn compat_keys(value: &str) -> Result<CompatKeys, KeyError> {
    #[derive(serde::Deserialize)]
    struct Secret {
        passphrase: String,
        signing_key: Option<String>,
    }
    if value.trim_start().starts_with('{') {
        let secret: Secret = serde_json::from_str(value).map_err(|e| {
            KeyError::Misconfigured(format!("the compatibility secret is not as documented: {e}"))
        })?;
        let signing_key = secret.signing_key.unwrap_or_else(|| secret.passphrase.clone());
        Ok(CompatKeys::new(secret.passphrase, signing_key))
    } else {
        Ok(CompatKeys::new(value, value))
    }
}

/// A new envelope key's secret: 32 random bytes, in hex.
pub(super) fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    hex::encode(bytes)
}
