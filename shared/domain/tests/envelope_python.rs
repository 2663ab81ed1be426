//! Interoperability of the envelope with Python producers (`tests/python/producer.py`):
//! bodies the Python side builds (envelopes, plain and encrypted, and the existing
//! producers' compatibility messages) open here, bodies sealed here verify there, and both
//! sides write the same canonical JSON (and compatibility signing text) for the same input.
//!
//! Needs `TDEV_TEST_PYTHON`, a Python 3 with `cryptography`:
//! `TDEV_TEST_PYTHON=/work/main/.venv/bin/python cargo test -p tdev-domain --test envelope_python`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::LazyLock;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tdev_domain::messaging::envelope::{
    CompatKeys, DEFAULT_FRESHNESS, EnvelopeKey, Format, Keyring, Opened, Opener, canonical, seal,
};
use tdev_domain::messaging::{Message, Recipient};
use tdev_domain::queue::Priority;

const SECRET: &str = "envelope secret ✓";
const KID: &str = "v-2026-11";
const PASSPHRASE: &str = "old passphrase";
const SIGNING_KEY: &str = "old signing key";

fn python() -> String {
    std::env::var("TDEV_TEST_PYTHON").ok().filter(|python| !python.is_empty()).unwrap_or_else(|| {
        panic!(
            "TDEV_TEST_PYTHON is not set: set it to a Python 3 with the `cryptography` package \
             (e.g. TDEV_TEST_PYTHON=/work/main/.venv/bin/python); this test does not skip"
        )
    })
}

fn producer(args: &[&str], stdin: &str) -> Output {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/producer.py");
    let mut child = Command::new(python())
        .arg(&script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} {}: {e}", python(), script.display()));
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_owned();
    let writer = std::thread::spawn(move || input.write_all(stdin.as_bytes()));
    let output = child.wait_with_output().unwrap();
    // A producer that exits early breaks the pipe: its exit status and stderr tell why.
    let _ = writer.join().unwrap();
    output
}

