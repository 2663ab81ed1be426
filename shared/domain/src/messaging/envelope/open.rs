//! Opening a received body: an envelope, or with compatibility keys an existing
//! producer's message (the rules are in the [envelope module docs](super)).

use std::time::Duration;

use jiff::Timestamp;

use super::json::{self, Json};
use super::keys::{CompatKeys, Keyring};
use super::{
    Format, Opened, Rejection, VERSION, canonical, check_freshness, compat, fernet_decrypt, malformed,
};
use crate::messaging::{Message, Recipient};
use crate::queue::Priority;

/// Opens envelopes (and, with compatibility keys, existing producers' messages).
#[derive(Debug, Clone)]
pub struct Opener {
    pub keys: Keyring,
    pub compat: Option<CompatKeys>,
    pub freshness: Duration,
}

impl Opener {
    pub fn open(&self, body: &str, now: Timestamp) -> Result<Opened, Rejection> {
        let parsed = json::parse(body).map_err(|e| malformed(format!("not JSON: {e}")))?;
        let Json::Object(members) = parsed else { return Err(malformed("not a JSON object")) };
        let has = |name: &str| members.iter().any(|(k, _)| k == name);
        if has("v") && !has("encrypted") && !has("signature") {
            return self.open_envelope(members, body.len(), now);
        }
        match &self.compat {
            Some(keys) => compat::open(keys, body, members, now, self.freshness),
            None => Err(malformed("not a T-Developer envelope (compatibility mode is off)")),
        }
    }

    fn open_envelope(
        &self,
        members: Vec<(String, Json)>,
        body_len: usize,
        now: Timestamp,
    ) -> Result<Opened, Rejection> {
        let version = match members.iter().find(|(k, _)| k == "v").map(|(_, v)| v) {
            Some(Json::Int(v)) if *v >= 0 => *v as u64,
            Some(Json::UInt(v)) => *v,
            _ => return Err(malformed("\"v\" must be a non-negative integer")),
        };
        if version != VERSION {
            return Err(Rejection::UnsupportedVersion(version));
        }
        let mut signed = String::with_capacity(body_len);
        canonical::write_sorted_members(&mut signed, &members, Some("sig"));
        let envelope = ReceivedEnvelope::read(members)?;
        let signature = envelope.signature.ok_or(Rejection::SignatureMissing)?;
        let key = self.keys.key(&envelope.kid).ok_or_else(|| Rejection::UnknownKey(envelope.kid.clone()))?;
        if !signature.is_some_and(|signature| key.verifies(signed.as_bytes(), &signature)) {
            return Err(Rejection::SignatureInvalid);
        }
        check_freshness(envelope.created_at, now, self.freshness)?;
        let payload = match envelope.payload {
            ReceivedPayload::Plain(payload) => payload,
            ReceivedPayload::Encrypted(token) => {
                let plaintext = fernet_decrypt(&key.fernet, &token).ok_or(Rejection::Undecryptable)?;
                std::str::from_utf8(&plaintext)
                    .ok()
                    .and_then(|text| json::parse(text).ok())
                    .and_then(|json| json.into_value().ok())
                    .ok_or(Rejection::Undecryptable)?
            }
        };
        Ok(Opened {
            message: Message {
                id: envelope.id,
                kind: envelope.kind,
                to: envelope.to,
                payload,
                priority: envelope.priority,
                group: envelope.group,
                idempotency_key: envelope.idempotency_key,
                metadata: envelope.metadata,
                sender: envelope.sender,
                created_at: envelope.created_at,
            },
            format: Format::Envelope,
            kid: Some(envelope.kid),
        })
    }
}

enum ReceivedPayload {
    Plain(serde_json::Value),
    /// The Fernet token.
    Encrypted(String),
}

/// A received envelope's members, checked for presence and type.
struct ReceivedEnvelope {
    kid: String,
    id: String,
    kind: String,
    to: Recipient,
    priority: Priority,
    group: String,
    idempotency_key: String,
    metadata: serde_json::Map<String, serde_json::Value>,
    sender: Option<String>,
    created_at: Timestamp,
    payload: ReceivedPayload,
    /// Present but not 64 lowercase hex digits: `Some(None)`.
    signature: Option<Option<[u8; 32]>>,
}

