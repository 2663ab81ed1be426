use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac as _;

use super::canonical::tests::arbitrary_json;
use super::keys::HmacSha256;
use super::*;
use crate::ports::{SecretVersion, SecretVersions};
use crate::queue::Priority;

fn now() -> Timestamp {
    "2026-11-24T10:00:00Z".parse().unwrap()
}

fn key() -> EnvelopeKey {
    EnvelopeKey::new("k1", "secret one")
}

fn keyring() -> Keyring {
    Keyring::new(key(), vec![])
}

fn opener(keys: Keyring) -> Opener {
    Opener { keys, compat: None, freshness: DEFAULT_FRESHNESS }
}

fn message() -> Message {
    Message {
        id: "m-1".into(),
        kind: "task.assign".into(),
        to: Recipient::Agent("summarizer".into()),
        payload: json!({
            "text": "Résumé: naïve café — 東京 😀 \"quoted\" \\ \u{7f}\u{1}\n",
            "nested": {"zeta": [1, -2, 1.5, 2.5e-7, 1e16, -0.0, u64::MAX], "alpha": {"b": null, "a": true}},
            "ratio": 0.1,
        }),
        priority: Priority::new(3).unwrap(),
        group: "agent:summarizer".into(),
        idempotency_key: "m-1".into(),
        metadata: json!({"trace": "t-1", "attempt": 2}).as_object().unwrap().clone(),
        sender: Some("key:ops".into()),
        created_at: now() - SignedDuration::from_secs(5),
    }
}

fn open(body: &str) -> Result<Opened, Rejection> {
    opener(keyring()).open(body, now())
}

/// `body` with the member `name` set to `value`, re-signed with `key` when given.
fn edit(body: &str, name: &str, value: Value, resign: Option<&EnvelopeKey>) -> String {
    let mut object: serde_json::Map<String, Value> = serde_json::from_str(body).unwrap();
    object.insert(name.into(), value);
    resign_object(object, resign)
}

fn resign_object(mut object: serde_json::Map<String, Value>, key: Option<&EnvelopeKey>) -> String {
    if let Some(key) = key {
        object.remove("sig");
        let text = canonical::to_canonical(&Value::Object(object.clone()));
        object.insert("sig".into(), hex::encode(key.sign(text.as_bytes())).into());
    }
    serde_json::to_string(&object).unwrap()
}

#[test]
fn keys_derive_as_specified() {
    // Python: hmac.new(b"secret one", b"tdev envelope signing", hashlib.sha256).hexdigest()
    assert_eq!(
        hex::encode(key().signing_key()),
        "b523deeadb2bec4b0e594cb50acff88b5821e178ddd36e0805d4038d960ff70e"
    );
    // Python: base64.urlsafe_b64encode(hmac.new(b"secret one", b"tdev envelope encryption", ...).digest())
    let fernet = Fernet::new("XiiFFU4ti35x5QSoKS18rCn-8_ASZhOuKm_7HwY1XSs=").unwrap();
    assert_eq!(fernet_decrypt(&fernet, &key().fernet.encrypt(b"x")).unwrap(), b"x");
}

#[test]
fn sealed_messages_open_as_they_were() {
    for encrypt in [false, true] {
        let body = seal(&message(), &keyring(), encrypt);
        let opened = open(&body).unwrap();
        assert_eq!(opened, Opened { message: message(), format: Format::Envelope, kid: Some("k1".into()) });
        assert_eq!(body.contains("Résumé"), !encrypt);
        assert_eq!(body.contains("\"enc\":\"fernet\""), encrypt);
    }
    let to_capability = Message { to: Recipient::Capability("summarize".into()), sender: None, ..message() };
    let body = seal(&to_capability, &keyring(), false);
    assert!(!body.contains("sender"));
    assert_eq!(open(&body).unwrap().message, to_capability);
}

#[test]
fn a_sealed_body_is_canonical_json_then_the_signature() {
    let body = seal(&message(), &keyring(), true);
    let (signed, signature) = body.rsplit_once(",\"sig\":\"").unwrap();
    let signed = format!("{signed}}}");
    assert_eq!(canonical::canonicalize(&signed).unwrap(), signed);
    assert_eq!(signature.trim_end_matches("\"}"), hex::encode(key().sign(signed.as_bytes())));
}

