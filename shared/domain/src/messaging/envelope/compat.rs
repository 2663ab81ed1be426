//! Opening the existing producers' messages (compatibility mode; the format is in the
//! [envelope module docs](super#compatibility-mode)).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac as _;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use sha2::{Digest as _, Sha256};

use super::json::{self, Json};
use super::{CompatKeys, Format, Opened, Rejection, canonical, check_freshness, fernet_decrypt, malformed};
use crate::messaging::{Message, Recipient};
use crate::queue::Priority;

type Members = Vec<(String, Json)>;

pub(super) fn open(
    keys: &CompatKeys,
    body: &str,
    outer: Members,
    now: Timestamp,
    freshness: Duration,
) -> Result<Opened, Rejection> {
    let encrypted = get(&outer, "encrypted") == Some(&Json::Bool(true));
    let (message, outer) = if encrypted {
        let checked = check(keys, &outer, now, freshness)?;
        match get(&outer, "encryption_method") {
            None => {}
            Some(Json::String(method)) if method == "fernet" => {}
            Some(other) => return Err(malformed(format!("unknown encryption_method {other:?}"))),
        }
        let Some(Json::String(payload)) = get(&outer, "encrypted_payload") else {
            return Err(malformed("\"encrypted_payload\" must be a string"));
        };
        (keys.decrypt(payload).ok_or(Rejection::Undecryptable)?, checked)
    } else {
        (outer, Checked { signed: false, timestamp: None })
    };
    let inner = check(keys, &message, now, freshness)?;
    if !outer.signed && !inner.signed {
        return Err(Rejection::SignatureMissing);
    }
    let created_at =
        inner.timestamp.or(outer.timestamp).ok_or_else(|| malformed("a signed message needs a timestamp"))?;
    Ok(Opened { message: to_message(message, body, created_at)?, format: Format::Compat, kid: None })
}

impl CompatKeys {
    /// The message in `encrypted_payload`: standard base64 of a Fernet token of its JSON.
    fn decrypt(&self, encrypted_payload: &str) -> Option<Members> {
        let token = STANDARD.decode(encrypted_payload).ok()?;
        let plaintext = fernet_decrypt(&self.fernet, std::str::from_utf8(&token).ok()?)?;
        match json::parse(std::str::from_utf8(&plaintext).ok()?).ok()? {
            Json::Object(members) => Some(members),
            _ => None,
        }
    }

    fn verifies(&self, members: &[(String, Json)], signature: &str) -> bool {
        let mut text = String::with_capacity(1024);
        canonical::write_sorted_items(&mut text, members, Some("signature"));
        let mut mac = self.signer.clone();
        mac.update(text.as_bytes());
        hex::decode(signature).is_ok_and(|signature| mac.verify_slice(&signature).is_ok())
    }
}

/// What [`check`] found of one object: whether it was signed, and its timestamp.
struct Checked {
    signed: bool,
    timestamp: Option<Timestamp>,
}

/// Verifies an object's `signature`, if it has one, and the freshness of its `timestamp`.
fn check(
    keys: &CompatKeys,
    members: &Members,
    now: Timestamp,
    freshness: Duration,
) -> Result<Checked, Rejection> {
    let timestamp = match get(members, "timestamp") {
        None => None,
        Some(Json::String(text)) => Some(parse_timestamp(text).ok_or_else(|| {
            malformed(format!("\"timestamp\" must be an ISO 8601 date-time, not {text:?}"))
        })?),
        Some(_) => return Err(malformed("\"timestamp\" must be a string")),
    };
    let signed = match get(members, "signature") {
        None => false,
        Some(Json::String(signature)) => {
            if timestamp.is_none() {
                return Err(malformed("a signed message needs a timestamp"));
            }
            if !keys.verifies(members, signature) {
                return Err(Rejection::SignatureInvalid);
            }
            true
        }
        Some(_) => return Err(malformed("\"signature\" must be a string")),
    };
    if let Some(timestamp) = timestamp {
        check_freshness(timestamp, now, freshness)?;
    }
    Ok(Checked { signed, timestamp })
}

/// `datetime.utcnow().isoformat()` (no zone: UTC), or a date-time with an offset.
fn parse_timestamp(text: &str) -> Option<Timestamp> {
    text.parse::<Timestamp>().ok().or_else(|| {
        let civil: jiff::civil::DateTime = text.parse().ok()?;
        Some(civil.to_zoned(TimeZone::UTC).ok()?.timestamp())
    })
}

fn get<'a>(members: &'a [(String, Json)], name: &str) -> Option<&'a Json> {
    members.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Removes and returns the first of `names` present and not null, with its name.
fn take(members: &mut Members, names: &[&'static str]) -> Option<(&'static str, Json)> {
    for &name in names {
        if let Some(at) = members.iter().position(|(k, v)| k == name && *v != Json::Null) {
            return Some((name, members.swap_remove(at).1));
        }
    }
    None
}

fn take_string(members: &mut Members, names: &[&'static str]) -> Result<Option<String>, Rejection> {
    match take(members, names) {
        None => Ok(None),
        Some((_, Json::String(s))) => Ok(Some(s)),
        Some((name, _)) => Err(malformed(format!("{name:?} must be a string"))),
    }
}

/// Maps an existing producer's message to a [`Message`].
fn to_message(mut members: Members, body: &str, created_at: Timestamp) -> Result<Message, Rejection> {
    let id = match take_string(&mut members, &["id", "message_id"])? {
        Some(id) => id,
        None => hex::encode(Sha256::digest(body.as_bytes())),
    };
    let kind = take_string(&mut members, &["type", "message_type"])?
        .ok_or_else(|| malformed("\"type\" (or \"message_type\") is missing"))?;
    let to = match take_string(&mut members, &["to_agent", "recipient", "target_agent"])? {
        Some(agent) => Recipient::Agent(agent),
        None => match take_string(&mut members, &["capability"])? {
            Some(capability) => Recipient::Capability(capability),
            None => {
                return Err(malformed(
                    "no recipient: \"to_agent\", \"recipient\", \"target_agent\" or \"capability\"",
                ));
            }
        },
    };
    let payload = match take(&mut members, &["payload", "content", "data"]) {
        Some((_, value)) => value.into_value().map_err(|e| malformed(format!("payload: {e}")))?,
        None => serde_json::Value::Object(serde_json::Map::new()),
    };
    let priority = match take(&mut members, &["priority"]) {
        None => Priority::default(),
        Some((_, Json::Int(level @ 1..=10))) => Priority::new(level as u8).expect("1 to 10"),
        Some(_) => return Err(malformed("\"priority\" must be an integer from 1 to 10")),
    };
    let group = take_string(&mut members, &["group", "correlation_id"])?.unwrap_or_else(|| to.label());
    let idempotency_key =
        take_string(&mut members, &["dedup_id", "idempotency_key"])?.unwrap_or_else(|| id.clone());
    let metadata = match take(&mut members, &["metadata"]) {
        None => serde_json::Map::new(),
        Some((_, value)) => match value.into_value() {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err(malformed("\"metadata\" must be an object")),
        },
    };
    let sender = take_string(&mut members, &["sender", "from_agent", "source"])?;
    Ok(Message { id, kind, to, payload, priority, group, idempotency_key, metadata, sender, created_at })
}
