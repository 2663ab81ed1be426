//! API keys: random, shown once, stored only as a SHA-256 hash.
//!
//! A key reads `tdk_<id>_<secret>`: the id finds the record, the secret proves
//! possession. The secret is 256 random bits, so a plain SHA-256 is enough to store it
//! (a slow password hash protects guessable secrets; these are not guessable).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::rate_limit::RateLimit;
use super::scope::{Scope, Scopes};
use crate::validation::ValidationErrors;

const PREFIX: &str = "tdk_";
const ID_LEN: usize = 16;
const ID_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiKeyId(String);

impl ApiKeyId {
    /// Accepts only the form this module generates, so ids are safe in keys and paths.
    pub fn parse(raw: &str) -> Option<Self> {
        let valid = raw.len() == ID_LEN && raw.bytes().all(|b| ID_ALPHABET.contains(&b));
        valid.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn random() -> Self {
        let mut bytes = [0u8; ID_LEN];
        fill_random(&mut bytes);
        Self(bytes.iter().map(|b| ID_ALPHABET[usize::from(b % 32)] as char).collect())
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A human name for a key: 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyName(String);

impl KeyName {
    pub fn new(raw: &str) -> Result<Self, &'static str> {
        let trimmed = raw.trim();
        // The length as sent, as the API's schema states it (`maxLength` 100): the edges
        // trimmed off do not make a longer name fit.
        if trimmed.is_empty() || raw.chars().count() > 100 {
            return Err("must be 1 to 100 characters");
        }
        // The whole text, edges included: a name with a tab is refused, not trimmed.
        if crate::validation::unsafe_char(raw).is_some() {
            return Err(crate::validation::UNSAFE_TEXT);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stored key. Holds the hash of the secret, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub name: KeyName,
    pub scopes: Scopes,
    pub secret_hash: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// `None`: the deployment's default applies.
    pub rate_limit: Option<RateLimit>,
}

impl ApiKey {
    /// Whether `secret` is this key's secret (constant time in the hash comparison).
    pub fn matches(&self, secret: &str) -> bool {
        constant_time_eq::constant_time_eq(hash_secret(secret).as_bytes(), self.secret_hash.as_bytes())
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// The body of a create-key request, as sent.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKeyRequest {
    /// 1 to 100 characters.
    #[schema(example = "ci-pipeline")]
    pub name: String,
    /// At least one of `admin`, `read`, `agents:write`, `messages:send`,
    /// `workflows:run`, `deployments:write`. `admin` grants all.
    #[schema(example = json!(["read"]))]
    pub scopes: Vec<String>,
    /// When the key stops working (RFC 3339); absent: never.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// The key's own rate limit; absent: the deployment's default.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

/// A create-key request whose every field is valid.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: KeyName,
    pub scopes: Scopes,
    pub expires_at: Option<Timestamp>,
    pub rate_limit: Option<RateLimit>,
}

impl crate::strict::shape::Shaped for NewApiKeyRequest {
    fn shape() -> &'static crate::strict::shape::Shape {
        use crate::strict::shape::{Field, Object, Shape};
        static SHAPE: Shape = Shape::Object(&Object {
            what: "an API key",
            fields: &[
                Field::required("name", Shape::Str),
                Field::required("scopes", Shape::List(&super::scope::SCOPE)),
                Field::optional("expires_at", Shape::Nullable(&Shape::Str)),
                Field::optional("rate_limit", Shape::Nullable(&super::rate_limit::RATE_LIMIT)),
            ],
        });
        &SHAPE
    }

    /// Every rule but the expiry's, which needs the time (the service checks it).
    fn rules(&self) -> ValidationErrors {
        self.clone().validate(Timestamp::UNIX_EPOCH).err().unwrap_or_default()
    }
}

impl NewApiKeyRequest {
    /// Checks every field and reports every problem, each with its JSON path.
    pub fn validate(self, now: Timestamp) -> Result<NewApiKey, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let name = KeyName::new(&self.name).map_err(|m| errors.add("$.name", m)).ok();
        let mut scopes = Vec::new();
        for (i, raw) in self.scopes.iter().enumerate() {
            match raw.parse::<Scope>() {
                Ok(scope) => scopes.push(scope),
                Err(e) => errors.add(format!("$.scopes[{i}]"), e.to_string()),
            }
        }
        if self.scopes.is_empty() {
            errors.add("$.scopes", "must name at least one scope");
        }
        if let Some(at) = self.expires_at
            && at <= now
        {
            errors.add("$.expires_at", "must be in the future");
        }
        if let Some(limit) = self.rate_limit {
            if !(1..=RateLimit::MAX_CAPACITY).contains(&limit.capacity) {
                errors.add("$.rate_limit.capacity", format!("must be 1 to {}", RateLimit::MAX_CAPACITY));
            }
            if !(1..=RateLimit::MAX_REFILL_PER_MINUTE).contains(&limit.refill_per_minute) {
                errors.add(
                    "$.rate_limit.refill_per_minute",
                    format!("must be 1 to {}", RateLimit::MAX_REFILL_PER_MINUTE),
                );
            }
        }
        match name {
            Some(name) if errors.is_empty() => Ok(NewApiKey {
                name,
                scopes: Scopes::new(scopes),
                expires_at: self.expires_at,
                rate_limit: self.rate_limit,
            }),
            _ => Err(errors),
        }
    }
}

impl NewApiKey {
    /// Makes the stored record and the one-time plaintext key.
    pub fn issue(self, now: Timestamp) -> (ApiKey, String) {
        let id = ApiKeyId::random();
        let mut secret_bytes = [0u8; 32];
        fill_random(&mut secret_bytes);
        let secret = URL_SAFE_NO_PAD.encode(secret_bytes);
        let plaintext = format!("{PREFIX}{id}_{secret}");
        let key = ApiKey {
            id,
            name: self.name,
            scopes: self.scopes,
            secret_hash: hash_secret(&secret),
            created_at: now,
            expires_at: self.expires_at,
            revoked_at: None,
            rate_limit: self.rate_limit,
        };
        (key, plaintext)
    }
}

/// A key as presented in `X-Api-Key`, split into id and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedKey {
    pub id: ApiKeyId,
    pub secret: String,
}

impl PresentedKey {
    pub fn parse(raw: &str) -> Option<Self> {
        let (id, secret) = raw.trim().strip_prefix(PREFIX)?.split_once('_')?;
        let id = ApiKeyId::parse(id)?;
        (secret.len() == 43).then(|| Self { id, secret: secret.to_owned() })
    }
}

impl fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PresentedKey").field("id", &self.id).finish_non_exhaustive()
    }
}