impl ReceivedEnvelope {
    fn read(members: Vec<(String, Json)>) -> Result<Self, Rejection> {
        fn string(name: &str, value: Json) -> Result<String, Rejection> {
            match value {
                Json::String(s) => Ok(s),
                _ => Err(malformed(format!("{name:?} must be a string"))),
            }
        }
        let (mut kid, mut id, mut kind, mut to_agent, mut capability) = (None, None, None, None, None);
        let (mut priority, mut group, mut idempotency_key, mut metadata) = (None, None, None, None);
        let (mut sender, mut created_at, mut payload, mut enc, mut ciphertext) =
            (None, None, None, None, None);
        let mut signature = None;
        for (name, value) in members {
            match name.as_str() {
                "v" => {}
                "kid" => kid = Some(string(&name, value)?),
                "id" => id = Some(string(&name, value)?),
                "type" => kind = Some(string(&name, value)?),
                "to_agent" => to_agent = Some(string(&name, value)?),
                "capability" => capability = Some(string(&name, value)?),
                "priority" => {
                    priority = Some(match value {
                        Json::Int(level @ 1..=10) => Priority::new(level as u8).expect("1 to 10"),
                        _ => return Err(malformed("\"priority\" must be an integer from 1 to 10")),
                    })
                }
                "group" => group = Some(string(&name, value)?),
                "idempotency_key" => idempotency_key = Some(string(&name, value)?),
                "metadata" => match value.into_value() {
                    Ok(serde_json::Value::Object(map)) => metadata = Some(map),
                    _ => return Err(malformed("\"metadata\" must be an object")),
                },
                "sender" => sender = Some(string(&name, value)?),
                "created_at" => {
                    let text = string(&name, value)?;
                    created_at = Some(text.parse::<Timestamp>().map_err(|_| {
                        malformed(format!("\"created_at\" must be an RFC 3339 date-time, not {text:?}"))
                    })?);
                }
                "payload" => {
                    payload = Some(value.into_value().map_err(|e| malformed(format!("payload: {e}")))?)
                }
                "enc" => enc = Some(string(&name, value)?),
                "ciphertext" => ciphertext = Some(string(&name, value)?),
                "sig" => {
                    let text = string(&name, value)?;
                    let mut bytes = [0u8; 32];
                    // Lowercase only, so that one signature has one spelling.
                    let lowercase = text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                    signature =
                        Some((lowercase && hex::decode_to_slice(&text, &mut bytes).is_ok()).then_some(bytes));
                }
                other => return Err(malformed(format!("unknown member {other:?}"))),
            }
        }
        let required = |name: &str| malformed(format!("{name:?} is missing"));
        let to = match (to_agent, capability) {
            (Some(agent), None) => Recipient::Agent(agent),
            (None, Some(capability)) => Recipient::Capability(capability),
            (Some(_), Some(_)) => return Err(malformed("both \"to_agent\" and \"capability\"")),
            (None, None) => return Err(malformed("neither \"to_agent\" nor \"capability\"")),
        };
        let payload = match (payload, enc, ciphertext) {
            (Some(payload), None, None) => ReceivedPayload::Plain(payload),
            (None, Some(enc), Some(token)) if enc == "fernet" => ReceivedPayload::Encrypted(token),
            (None, Some(enc), Some(_)) => return Err(malformed(format!("unknown \"enc\" {enc:?}"))),
            _ => return Err(malformed("give either \"payload\", or \"enc\" and \"ciphertext\"")),
        };
        Ok(Self {
            kid: kid.ok_or_else(|| required("kid"))?,
            id: id.ok_or_else(|| required("id"))?,
            kind: kind.ok_or_else(|| required("type"))?,
            to,
            priority: priority.ok_or_else(|| required("priority"))?,
            group: group.ok_or_else(|| required("group"))?,
            idempotency_key: idempotency_key.ok_or_else(|| required("idempotency_key"))?,
            metadata: metadata.ok_or_else(|| required("metadata"))?,
            sender,
            created_at: created_at.ok_or_else(|| required("created_at"))?,
            payload,
            signature,
        })
    }
}