#[test]
fn any_single_byte_tamper_is_refused_or_changes_nothing() {
    for encrypt in [false, true] {
        let body = seal(&message(), &keyring(), encrypt);
        let mut refused = 0;
        for at in 0..body.len() {
            for replacement in [
                b'0',
                b'7',
                b'a',
                b'x',
                b' ',
                b'"',
                b'}',
                body.as_bytes()[at] ^ 1,
                body.as_bytes()[at] ^ 0x20,
            ] {
                let mut bytes = body.clone().into_bytes();
                if bytes[at] == replacement {
                    continue;
                }
                bytes[at] = replacement;
                let Ok(tampered) = String::from_utf8(bytes) else { continue };
                match open(&tampered) {
                    Err(_) => refused += 1,
                    // The same JSON written differently, e.g. `1E+16` for `1e+16`.
                    Ok(opened) => assert_eq!(opened.message, message(), "{tampered}"),
                }
            }
        }
        assert!(refused > body.len() * 6, "{refused} of {}", body.len());
    }
}

#[test]
fn tampered_members_fail_the_signature() {
    let body = seal(&message(), &keyring(), false);
    let tampered = [
        edit(&body, "payload", json!({"text": "other"}), None),
        edit(&body, "priority", json!(1), None),
        edit(&body, "to_agent", json!("attacker"), None),
        edit(&body, "kid", json!("k1"), None), // unchanged: still valid
        edit(&body, "sig", json!("0".repeat(64)), None),
        edit(&body, "sig", json!(hex::encode(key().sign(b"x")).to_uppercase()), None),
        edit(&body, "sig", json!("abc"), None),
    ];
    let results: Vec<_> = tampered.iter().map(|b| open(b).map(|o| o.message)).collect();
    assert_eq!(results[3], Ok(message()));
    for (i, result) in results.iter().enumerate().filter(|(i, _)| *i != 3) {
        assert_eq!(result, &Err(Rejection::SignatureInvalid), "case {i}");
    }
    let mut object: serde_json::Map<String, Value> = serde_json::from_str(&body).unwrap();
    object.remove("sig");
    assert_eq!(open(&serde_json::to_string(&object).unwrap()), Err(Rejection::SignatureMissing));

    let encrypted = seal(&message(), &keyring(), true);
    let other = seal(&Message { payload: json!("other"), ..message() }, &keyring(), true);
    let other_ciphertext: Value = serde_json::from_str::<Value>(&other).unwrap()["ciphertext"].clone();
    assert_eq!(
        open(&edit(&encrypted, "ciphertext", other_ciphertext, None)),
        Err(Rejection::SignatureInvalid)
    );
}

#[test]
fn old_and_future_messages_are_refused() {
    let at = |offset: i64| {
        let message = Message { created_at: now() + SignedDuration::from_secs(offset), ..message() };
        open(&seal(&message, &keyring(), false)).map(|_| ())
    };
    assert_eq!(at(-300), Ok(()));
    assert_eq!(at(-301), Err(Rejection::Stale { age_seconds: 301, limit_seconds: 300 }));
    assert_eq!(at(30), Ok(()));
    assert_eq!(at(31), Err(Rejection::FromTheFuture { ahead_seconds: 31 }));
    let stale = Message { created_at: now() - SignedDuration::from_millis(300_500), ..message() };
    assert_eq!(
        open(&seal(&stale, &keyring(), true)),
        Err(Rejection::Stale { age_seconds: 301, limit_seconds: 300 })
    );
    // Any offset is accepted, and means the same instant.
    let body = seal(&message(), &keyring(), false);
    let offset = edit(&body, "created_at", json!("2026-11-24T11:59:55+02:00"), Some(&key()));
    assert_eq!(open(&offset).unwrap().message, message());
}

#[test]
fn the_wrong_key_is_refused() {
    let body = seal(&message(), &keyring(), true);
    let same_kid = Keyring::new(EnvelopeKey::new("k1", "another secret"), vec![]);
    assert_eq!(opener(same_kid).open(&body, now()), Err(Rejection::SignatureInvalid));
    let other_kid = Keyring::new(EnvelopeKey::new("k2", "secret one"), vec![]);
    assert_eq!(opener(other_kid).open(&body, now()), Err(Rejection::UnknownKey("k1".into())));
}