pub(crate) fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub(crate) fn fill_random(buf: &mut [u8]) {
    // The OS random source failing is not recoverable: nothing safe can be issued.
    getrandom::fill(buf).expect("the operating system's random source failed");
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_name_is_measured_as_sent_and_stored_trimmed() {
        assert_eq!(KeyName::new("  ci  ").unwrap().as_str(), "ci");
        let hundred = "x".repeat(100);
        assert!(KeyName::new(&hundred).is_ok());
        // 101 characters as sent, 100 once trimmed: the schema's maxLength is of what is sent.
        assert!(KeyName::new(&format!(" {hundred}")).is_err());
        assert!(KeyName::new("   ").is_err());
    }

    fn request(name: &str, scopes: &[&str]) -> NewApiKeyRequest {
        NewApiKeyRequest {
            name: name.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            expires_at: None,
            rate_limit: None,
        }
    }

    #[test]
    fn an_issued_key_parses_back_and_matches_only_its_own_secret() {
        let now = Timestamp::UNIX_EPOCH;
        let (key, plaintext) = request("ci", &["read"]).validate(now).unwrap().issue(now);
        let presented = PresentedKey::parse(&plaintext).unwrap();
        assert_eq!(presented.id, key.id);
        assert!(key.matches(&presented.secret));
        let (_, other) = request("ci", &["read"]).validate(now).unwrap().issue(now);
        assert!(!key.matches(&PresentedKey::parse(&other).unwrap().secret));
        assert!(!key.secret_hash.contains(&presented.secret));
    }

    #[test]
    fn validation_reports_every_bad_field_with_its_path() {
        let now = Timestamp::from_second(1_000).unwrap();
        let mut req = request(" ", &["read", "root", "nope"]);
        req.expires_at = Some(Timestamp::from_second(10).unwrap());
        req.rate_limit = Some(RateLimit { capacity: 0, refill_per_minute: 60 });
        let errors = req.validate(now).unwrap_err();
        let paths: Vec<&str> = errors.errors().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["$.name", "$.scopes[1]", "$.scopes[2]", "$.expires_at", "$.rate_limit.capacity"]);
        assert!(request("x", &[]).validate(now).is_err());
    }

    #[test]
    fn presented_keys_in_other_shapes_are_refused() {
        for raw in ["", "tdk_", "tdk_short_secret", "Bearer x", "tdk_AAAAAAAAAAAAAAAA_xx"] {
            assert!(PresentedKey::parse(raw).is_none(), "{raw}");
        }
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(raw in ".{0,80}") {
            let _ = PresentedKey::parse(&raw);
        }
    }

    #[test]
    fn the_request_shape_names_the_fields_serde_reads() {
        crate::strict::shape::assert_names_serde_fields::<NewApiKeyRequest>();
    }
}
