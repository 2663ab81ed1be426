//! The message envelope: how a [`Message`] travels on the queues, signed and, when asked,
//! with its payload encrypted. This is the specification producers follow.
//!
//! # Envelope, version 1
//!
//! A JSON object:
//!
//! | member | value |
//! | --- | --- |
//! | `v` | `1` |
//! | `kid` | the id of the key it is signed (and encrypted) with |
//! | `id` | the message id (string) |
//! | `type` | the message type, e.g. `"task.assign"` |
//! | `to_agent` *or* `capability` | the recipient: exactly one of the two (string) |
//! | `priority` | integer, 1 (most urgent) to 10 |
//! | `group` | the ordering group (string) |
//! | `idempotency_key` | string |
//! | `metadata` | object |
//! | `sender` | string; omitted when there is none |
//! | `created_at` | RFC 3339 date-time with `Z` or any offset, e.g. `"2026-11-24T10:00:00Z"` |
//! | `payload` | any JSON: when not encrypted |
//! | `enc`, `ciphertext` | instead of `payload` when encrypted: `"fernet"`, and a Fernet token whose plaintext is the [canonical JSON](#canonical-json) (UTF-8) of the payload |
//! | `sig` | 64 lowercase hex digits: the signature |
//!
//! No other member is allowed, and no member twice.
//!
//! **Signature.** `sig` is HMAC-SHA256, keyed with the key's *signing key*, of the
//! canonical JSON of the envelope object without `sig` (encrypt-then-MAC: an encrypted
//! envelope's ciphertext is what is signed). [`seal`] writes that canonical text with `sig`
//! appended as the last member; the member order of a received body does not matter.
//!
//! **Keys.** An [`EnvelopeKey`] is a key id (`kid`) and a secret. From the secret's UTF-8
//! bytes derive:
//! - the signing key: `HMAC-SHA256(key = secret, msg = b"tdev envelope signing")`;
//! - the Fernet key: URL-safe base64, with padding, of
//!   `HMAC-SHA256(key = secret, msg = b"tdev envelope encryption")` (32 bytes: Fernet's
//!   signing half, then its encryption half).
//!
//! A [`Keyring`] built [from a Secrets Manager secret](Keyring::from_secret) uses each
//! version id as a kid: messages are sealed with the current version and opened with the
//! current or the previous one, so rotating the secret loses nothing in flight.
//!
//! **Opening** (in this order; the first failure is the [`Rejection`]):
//! 1. The body must be a JSON object with the members above, well typed
//!    ([`Rejection::Malformed`]); `v` must be 1 ([`Rejection::UnsupportedVersion`]; `v` is
//!    checked before any other member).
//! 2. `sig` must be present ([`Rejection::SignatureMissing`]).
//! 3. `kid` must name a key of the keyring ([`Rejection::UnknownKey`]).
//! 4. The signature must match, compared in constant time ([`Rejection::SignatureInvalid`]).
//! 5. `created_at` must be at most [`Opener::freshness`] old ([`Rejection::Stale`]) and at
//!    most [`MAX_CLOCK_SKEW`] ahead of the opener's clock ([`Rejection::FromTheFuture`]).
//! 6. An encrypted payload must decrypt, with Fernet and no time-to-live (the token's own
//!    timestamp is not checked: `created_at` rules), to JSON text (canonical or not)
//!    ([`Rejection::Undecryptable`]).
//!
//! The opened message is exactly the one sealed.
//!
//! # Canonical JSON
//!
//! The text of a JSON value such that equal values have equal texts:
//! - objects: members sorted by key, comparing keys by Unicode code point (the same as
//!   comparing their UTF-8 bytes), at every depth;
//! - no whitespace anywhere: `{"a":[1,2],"b":null}`;
//! - strings: `"` and `\` escaped as `\"` and `\\`; the control characters U+0008, U+0009,
//!   U+000A, U+000C, U+000D as `\b`, `\t`, `\n`, `\f`, `\r`; the other characters below
//!   U+0020 as `\u00xx` (lowercase hex); every other character, including `/`, U+007F and
//!   all non-ASCII, as its raw UTF-8;
//! - `true`, `false`, `null`;
//! - integers (numbers written without fraction or exponent) in decimal, without sign when
//!   zero: `-0` is `0`;
//! - every other number as the nearest double (IEEE 754 binary64) written as Python's
//!   `repr(float)` does: the shortest digits that read back to the same double; when the
//!   decimal exponent `e` (of `d.ddd × 10^e`) is -4 to 15, in fixed notation with `.0`
//!   when integral (`1.0`, `100.0`, `0.0001`, `1234.5`, `-0.0`); otherwise `d.ddde+XX` or
//!   `d.ddde-XX` with at least two exponent digits, and no `.` when there is one digit
//!   (`1e+16`, `1.5e-05`, `5e-324`). Non-finite numbers are not JSON and are refused.
//!
//! This is what Python prints with
//! `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`.
//! [`canonical`] computes it. (Integers of any size are kept as written, as in Python; a
//! received message holds those beyond `i64`/`u64` as floats, as serde_json does.)
//!
//! # Compatibility mode
//!
//! With [`Opener::compat`] set, messages of the existing Python producers are accepted
//! unchanged. A body is such a message when it has no `v` member, or has an `encrypted`
//! or `signature` member (which envelopes never have); without compatibility keys it is
//! [`Rejection::Malformed`].
//!
//! **Their keys** ([`CompatKeys`]): a passphrase and a signing key. The Fernet key is the
//! URL-safe base64 of `PBKDF2-HMAC-SHA256(passphrase, salt = b"T-Developer-Salt",
//! 100,000 iterations, 32 bytes)`.
//!
//! **Signing**: `timestamp` is a naive UTC ISO 8601 date-time
//! (`datetime.utcnow().isoformat()`, e.g. `2026-11-24T10:00:00.123456`; one with an offset
//! is accepted too), then `signature` is the lowercase hex HMAC-SHA256, keyed with the
//! signing key's UTF-8 bytes, of `json.dumps(sorted(msg.items()), separators=(",", ":"))`
//! of the message without `signature`: an array of `[key, value]` pairs sorted by
//! top-level key, nested objects in the order received, strings escaped as in canonical
//! JSON except that U+007F and every non-ASCII character are escaped as `\uxxxx` (astral
//! ones as a surrogate pair), numbers as in canonical JSON.
//!
//! **Encryption**: the whole message, `json.dumps(message)`, Fernet-encrypted, is sent as
//! `{"encrypted": true, "encrypted_payload": <standard base64 of the token's ASCII>,
//! "timestamp": ..., "encryption_method": "fernet"}`.
//!
//! Either may wrap the other, so when the body has `encrypted: true`, its `signature` (if
//! any) is verified over the outer object, the payload is decrypted
//! ([`Rejection::Undecryptable`] if it cannot be, or is not a JSON object), and the inner
//! message's `signature` (if any) is verified too. At least one signature must be there
//! ([`Rejection::SignatureMissing`]); every one there must match
//! ([`Rejection::SignatureInvalid`]); a signed object must have a `timestamp`
//! ([`Rejection::Malformed`]), and every `timestamp` there is checked for freshness as
//! `created_at` is.
//!
//! **The message** (the first member present and not null of each list; a member of the
//! wrong type is [`Rejection::Malformed`]):
//!
//! | field | from |
//! | --- | --- |
//! | id | `id`, `message_id` (string); else the hex SHA-256 of the body's text |
//! | kind | `type`, `message_type` (string; required) |
//! | to | `to_agent`, `recipient`, `target_agent` → an agent; else `capability` → a capability; else malformed |
//! | payload | `payload`, `content`, `data`; else `{}` |
//! | priority | `priority` (integer 1 to 10); else 5 |
//! | group | `group`, `correlation_id`; else the recipient's label (`agent:<id>`) |
//! | idempotency key | `dedup_id`, `idempotency_key`; else the id |
//! | metadata | `metadata` (object); else `{}` |
//! | sender | `sender`, `from_agent`, `source` |
//! | created at | the inner message's `timestamp`, else the outer one's |
//!
//! It opens as [`Format::Compat`] with no kid.

