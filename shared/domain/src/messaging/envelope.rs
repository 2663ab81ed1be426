//! The message envelope. SKELETON: the public API is fixed here; the bodies are being
//! written (see the module docs to come).

use std::time::Duration;

use jiff::Timestamp;

use crate::messaging::Message;
use crate::ports::SecretVersions;

/// The envelope format version this code writes.
pub const VERSION: u64 = 1;

/// How old a message may be when opened, by default.
pub const DEFAULT_FRESHNESS: Duration = Duration::from_secs(300);

/// One envelope key: an id and a secret, from which the signing and encryption keys
/// derive.
#[derive(Clone)]
pub struct EnvelopeKey {
    pub kid: String,
    secret: String,
}

impl std::fmt::Debug for EnvelopeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopeKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl EnvelopeKey {
    pub fn new(kid: impl Into<String>, secret: impl Into<String>) -> Self {
        Self { kid: kid.into(), secret: secret.into() }
    }
}

/// The key to seal with, and every key a message may be opened with.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: EnvelopeKey,
    others: Vec<EnvelopeKey>,
}

impl Keyring {
    pub fn new(current: EnvelopeKey, others: Vec<EnvelopeKey>) -> Self {
        Self { current, others }
    }

    /// A Secrets Manager secret's current and previous versions; each version id is a kid.
    pub fn from_secret(versions: &SecretVersions) -> Self {
        let key = |v: &crate::ports::SecretVersion| EnvelopeKey::new(&v.version_id, &v.value);
        Self::new(key(&versions.current), versions.previous.iter().map(key).collect())
    }

    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }
}

/// The keys of existing producers' messages (compatibility mode).
#[derive(Clone)]
pub struct CompatKeys {
    passphrase: String,
    signing_key: String,
}

impl std::fmt::Debug for CompatKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompatKeys").finish_non_exhaustive()
    }
}

impl CompatKeys {
    pub fn new(passphrase: impl Into<String>, signing_key: impl Into<String>) -> Self {
        Self { passphrase: passphrase.into(), signing_key: signing_key.into() }
    }
}

/// What `open` found a body to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Envelope,
    Compat,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    pub message: Message,
    pub format: Format,
    /// The key it was verified with (for compatibility messages, none).
    pub kid: Option<String>,
}

/// Why a body was refused. Such a message is dead-lettered with [`Rejection::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("not an envelope: {0}")]
    Malformed(String),
    #[error("envelope version {0} is not supported")]
    UnsupportedVersion(u64),
    #[error("no key with id {0:?}")]
    UnknownKey(String),
    #[error("the message is not signed")]
    SignatureMissing,
    #[error("the signature does not match")]
    SignatureInvalid,
    #[error("the message is {age_seconds} s old, more than the {limit_seconds} s allowed")]
    Stale { age_seconds: i64, limit_seconds: u64 },
    #[error("the message is dated {ahead_seconds} s in the future")]
    FromTheFuture { ahead_seconds: i64 },
    #[error("the payload cannot be decrypted")]
    Undecryptable,
}

impl Rejection {
    /// The dead-letter reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::UnsupportedVersion(_) => "unsupported_version",
            Rejection::UnknownKey(_) => "unknown_key",
            Rejection::SignatureMissing => "signature_missing",
            Rejection::SignatureInvalid => "signature_invalid",
            Rejection::Stale { .. } => "stale",
            Rejection::FromTheFuture { .. } => "from_the_future",
            Rejection::Undecryptable => "undecryptable",
        }
    }
}

/// Seals `message` with the keyring's current key: signed, and with `encrypt` its
/// payload Fernet-encrypted. Returns the envelope's JSON text.
pub fn seal(message: &Message, keys: &Keyring, encrypt: bool) -> String {
    let _ = (message, keys, encrypt);
    unimplemented!("being written")
}

/// Opens envelopes (and, with compatibility keys, existing producers' messages).
#[derive(Debug, Clone)]
pub struct Opener {
    pub keys: Keyring,
    pub compat: Option<CompatKeys>,
    pub freshness: Duration,
}

impl Opener {
    pub fn open(&self, body: &str, now: Timestamp) -> Result<Opened, Rejection> {
        let _ = (body, now);
        unimplemented!("being written")
    }
}
