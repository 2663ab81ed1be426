//! Hostile bearer tokens, each of which must be answered with 401. Built with
//! `jsonwebtoken` and by hand, not with the code under test.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// What a token is signed with: the kid and secret of the current signing key.
pub struct SigningMaterial<'a> {
    pub kid: &'a str,
    pub secret: &'a [u8],
    pub issuer: &'a str,
    pub audience: &'a str,
    /// The API key id the tokens claim to come from.
    pub subject: &'a str,
    pub now: i64,
}

impl SigningMaterial<'_> {
    pub fn claims(&self) -> Value {
        json!({
            "iss": self.issuer, "aud": self.audience, "sub": self.subject,
            "iat": self.now, "nbf": self.now, "exp": self.now + 600,
            "jti": "conformance", "scope": "admin",
        })
    }

    /// A token the system must accept: the baseline the bad ones differ from.
    pub fn valid(&self) -> String {
        self.sign(&self.claims(), self.kid, self.secret)
    }

    fn sign(&self, claims: &Value, kid: &str, secret: &[u8]) -> String {
        let header = Header { kid: Some(kid.to_owned()), ..Header::new(Algorithm::HS256) };
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("encode")
    }

    fn with(&self, change: impl FnOnce(&mut Value)) -> String {
        let mut claims = self.claims();
        change(&mut claims);
        self.sign(&claims, self.kid, self.secret)
    }

    /// `(name, Authorization header value)` for every way a token can be bad.
    pub fn bad_authorizations(&self) -> Vec<(&'static str, String)> {
        let now = self.now;
        let bearer = |token: String| format!("Bearer {token}");
        let valid = self.valid();
        let parts: Vec<&str> = valid.split('.').collect();
        let b64 = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let mut tampered_claims = self.claims();
        tampered_claims["sub"] = json!("aaaaaaaaaaaaaaaa");
        vec![
            ("wrong scheme", format!("Basic {}", URL_SAFE_NO_PAD.encode("user:pass"))),
            ("malformed", bearer("not-a-jwt".into())),
            ("empty bearer", "Bearer ".into()),
            (
                "expired",
                bearer(self.with(|c| {
                    c["iat"] = json!(now - 7200);
                    c["nbf"] = json!(now - 7200);
                    c["exp"] = json!(now - 3600);
                })),
            ),
            (
                "not yet valid",
                bearer(self.with(|c| {
                    c["nbf"] = json!(now + 3600);
                    c["exp"] = json!(now + 7200);
                })),
            ),
            ("wrong issuer", bearer(self.with(|c| c["iss"] = json!("someone-else")))),
            ("wrong audience", bearer(self.with(|c| c["aud"] = json!("another-api")))),
            (
                "missing exp",
                bearer(self.with(|c| {
                    c.as_object_mut().map(|o| o.remove("exp"));
                })),
            ),
            (
                "alg none",
                bearer(format!(
                    "{}.{}.",
                    b64(json!({"alg": "none", "typ": "JWT", "kid": self.kid})),
                    parts[1]
                )),
            ),
            // An RS256 header over an HMAC signature: the classic key-confusion attack.
            (
                "HS/RS confused",
                bearer(format!(
                    "{}.{}.{}",
                    b64(json!({"alg": "RS256", "typ": "JWT", "kid": self.kid})),
                    parts[1],
                    parts[2]
                )),
            ),
            ("unknown kid", bearer(self.sign(&self.claims(), "no-such-key", self.secret))),
            (
                "other secret",
                bearer(self.sign(&self.claims(), self.kid, b"another-secret-another-secret-!!")),
            ),
            ("tampered payload", bearer(format!("{}.{}.{}", parts[0], b64(tampered_claims), parts[2]))),
        ]
    }
}