#[test]
fn a_ciphertext_that_does_not_decrypt_is_undecryptable() {
    let sealed_with = |ciphertext: &str| seal_with(&message(), &key(), SealedPayload::Ciphertext(ciphertext));
    let other_key = EnvelopeKey::new("k1", "another secret");
    for ciphertext in [
        "garbage".to_owned(),
        String::new(),
        other_key.fernet.encrypt(b"{}"),
        key().fernet.encrypt(b"not json"),
        key().fernet.encrypt(&[0xff, 0xfe]),
    ] {
        assert_eq!(open(&sealed_with(&ciphertext)), Err(Rejection::Undecryptable), "{ciphertext}");
    }
    // The check: a correct ciphertext sealed this way opens.
    assert_eq!(
        open(&sealed_with(&key().fernet.encrypt(b"{\"a\":1}"))).unwrap().message.payload,
        json!({"a": 1})
    );
}

#[test]
fn messages_sealed_with_the_previous_key_open_after_rotation() {
    let version = |id: &str, value: &str| SecretVersion { version_id: id.into(), value: value.into() };
    let before = Keyring::from_secret(&SecretVersions { current: version("v1", "old"), previous: None });
    let after = Keyring::from_secret(&SecretVersions {
        current: version("v2", "new"),
        previous: Some(version("v1", "old")),
    });
    assert_eq!(after.current_kid(), "v2");
    let old = seal(&message(), &before, true);
    let opened = opener(after.clone()).open(&old, now()).unwrap();
    assert_eq!((opened.message, opened.kid), (message(), Some("v1".into())));
    let new = seal(&message(), &after, true);
    assert_eq!(opener(after).open(&new, now()).unwrap().kid, Some("v2".into()));
    assert_eq!(opener(before).open(&new, now()), Err(Rejection::UnknownKey("v2".into())));
}

