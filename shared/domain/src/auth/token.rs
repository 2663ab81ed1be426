//! Short-lived JWTs: HS256 only, issuer and audience checked, keys chosen by `kid`.
//!
//! Expiry and not-before are checked here against the injected clock rather than by
//! `jsonwebtoken` against the system clock, so tests control time.

use std::fmt;

use jiff::Timestamp;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::rate_limit::RateLimit;

/// The one algorithm we sign with and accept. Anything else in a header is refused.
const ALGORITHM: Algorithm = Algorithm::HS256;
/// Shortest signing secret accepted: 256 bits, as RFC 7518 asks for HS256.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The id of the API key the token was exchanged for.
    pub sub: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    /// Space-separated scopes (RFC 8693 `scope`).
    pub scope: String,
    /// The key's own rate limit, so that checks need no key lookup; absent: the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rl: Option<RateLimit>,
}

/// One signing key: `kid` names it in token headers.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    pub secret: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// The key that signs now, and the one before it, which still verifies until the tokens
/// it signed have expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeys {
    pub current: SigningKey,
    pub previous: Option<SigningKey>,
}

impl SigningKeys {
    pub fn find(&self, kid: &str) -> Option<&SigningKey> {
        std::iter::once(&self.current).chain(self.previous.as_ref()).find(|key| key.kid == kid)
    }
}

/// Issuer, audience and clock tolerance every token is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not accepted (only HS256 is)")]
    AlgorithmNotAllowed,
    #[error("the token names no signing key (kid)")]
    MissingKeyId,
    #[error("the token was signed with an unknown key")]
    UnknownKeyId,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by someone else")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token lacks a required claim")]
    MissingClaim,
}

pub fn sign(claims: &Claims, key: &SigningKey) -> String {
    let header = Header { kid: Some(key.kid.clone()), ..Header::new(ALGORITHM) };
    // Encoding a plain struct with an HMAC key has no failure mode but a broken
    // serializer; if it ever happens the caller gets an empty, unusable token.
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&key.secret)).unwrap_or_default()
}

/// The `kid` in a token's header, after checking that the header names our algorithm.
pub fn key_id(token: &str) -> Result<String, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.alg != ALGORITHM {
        return Err(TokenError::AlgorithmNotAllowed);
    }
    header.kid.ok_or(TokenError::MissingKeyId)
}

/// Verifies signature, issuer, audience, expiry and not-before of a token signed by `key`.
pub fn verify(
    token: &str,
    key: &SigningKey,
    settings: &TokenSettings,
    now: Timestamp,
) -> Result<Claims, TokenError> {
    let mut validation = Validation::new(ALGORITHM);
    validation.set_issuer(&[&settings.issuer]);
    validation.set_audience(&[&settings.audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&key.secret), &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
            ErrorKind::InvalidAudience => TokenError::WrongAudience,
            ErrorKind::MissingRequiredClaim(_) => TokenError::MissingClaim,
            ErrorKind::InvalidAlgorithm => TokenError::AlgorithmNotAllowed,
            _ => TokenError::Malformed,
        })?;
    let claims = data.claims;
    let now = now.as_second();
    // No leeway on expiry: the same fleet's clocks mint and check it, and a token must
    // not outlive its key by the leeway. The leeway is for `nbf`, across instances.
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    if claims.nbf > now + settings.leeway_secs {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn key(kid: &str) -> SigningKey {
        SigningKey { kid: kid.into(), secret: vec![7; 32] }
    }

    fn settings() -> TokenSettings {
        TokenSettings { issuer: "tdev".into(), audience: "tdev-api".into(), leeway_secs: 0 }
    }

    fn claims(now: i64) -> Claims {
        Claims {
            iss: "tdev".into(),
            aud: "tdev-api".into(),
            sub: "k1".into(),
            exp: now + 60,
            nbf: now,
            iat: now,
            jti: "j1".into(),
            scope: "read".into(),
            rl: None,
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let token = sign(&claims(1000), &key("a"));
        assert_eq!(key_id(&token).unwrap(), "a");
        assert_eq!(verify(&token, &key("a"), &settings(), at(1000)).unwrap(), claims(1000));
        assert_eq!(verify(&token, &key("a"), &settings(), at(1060)), Err(TokenError::Expired));
        assert_eq!(verify(&token, &key("a"), &settings(), at(999)), Err(TokenError::NotYetValid));
    }

    #[test]
    fn wrong_issuer_audience_or_key_are_refused() {
        let mut c = claims(1000);
        c.iss = "evil".into();
        let token = sign(&c, &key("a"));
        assert_eq!(verify(&token, &key("a"), &settings(), at(1000)), Err(TokenError::WrongIssuer));
        let mut c = claims(1000);
        c.aud = "other".into();
        let token = sign(&c, &key("a"));
        assert_eq!(verify(&token, &key("a"), &settings(), at(1000)), Err(TokenError::WrongAudience));
        let other = SigningKey { kid: "a".into(), secret: vec![8; 32] };
        let token = sign(&claims(1000), &other);
        assert_eq!(verify(&token, &key("a"), &settings(), at(1000)), Err(TokenError::BadSignature));
    }

    #[test]
    fn none_and_other_algorithms_are_refused_by_header() {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(1000)).unwrap());
        for alg in ["none", "RS256", "HS512"] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"a"}}"#));
            let token = format!("{header}.{body}.c2ln");
            assert!(key_id(&token).is_err(), "{alg}");
            assert!(verify(&token, &key("a"), &settings(), at(1000)).is_err(), "{alg}");
        }
    }

    #[test]
    fn previous_key_is_found_by_kid() {
        let keys = SigningKeys { current: key("new"), previous: Some(key("old")) };
        assert_eq!(keys.find("old").unwrap().kid, "old");
        assert!(keys.find("older").is_none());
    }
}