use std::time::Duration;

use fernet::Fernet;
use jiff::{SignedDuration, Timestamp};

use crate::messaging::{Message, Recipient};

pub mod canonical;
mod compat;
mod json;
mod keys;
mod open;
#[cfg(test)]
mod tests;

pub use keys::{CompatKeys, EnvelopeKey, Keyring};
pub use open::Opener;

/// The envelope format version this code writes.
pub const VERSION: u64 = 1;

/// How old a message may be when opened, by default.
pub const DEFAULT_FRESHNESS: Duration = Duration::from_secs(300);

/// How far ahead of the opener's clock a message's creation time may be.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(30);

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

fn malformed(detail: impl Into<String>) -> Rejection {
    Rejection::Malformed(detail.into())
}

/// Seals `message` with the keyring's current key: signed, and with `encrypt` its
/// payload Fernet-encrypted. Returns the envelope's JSON text.
pub fn seal(message: &Message, keys: &Keyring, encrypt: bool) -> String {
    let body = if encrypt { SealedPayload::Encrypted } else { SealedPayload::Plain };
    seal_with(message, &keys.current, body)
}

enum SealedPayload<'a> {
    Plain,
    Encrypted,
    /// This text as the ciphertext, whatever it is (tests of undecryptable envelopes).
    #[cfg_attr(not(test), allow(dead_code))]
    Ciphertext(&'a str),
}