#[test]
fn malformed_bodies_say_what_is_wrong() {
    let body = seal(&message(), &keyring(), false);
    let object: serde_json::Map<String, Value> = serde_json::from_str(&body).unwrap();
    let without = |name: &str| {
        let mut object = object.clone();
        object.remove(name);
        resign_object(object, Some(&key()))
    };
    let malformed = |body: &str| match open(body) {
        Err(Rejection::Malformed(detail)) => detail,
        other => panic!("{body}: {other:?}"),
    };
    assert!(malformed("not json").starts_with("not JSON"));
    assert_eq!(malformed("[1]"), "not a JSON object");
    assert_eq!(malformed(r#"{"id": "x"}"#), "not a T-Developer envelope (compatibility mode is off)");
    assert!(malformed(&without("group")).contains("\"group\" is missing"));
    assert!(malformed(&without("to_agent")).contains("neither"));
    assert!(malformed(&without("payload")).contains("payload"));
    assert!(malformed(&edit(&body, "capability", json!("c"), Some(&key()))).contains("both"));
    for priority in [json!(0), json!(11), json!("5"), json!(5.0)] {
        assert!(malformed(&edit(&body, "priority", priority, Some(&key()))).contains("priority"));
    }
    assert!(malformed(&edit(&body, "extra", json!(1), Some(&key()))).contains("unknown member"));
    assert!(malformed(&edit(&body, "created_at", json!("yesterday"), Some(&key()))).contains("created_at"));
    assert!(malformed(&edit(&body, "sig", json!(1), None)).contains("sig"));
    assert!(malformed(&edit(&body, "enc", json!("fernet"), Some(&key()))).contains("either"));
    assert!(malformed(&edit(&body, "v", json!("1"), None)).contains("\"v\""));
    assert_eq!(open(&edit(&body, "v", json!(2), None)), Err(Rejection::UnsupportedVersion(2)));
    assert!(malformed(&format!("{} ", &body[..body.len() - 1])).starts_with("not JSON"));
    assert_eq!(Rejection::Malformed(String::new()).code(), "malformed");
}

fn arbitrary_message() -> impl Strategy<Value = Message> {
    let text = "\\PC{0,24}";
    (
        (text, text, prop_oneof![text.prop_map(Recipient::Agent), text.prop_map(Recipient::Capability)]),
        (arbitrary_json(), 1u8..=10, text, text),
        (prop::collection::btree_map("\\PC{0,8}", arbitrary_json(), 0..4), prop::option::of(text)),
        (-300i64..=30, 0i32..1_000_000_000),
    )
        .prop_map(
            |(
                (id, kind, to),
                (payload, priority, group, idempotency_key),
                (metadata, sender),
                (secs, nanos),
            )| {
                let created_at =
                    Timestamp::new(now().as_second() + secs, if secs == -300 { 0 } else { nanos }).unwrap();
                Message {
                    id,
                    kind,
                    to,
                    payload,
                    priority: Priority::new(priority).unwrap(),
                    group,
                    idempotency_key,
                    metadata: metadata.into_iter().collect(),
                    sender,
                    created_at: created_at.min(now() + SignedDuration::from_secs(30)),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn open_undoes_seal(message in arbitrary_message(), encrypt in any::<bool>()) {
        let body = seal(&message, &keyring(), encrypt);
        let opened = open(&body).unwrap();
        prop_assert_eq!(opened.message, message);
    }
}

// Compatibility mode.

static COMPAT: LazyLock<CompatKeys> = LazyLock::new(|| CompatKeys::new("old passphrase", "old signing key"));

fn compat_opener() -> Opener {
    Opener { compat: Some(COMPAT.clone()), ..opener(keyring()) }
}

/// What an existing producer's `sign_message` does to the JSON object `text`.
fn compat_sign(text: &str) -> String {
    let items = canonical::python_sorted_items(text).unwrap();
    let mut mac = HmacSha256::new_from_slice(b"old signing key").unwrap();
    mac.update(items.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    format!("{}, \"signature\": \"{signature}\"}}", text.trim_end().strip_suffix('}').unwrap())
}

/// What an existing producer's `encrypt_message` does to the JSON object `text`.
fn compat_encrypt(text: &str, timestamp: &str) -> String {
    let token = COMPAT.fernet.encrypt(text.as_bytes());
    json!({"encrypted": true, "encrypted_payload": STANDARD.encode(token), "timestamp": timestamp, "encryption_method": "fernet"})
        .to_string()
}

const LEGACY: &str = r#"{"message_id": "legacy-1", "message_type": "task.assign", "recipient": "summarizer",
    "content": {"z": 1, "a": ["\u00e9\u00e8 caf\u00e9 \ud83d\ude00", 1.5e-07, 10.0]}, "priority": 2,
    "from_agent": "legacy", "correlation_id": "c-1", "metadata": {"y": 1, "b": 2},
    "timestamp": "2026-11-24T09:59:58.123456"}"#;

fn legacy_message() -> Message {
    Message {
        id: "legacy-1".into(),
        kind: "task.assign".into(),
        to: Recipient::Agent("summarizer".into()),
        payload: json!({"z": 1, "a": ["éè café 😀", 1.5e-7, 10.0]}),
        priority: Priority::new(2).unwrap(),
        group: "c-1".into(),
        idempotency_key: "legacy-1".into(),
        metadata: json!({"y": 1, "b": 2}).as_object().unwrap().clone(),
        sender: Some("legacy".into()),
        created_at: "2026-11-24T09:59:58.123456Z".parse().unwrap(),
    }
}

#[test]
fn compat_messages_open_signed_encrypted_or_both() {
    let signed = compat_sign(LEGACY);
    let sign_then_encrypt = compat_encrypt(&signed, "2026-11-24T09:59:59");
    let encrypt_then_sign = compat_sign(&compat_encrypt(LEGACY, "2026-11-24T09:59:59"));
    let both = compat_sign(&compat_encrypt(&signed, "2026-11-24T09:59:59"));
    for body in [&signed, &sign_then_encrypt, &encrypt_then_sign, &both] {
        let opened = compat_opener().open(body, now()).unwrap();
        assert_eq!(opened, Opened { message: legacy_message(), format: Format::Compat, kid: None }, "{body}");
    }
    // Only the outer object is signed and dated: its timestamp is the creation time.
    let unsigned_inner = LEGACY.replace("\"timestamp\": \"2026-11-24T09:59:58.123456\"", "\"x\": 0");
    let opened =
        compat_opener().open(&compat_sign(&compat_encrypt(&unsigned_inner, "2026-11-24T09:59:59")), now());
    assert_eq!(opened.unwrap().message.created_at, "2026-11-24T09:59:59Z".parse().unwrap());
}

#[test]
fn compat_defaults_fill_what_is_missing() {
    let text = r#"{"type": "ping", "capability": "summarize", "timestamp": "2026-11-24T10:00:00"}"#;
    let body = compat_sign(text);
    let message = compat_opener().open(&body, now()).unwrap().message;
    let id = hex::encode(Sha256::digest(body.as_bytes()));
    assert_eq!(message.id, id);
    assert_eq!(message.idempotency_key, id);
    assert_eq!(message.to, Recipient::Capability("summarize".into()));
    assert_eq!(message.group, "capability:summarize");
    assert_eq!((message.priority, message.payload, message.sender), (Priority::DEFAULT, json!({}), None));
    assert!(message.metadata.is_empty());
}

#[test]
fn compat_signatures_cover_nested_members_in_their_order() {
    // Reordering a nested object changes what Python signed; reordering top-level members
    // does not (they are sorted).
    let signed = compat_sign(LEGACY);
    let nested = signed.replace(r#"{"y": 1, "b": 2}"#, r#"{"b": 2, "y": 1}"#);
    assert_eq!(compat_opener().open(&nested, now()), Err(Rejection::SignatureInvalid));
    let top = signed.replacen(r#""message_id": "legacy-1", "#, "", 1).replacen(
        '{',
        r#"{"message_id": "legacy-1", "#,
        1,
    );
    assert!(compat_opener().open(&top, now()).is_ok());
}

#[test]
fn compat_messages_are_refused_for_the_same_reasons() {
    let open = |body: &str| compat_opener().open(body, now());
    let signed = compat_sign(LEGACY);
    assert_eq!(open(LEGACY), Err(Rejection::SignatureMissing));
    assert_eq!(open(&compat_encrypt(LEGACY, "2026-11-24T09:59:59")), Err(Rejection::SignatureMissing));
    assert_eq!(open(&signed.replace("legacy-1", "legacy-2")), Err(Rejection::SignatureInvalid));
    // The outer signature is good, the inner one is not.
    let bad_inner = signed.replace("\"from_agent\": \"legacy\"", "\"from_agent\": \"other\"");
    assert_eq!(
        open(&compat_sign(&compat_encrypt(&bad_inner, "2026-11-24T09:59:59"))),
        Err(Rejection::SignatureInvalid)
    );
    assert_eq!(
        open(&compat_sign(&LEGACY.replace("2026-11-24T09:59:58.123456", "2026-11-24T09:50:00"))),
        Err(Rejection::Stale { age_seconds: 600, limit_seconds: 300 })
    );
    assert_eq!(
        open(&compat_sign(&LEGACY.replace("2026-11-24T09:59:58.123456", "2026-11-24T10:01:00"))),
        Err(Rejection::FromTheFuture { ahead_seconds: 60 })
    );
    // A stale outer timestamp, though the inner one is fresh.
    assert!(matches!(open(&compat_encrypt(&signed, "2026-11-24T09:00:00")), Err(Rejection::Stale { .. })));
    let undated = compat_sign(&LEGACY.replace("\"timestamp\"", "\"time\""));
    assert!(matches!(open(&undated), Err(Rejection::Malformed(detail)) if detail.contains("timestamp")));
    let garbage =
        r#"{"encrypted": true, "encrypted_payload": "Z2FyYmFnZQ==", "timestamp": "2026-11-24T10:00:00"}"#;
    assert_eq!(open(&compat_sign(garbage)), Err(Rejection::Undecryptable));
    assert_eq!(
        open(&compat_sign(&compat_encrypt("[1]", "2026-11-24T10:00:00"))),
        Err(Rejection::Undecryptable)
    );
    for (from, to) in [
        ("\"priority\": 2", "\"priority\": 11"),
        ("\"message_type\"", "\"kind\""),
        ("\"recipient\"", "\"r\""),
    ] {
        assert!(
            matches!(open(&compat_sign(&LEGACY.replace(from, to))), Err(Rejection::Malformed(_))),
            "{to}"
        );
    }
    // Without compatibility keys, no such message is even considered.
    assert_eq!(
        opener(keyring()).open(&signed, now()),
        Err(Rejection::Malformed("not a T-Developer envelope (compatibility mode is off)".into()))
    );
}
