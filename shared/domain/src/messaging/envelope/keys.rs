//! Envelope keys: what signing and encryption keys derive from a secret (see the
//! [envelope module docs](super)), and the keys of existing producers' messages.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use fernet::Fernet;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::ports::{SecretVersion, SecretVersions};

const SIGNING_LABEL: &[u8] = b"tdev envelope signing";
const ENCRYPTION_LABEL: &[u8] = b"tdev envelope encryption";

pub(super) type HmacSha256 = Hmac<Sha256>;

/// One envelope key: an id and a secret, from which the signing and encryption keys
/// derive (once, here).
#[derive(Clone)]
pub struct EnvelopeKey {
    pub kid: String,
    signing_key: [u8; 32],
    /// Keyed with `signing_key`: cloning it skips the key schedule on every message.
    signer: HmacSha256,
    pub(super) fernet: Fernet,
}

impl std::fmt::Debug for EnvelopeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopeKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl EnvelopeKey {
    pub fn new(kid: impl Into<String>, secret: impl Into<String>) -> Self {
        let secret: String = secret.into();
        let derive = |label: &[u8]| -> [u8; 32] {
            let mut mac =
                HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
            mac.update(label);
            mac.finalize().into_bytes().into()
        };
        let signing_key = derive(SIGNING_LABEL);
        let fernet =
            Fernet::new(&URL_SAFE.encode(derive(ENCRYPTION_LABEL))).expect("32 bytes make a Fernet key");
        let signer = HmacSha256::new_from_slice(&signing_key).expect("HMAC takes keys of any length");
        Self { kid: kid.into(), signing_key, signer, fernet }
    }

    /// The HMAC-SHA256 key envelope signatures are made with.
    pub fn signing_key(&self) -> [u8; 32] {
        self.signing_key
    }

    pub(super) fn sign(&self, text: &[u8]) -> [u8; 32] {
        let mut mac = self.signer.clone();
        mac.update(text);
        mac.finalize().into_bytes().into()
    }

    pub(super) fn verifies(&self, text: &[u8], signature: &[u8; 32]) -> bool {
        let mut mac = self.signer.clone();
        mac.update(text);
        mac.verify_slice(signature).is_ok()
    }
}

/// The key to seal with, and every key a message may be opened with.
#[derive(Debug, Clone)]
pub struct Keyring {
    pub(super) current: EnvelopeKey,
    others: Vec<EnvelopeKey>,
}

impl Keyring {
    pub fn new(current: EnvelopeKey, others: Vec<EnvelopeKey>) -> Self {
        Self { current, others }
    }

    /// A Secrets Manager secret's current and previous versions; each version id is a kid.
    pub fn from_secret(versions: &SecretVersions) -> Self {
        let key = |v: &SecretVersion| EnvelopeKey::new(&v.version_id, &v.value);
        Self::new(key(&versions.current), versions.previous.iter().map(key).collect())
    }

    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }

    /// The key with id `kid`, current or other.
    pub fn key(&self, kid: &str) -> Option<&EnvelopeKey> {
        std::iter::once(&self.current).chain(&self.others).find(|key| key.kid == kid)
    }
}

/// The keys of existing producers' messages (compatibility mode).
#[derive(Clone)]
pub struct CompatKeys {
    pub(super) fernet: Fernet,
    /// Keyed with the signing key.
    pub(super) signer: HmacSha256,
}

impl std::fmt::Debug for CompatKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompatKeys").finish_non_exhaustive()
    }
}

/// The existing producers' PBKDF2 salt and iteration count.
const COMPAT_SALT: &[u8] = b"T-Developer-Salt";
const COMPAT_ITERATIONS: u32 = 100_000;

impl CompatKeys {
    /// Derives the Fernet key from `passphrase`: 100,000 PBKDF2 iterations, so build this
    /// once (at cold start), not per message.
    pub fn new(passphrase: impl Into<String>, signing_key: impl Into<String>) -> Self {
        let passphrase: String = passphrase.into();
        let signing_key: String = signing_key.into();
        let mut key = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(passphrase.as_bytes(), COMPAT_SALT, COMPAT_ITERATIONS, &mut key);
        let fernet = Fernet::new(&URL_SAFE.encode(key)).expect("32 bytes make a Fernet key");
        let signer =
            HmacSha256::new_from_slice(signing_key.as_bytes()).expect("HMAC takes keys of any length");
        Self { fernet, signer }
    }
}
