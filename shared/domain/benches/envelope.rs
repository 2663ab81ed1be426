//! Sealing and opening a message of about 1 KB: seal (sign + encrypt), open (verify +
//! decrypt), verify only (a plain envelope), and opening an existing producer's message
//! (compatibility mode: signed, encrypted, and signed again outside).
//!
//! Run: `cargo bench -p tdev-domain --bench envelope`. Not part of CI.

use std::hint::black_box;

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::Mac as _;
use jiff::Timestamp;
use serde_json::json;
use tdev_domain::messaging::envelope::{
    CompatKeys, DEFAULT_FRESHNESS, EnvelopeKey, Keyring, Opener, canonical, seal,
};
use tdev_domain::messaging::{Message, Recipient};
use tdev_domain::queue::Priority;

const PASSPHRASE: &str = "old passphrase";
const SIGNING_KEY: &str = "old signing key";

fn message(created_at: Timestamp) -> Message {
    let words = "Summarize the quarterly report for the operations team; keep it under two hundred words. ";
    Message {
        id: "0193a3b8-7c1e-7d2a-9f10-3c5e8b2a4d61".into(),
        kind: "task.assign".into(),
        to: Recipient::Agent("summarizer".into()),
        payload: json!({
            "instructions": words.repeat(9),
            "document": {"title": "Q3 — résumé", "pages": 12, "score": 0.875, "tags": ["ops", "finance", "q3"]},
            "options": {"max_words": 200, "temperature": 0.2, "language": "en", "format": "markdown"},
        }),
        priority: Priority::new(3).unwrap(),
        group: "agent:summarizer".into(),
        idempotency_key: "report-q3-summary".into(),
        metadata: json!({"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "attempt": 1})
            .as_object()
            .unwrap()
            .clone(),
        sender: Some("key:ops-dashboard".into()),
        created_at,
    }
}

/// An existing producer's message, as its `sign_message` and `encrypt_message` make it.
fn compat_body(text: &str, timestamp: &str) -> String {
    let sign = |text: &str| {
        let items = canonical::python_sorted_items(text).unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SIGNING_KEY.as_bytes()).unwrap();
        mac.update(items.as_bytes());
        let signature = hex::encode(mac.finalize().into_bytes());
        format!("{}, \"signature\": \"{signature}\"}}", text.strip_suffix('}').unwrap())
    };
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(PASSPHRASE.as_bytes(), b"T-Developer-Salt", 100_000, &mut key);
    let fernet = fernet::Fernet::new(&base64::engine::general_purpose::URL_SAFE.encode(key)).unwrap();
    let token = fernet.encrypt(sign(text).as_bytes());
    let outer = json!({
        "encrypted": true,
        "encrypted_payload": base64::engine::general_purpose::STANDARD.encode(token),
        "timestamp": timestamp,
        "encryption_method": "fernet",
    });
    sign(&outer.to_string())
}

fn envelope(c: &mut Criterion) {
    let now = Timestamp::now();
    let message = message(now);
    let keys = Keyring::new(EnvelopeKey::new("k1", "a long random secret"), vec![]);
    let opener = Opener {
        keys: keys.clone(),
        compat: Some(CompatKeys::new(PASSPHRASE, SIGNING_KEY)),
        freshness: DEFAULT_FRESHNESS,
    };
    let plain = seal(&message, &keys, false);
    let encrypted = seal(&message, &keys, true);
    let naive_now = now.to_zoned(jiff::tz::TimeZone::UTC).datetime().to_string();
    let legacy = json!({
        "message_id": message.id, "message_type": message.kind, "recipient": "summarizer",
        "content": message.payload, "priority": 3, "timestamp": naive_now,
    });
    let compat = compat_body(&serde_json::to_string(&legacy).unwrap(), &naive_now);
    eprintln!(
        "payload {} B canonical; bodies: plain {} B, encrypted {} B, compat {} B",
        canonical::to_canonical(&message.payload).len(),
        plain.len(),
        encrypted.len(),
        compat.len()
    );
    assert_eq!(opener.open(&encrypted, now).unwrap().message, message);
    assert_eq!(opener.open(&compat, now).unwrap().message.payload, message.payload);

    c.bench_function("seal (sign + encrypt)", |b| b.iter(|| seal(black_box(&message), &keys, true)));
    c.bench_function("seal plain (sign)", |b| b.iter(|| seal(black_box(&message), &keys, false)));
    c.bench_function("open (verify + decrypt)", |b| {
        b.iter(|| opener.open(black_box(&encrypted), now).unwrap())
    });
    c.bench_function("open plain (verify only)", |b| b.iter(|| opener.open(black_box(&plain), now).unwrap()));
    c.bench_function("open compat (verify + decrypt + verify)", |b| {
        b.iter(|| opener.open(black_box(&compat), now).unwrap())
    });
}

criterion_group!(benches, envelope);
criterion_main!(benches);