fn seal_with(message: &Message, key: &EnvelopeKey, payload: SealedPayload<'_>) -> String {
    use canonical::{write_map, write_str, write_value};

    let ciphertext = match payload {
        SealedPayload::Plain => None,
        SealedPayload::Encrypted => {
            Some(key.fernet.encrypt(canonical::to_canonical(&message.payload).as_bytes()))
        }
        SealedPayload::Ciphertext(text) => Some(text.to_owned()),
    };
    let mut out = String::with_capacity(320 + ciphertext.as_ref().map_or(256, String::len));
    // Members in canonical (sorted) order; each value is written canonically.
    fn member(out: &mut String, name: &str) {
        out.push(if out.is_empty() { '{' } else { ',' });
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
    }
    if let Recipient::Capability(capability) = &message.to {
        member(&mut out, "capability");
        write_str(&mut out, capability, false);
    }
    if let Some(ciphertext) = &ciphertext {
        member(&mut out, "ciphertext");
        write_str(&mut out, ciphertext, false);
    }
    member(&mut out, "created_at");
    write_str(&mut out, &message.created_at.to_string(), false);
    if ciphertext.is_some() {
        member(&mut out, "enc");
        out.push_str("\"fernet\"");
    }
    member(&mut out, "group");
    write_str(&mut out, &message.group, false);
    member(&mut out, "id");
    write_str(&mut out, &message.id, false);
    member(&mut out, "idempotency_key");
    write_str(&mut out, &message.idempotency_key, false);
    member(&mut out, "kid");
    write_str(&mut out, &key.kid, false);
    member(&mut out, "metadata");
    write_map(&mut out, &message.metadata);
    if ciphertext.is_none() {
        member(&mut out, "payload");
        write_value(&mut out, &message.payload);
    }
    member(&mut out, "priority");
    out.push_str(&message.priority.level().to_string());
    if let Some(sender) = &message.sender {
        member(&mut out, "sender");
        write_str(&mut out, sender, false);
    }
    if let Recipient::Agent(agent) = &message.to {
        member(&mut out, "to_agent");
        write_str(&mut out, agent, false);
    }
    member(&mut out, "type");
    write_str(&mut out, &message.kind, false);
    member(&mut out, "v");
    out.push_str(&VERSION.to_string());
    out.push('}');

    let signature = hex::encode(key.sign(out.as_bytes()));
    out.pop();
    out.push_str(",\"sig\":\"");
    out.push_str(&signature);
    out.push_str("\"}");
    out
}

/// Decrypts a Fernet token without Fernet's own time checks: the message's timestamps
/// and the opener's clock decide freshness, not the token's timestamp and this machine's
/// clock.
fn fernet_decrypt(fernet: &Fernet, token: &str) -> Option<Vec<u8>> {
    // As "now", a time no token's timestamp is ahead of (and far from overflowing).
    const ANY_TIME: u64 = u64::MAX / 2;
    fernet.decrypt_at_time(token, None, ANY_TIME).ok()
}

/// Refuses a message created more than `freshness` before `now`, or more than
/// [`MAX_CLOCK_SKEW`] after it.
fn check_freshness(created_at: Timestamp, now: Timestamp, freshness: Duration) -> Result<(), Rejection> {
    let whole_seconds = |d: SignedDuration| d.as_secs() + i64::from(d.subsec_nanos() > 0);
    let age = now.duration_since(created_at);
    if age > SignedDuration::try_from(freshness).unwrap_or(SignedDuration::MAX) {
        return Err(Rejection::Stale { age_seconds: whole_seconds(age), limit_seconds: freshness.as_secs() });
    }
    let ahead = -age;
    if ahead > SignedDuration::try_from(MAX_CLOCK_SKEW).expect("30 s fits") {
        return Err(Rejection::FromTheFuture { ahead_seconds: whole_seconds(ahead) });
    }
    Ok(())
}