/// Runs the producer; its stdout's lines.
fn lines(args: &[&str], stdin: &str) -> Vec<String> {
    let output = producer(args, stdin);
    assert!(
        output.status.success(),
        "producer.py {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect()
}

/// The producer's default payload, as a message holds it (`10**20` becomes a float).
fn default_payload() -> Value {
    json!({
        "text": "Résumé: naïve café — 東京 😀 \"quoted\" \\ tab\t nl\n del\u{7f} ctl\u{1}",
        "nested": {"zeta": {"y": 1, "b": [true, false, null]}, "alpha": [1.5, 2.5e-07, 1e16, -0.0, 0.1, 1e-05]},
        "count": 3,
        "ratio": 0.30000000000000004,
        "big": 1e20,
        "négatif": -42,
    })
}

static COMPAT: LazyLock<CompatKeys> = LazyLock::new(|| CompatKeys::new(PASSPHRASE, SIGNING_KEY));

fn opener() -> Opener {
    Opener {
        keys: Keyring::new(EnvelopeKey::new(KID, SECRET), vec![EnvelopeKey::new("old", "old secret")]),
        compat: Some(COMPAT.clone()),
        freshness: DEFAULT_FRESHNESS,
    }
}

fn open(body: &str) -> Opened {
    opener().open(body, Timestamp::now()).unwrap_or_else(|e| panic!("{e} ({}): {body}", e.code()))
}

fn assert_recent(created_at: Timestamp) {
    let age = Timestamp::now().duration_since(created_at);
    assert!(age >= SignedDuration::ZERO && age < SignedDuration::from_secs(60), "{created_at}");
}

#[test]
fn python_envelopes_open() {
    for encrypt in [false, true] {
        let mut args = vec!["--format", "envelope", "--secret", SECRET, "--kid", KID, "--count", "3"];
        args.extend(["--type", "report.ready", "--priority", "2", "--capability", "summarize"]);
        if encrypt {
            args.push("--encrypt");
        }
        let bodies = lines(&args, "");
        assert_eq!(bodies.len(), 3);
        for (index, body) in bodies.iter().enumerate() {
            assert_eq!(body.contains("ciphertext"), encrypt);
            let Opened { message, format, kid } = open(body);
            assert_eq!((format, kid.as_deref()), (Format::Envelope, Some(KID)));
            assert_eq!(message.kind, "report.ready");
            assert_eq!(message.to, Recipient::Capability("summarize".into()));
            assert_eq!(message.priority, Priority::new(2).unwrap());
            assert_eq!(message.group, "capability:summarize");
            assert_eq!(message.idempotency_key, format!("{}-key", message.id));
            assert_eq!(message.sender.as_deref(), Some("python-producer"));
            assert_eq!(
                Value::Object(message.metadata),
                json!({"trace": format!("trace-{index}"), "attempt": index, "source": "producer.py"})
            );
            assert_eq!(message.payload, default_payload());
            assert_recent(message.created_at);
        }
    }
    let custom = lines(
        &[
            "--secret",
            SECRET,
            "--kid",
            KID,
            "--to-agent",
            "writer",
            "--group",
            "g-1",
            "--payload",
            r#"[1, "ü"]"#,
        ],
        "",
    );
    let message = open(&custom[0]).message;
    assert_eq!((message.to, message.group.as_str()), (Recipient::Agent("writer".into()), "g-1"));
    assert_eq!(message.payload, json!([1, "ü"]));
}

#[test]
fn python_compat_messages_open() {
    let cases: [&[&str]; 4] = [
        &[],
        &["--encrypt", "--compat-order", "sign-then-encrypt"],
        &["--encrypt", "--compat-order", "encrypt-then-sign"],
        &["--encrypt", "--compat-order", "both"],
    ];
    for extra in cases {
        let mut args = vec!["--format", "compat", "--passphrase", PASSPHRASE, "--signing-key", SIGNING_KEY];
        args.extend(["--type", "task.assign", "--priority", "7", "--group", "corr-9", "--count", "2"]);
        args.extend(extra);
        for (index, body) in lines(&args, "").iter().enumerate() {
            assert_eq!(body.contains("encrypted_payload"), !extra.is_empty());
            let Opened { message, format, kid } = open(body);
            assert_eq!((format, kid), (Format::Compat, None), "{extra:?}");
            assert_eq!(message.id.len(), 36, "the producer's uuid: {}", message.id);
            assert_eq!(message.idempotency_key, message.id);
            assert_eq!(message.kind, "task.assign");
            assert_eq!(message.to, Recipient::Agent("summarizer".into()));
            assert_eq!(message.priority, Priority::new(7).unwrap());
            assert_eq!(message.group, "corr-9");
            assert_eq!(message.sender.as_deref(), Some("legacy-producer"));
            assert_eq!(
                Value::Object(message.metadata),
                json!({"trace": format!("trace-{index}"), "attempt": index})
            );
            assert_eq!(message.payload, default_payload());
            assert_recent(message.created_at);
        }
    }
    // Tampered in transit: refused.
    let body =
        &lines(&["--format", "compat", "--passphrase", PASSPHRASE, "--signing-key", SIGNING_KEY], "")[0];
    let tampered = body.replace("\"priority\": 5", "\"priority\": 1");
    assert_ne!(&tampered, body);
    assert_eq!(opener().open(&tampered, Timestamp::now()).unwrap_err().code(), "signature_invalid");
}

fn rust_messages() -> Vec<Message> {
    let base = Message {
        id: "m-1".into(),
        kind: "task.assign".into(),
        to: Recipient::Agent("summarizer".into()),
        payload: default_payload(),
        priority: Priority::new(4).unwrap(),
        group: "agent:summarizer".into(),
        idempotency_key: "k-1".into(),
        metadata: json!({"z": "last", "a": ["first", 1.25e-300]}).as_object().unwrap().clone(),
        sender: Some("key:ops".into()),
        created_at: Timestamp::now() - SignedDuration::from_millis(1500),
    };
    vec![
        base.clone(),
        Message {
            to: Recipient::Capability("summarize".into()),
            payload: json!({"max": u64::MAX, "min": i64::MIN, "e": "\u{1F600}\u{0}\u{1f}\u{2028}/", "f": [1e-5, 1e15, 123456789.125]}),
            sender: None,
            ..base.clone()
        },
        Message { payload: json!(null), metadata: serde_json::Map::new(), ..base },
    ]
}

fn expected_in_python(message: &Message) -> String {
    let (to_agent, capability) = match &message.to {
        Recipient::Agent(agent) => (json!(agent), Value::Null),
        Recipient::Capability(capability) => (Value::Null, json!(capability)),
    };
    canonical::to_canonical(&json!({
        "id": message.id, "type": message.kind, "to_agent": to_agent, "capability": capability,
        "priority": message.priority.level(), "group": message.group, "idempotency_key": message.idempotency_key,
        "metadata": message.metadata, "sender": message.sender, "created_at": message.created_at.to_string(),
        "payload": message.payload,
    }))
}

#[test]
fn rust_envelopes_verify_in_python() {
    let keys = Keyring::new(EnvelopeKey::new(KID, SECRET), vec![]);
    let messages = rust_messages();
    for encrypt in [false, true] {
        let bodies: Vec<String> = messages.iter().map(|m| seal(m, &keys, encrypt)).collect();
        let opened = lines(&["--verify", "--secret", SECRET, "--kid", KID], &(bodies.join("\n") + "\n"));
        let expected: Vec<String> = messages.iter().map(expected_in_python).collect();
        assert_eq!(opened, expected, "encrypt: {encrypt}");
    }
    // The Python side does check: a tampered body, or another key, fails there.
    let body = seal(&messages[0], &keys, true);
    let tampered = body.replace("\"priority\":4", "\"priority\":3");
    assert_ne!(tampered, body);
    for (args, body) in [
        (["--verify", "--secret", SECRET, "--kid", KID], &tampered),
        (["--verify", "--secret", "another", "--kid", KID], &body),
    ] {
        let output = producer(&args, &format!("{body}\n"));
        assert!(!output.status.success(), "Python accepted {body}");
    }
}

/// xorshift64*: reproducible inputs without a dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn char(&mut self) -> char {
        let code = match self.below(8) {
            0 => self.below(0x20) as u32,
            1 => 0x7f,
            2 => 0x80 + self.below(0x780) as u32,
            3 => 0x3000 + self.below(0x7000) as u32,
            4 => 0x1F300 + self.below(0x300) as u32,
            5 => self.below(0x110000) as u32,
            _ => 0x20 + self.below(0x5f) as u32,
        };
        char::from_u32(code).unwrap_or('\u{FFFD}')
    }

    fn string(&mut self) -> String {
        let len = self.below(8);
        (0..len).map(|_| self.char()).collect()
    }

    /// A JSON number written in one of the many ways JSON allows.
    fn number(&mut self) -> String {
        let float = loop {
            let f = match self.below(3) {
                0 => f64::from_bits(self.next()),
                1 => (self.next() as i64 as f64) / 10f64.powi(self.below(30) as i32),
                _ => (self.below(2_000_000) as f64 - 1e6) / 8.0,
            };
            if f.is_finite() {
                break f;
            }
        };
        match self.below(8) {
            0 => (self.next() as i64).to_string(),
            1 => self.next().to_string(),
            2 => format!("{}{}", self.below(10).max(1), "7".repeat(self.below(30) as usize)),
            3 => "-0".into(),
            4 => format!("{float:e}").replace('e', if self.below(2) == 0 { "E" } else { "e" }),
            // Every digit of the exact decimal: tests correctly rounded reading.
            5 => {
                let exact = format!("{float}");
                if exact.contains('.') { exact } else { exact + ".0" }
            }
            _ => format!("{float:?}"),
        }
    }

    fn value(&mut self, depth: u32) -> String {
        match self.below(if depth >= 3 { 5 } else { 7 }) {
            0 => ["null", "true", "false"][self.below(3) as usize].into(),
            1 | 2 => self.number(),
            3 | 4 => serde_json::to_string(&self.string()).unwrap(),
            5 => {
                let items: Vec<String> = (0..self.below(5)).map(|_| self.value(depth + 1)).collect();
                format!("[{}]", items.join(","))
            }
            _ => self.object(depth + 1),
        }
    }

    /// An object with unique keys in no particular order, with random spacing.
    fn object(&mut self, depth: u32) -> String {
        let mut keys: Vec<String> = Vec::new();
        for _ in 0..self.below(6) {
            let key = self.string();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        let members: Vec<String> = keys
            .iter()
            .map(|key| {
                let space = if self.below(2) == 0 { " " } else { "" };
                format!("{}:{space}{}", serde_json::to_string(key).unwrap(), self.value(depth))
            })
            .collect();
        format!("{{{}}}", members.join(", "))
    }
}

#[test]
fn canonical_json_and_compat_text_match_python() {
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    let texts: Vec<String> = (0..3000).map(|_| random.object(0)).collect();
    let input = texts.join("\n") + "\n";
    for (flag, ours) in [
        ("--canonical", canonical::canonicalize as fn(&str) -> Result<String, canonical::SyntaxError>),
        ("--compat-text", canonical::python_sorted_items),
    ] {
        let python = lines(&[flag], &input);
        assert_eq!(python.len(), texts.len());
        for (text, python) in texts.iter().zip(&python) {
            assert_eq!(&ours(text).unwrap(), python, "{flag} of {text}");
        }
    }
    // Every float through Python's repr.
    let floats: Vec<String> = (0..20_000)
        .map(|_| f64::from_bits(random.next()))
        .filter(|f| f.is_finite())
        .map(|f| format!("[{f:e}]"))
        .collect();
    let python = lines(&["--canonical"], &(floats.join("\n") + "\n"));
    for (text, python) in floats.iter().zip(&python) {
        assert_eq!(&canonical::canonicalize(text).unwrap(), python, "{text}");
    }
}
