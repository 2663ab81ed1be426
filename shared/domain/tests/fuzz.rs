//! Fuzz tests of every parser and evaluator that takes caller input: workflow documents
//! (JSON and YAML), CEL conditions, deploy specs and message envelopes. Each gets random
//! documents built from its own vocabulary, documents with nesting far past every bound,
//! and valid documents with random bytes changed. Whatever comes in, the answer is a
//! value or an error — never a panic, an abort or a stall past the case's time budget.
//!
//! In CI each target runs [`CI_CASES`] cases. A soak run sets `TDEV_FUZZ_LONG=1`
//! (200,000 cases a target, over 1,000,000 in all) or `TDEV_FUZZ_CASES=N`:
//!
//! ```text
//! TDEV_FUZZ_LONG=1 cargo test --release -p tdev-domain --test fuzz
//! ```

use std::time::{Duration, Instant};

use jiff::Timestamp;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};
use tdev_domain::deploy::{SpecLimits, Submitted};
use tdev_domain::messaging::envelope::{CompatKeys, DEFAULT_FRESHNESS, EnvelopeKey, Keyring, Opener, seal};
use tdev_domain::messaging::{Message, Recipient};
use tdev_domain::queue::Priority;
use tdev_domain::workflow::{Format, Limits, condition, validate};

const CI_CASES: u32 = 300;
const LONG_CASES: u32 = 200_000;
/// The most one case may take, in a debug build on a loaded machine: far above what any
/// bounded input needs, far below a stall.
const BUDGET: Duration = Duration::from_secs(2);

fn cases() -> u32 {
    if let Some(n) = std::env::var("TDEV_FUZZ_CASES").ok().and_then(|n| n.parse().ok()) {
        return n;
    }
    if std::env::var("TDEV_FUZZ_LONG").is_ok_and(|v| v == "1") { LONG_CASES } else { CI_CASES }
}

/// Runs `check` on `cases()` inputs from `strategy`, each within [`BUDGET`]; nothing is
/// written into the repository (no regression files).
fn fuzz<S: Strategy>(name: &str, strategy: S, check: impl Fn(S::Value)) {
    let config = Config { cases: cases(), failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let started = Instant::now();
    runner
        .run(&strategy, |input| {
            let at = Instant::now();
            check(input);
            let took = at.elapsed();
            prop_assert!(took < BUDGET, "{name}: one case took {took:?}");
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    eprintln!("fuzz {name}: {} cases in {:?}", cases(), started.elapsed());
}

// ---------------------------------------------------------------------------------------
// Generators

const WORKFLOW_WORDS: &[&str] = &[
    "id",
    "name",
    "version",
    "steps",
    "type",
    "agent",
    "service",
    "condition",
    "loop",
    "parallel",
    "sequential",
    "agent_id",
    "parameters",
    "expression",
    "when_true",
    "when_false",
    "over",
    "max_concurrency",
    "inputs",
    "outputs",
    "dependencies",
    "retry_policy",
    "max_attempts",
    "timeout",
    "target",
    "kind",
    "http",
    "url",
    "error_handling",
    "stop",
    "continue",
    "defaults",
    "a",
    "b",
    "c",
    "<<",
    "metadata",
    "estimate",
];

const SPEC_WORDS: &[&str] = &[
    "name",
    "target",
    "bedrock-agent",
    "agentcore-runtime",
    "bedrock_agent",
    "agentcore_runtime",
    "local",
    "instruction",
    "foundation_model",
    "action_groups",
    "functions",
    "api_schema",
    "inline",
    "s3",
    "bucket",
    "key",
    "knowledge_bases",
    "collaboration",
    "supervisor",
    "collaborators",
    "agent_alias_arn",
    "idle_session_ttl",
    "artifact",
    "protocol",
    "environment",
    "network",
    "smoke_test",
    "register",
    "tags",
    "openapi",
    "paths",
    "3.0.0",
    "agent_resource_role_arn",
    "url",
    "parameters",
];

fn word(words: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(words).prop_map(str::to_owned),
        1 => "[a-z_\\-]{0,8}",
        1 => any::<String>().prop_map(|s| s.chars().take(12).collect()),
    ]
}

fn json_value(words: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        word(words).prop_map(Value::String),
        "[-+*/()\\[\\]a-z0-9 .&|!<>=?:']{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 256, 10, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..10).prop_map(Value::Array),
            prop::collection::vec((word(words), inner), 0..10)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A workflow that validates, to mutate.
fn valid_workflow() -> Value {
    json!({"id": "wf", "name": "wf", "steps": [
        {"id": "a", "name": "a", "type": "agent", "agent_id": "x", "outputs": ["d"]},
        {"id": "c", "name": "c", "type": "condition", "inputs": ["d"],
         "parameters": {"expression": "inputs.d.size() > 1 && inputs.d[0] == 'x'", "when_true": ["l"]}},
        {"id": "l", "name": "l", "type": "loop", "inputs": ["d"], "outputs": ["r"], "dependencies": ["c"],
         "parameters": {"over": "d", "agent_id": "x", "max_concurrency": 2}},
        {"id": "g", "name": "g", "type": "parallel", "parameters": {"steps": ["a", "l"]}}
    ]})
}

/// `text` with random edits: bytes deleted, repeated or replaced by structural ones.
fn mutated(text: String) -> impl Strategy<Value = String> {
    let len = text.len().max(1);
    let edit = (0..len, 0u8..4, proptest::sample::select(&b"[]{}:,-&*!|>'\"#\n ()+.\\"[..]), 1usize..200);
    prop::collection::vec(edit, 1..8).prop_map(move |edits| {
        let mut bytes = text.clone().into_bytes();
        for (at, how, byte, count) in edits {
            let at = at.min(bytes.len());
            match how {
                0 if at < bytes.len() => {
                    bytes.remove(at);
                }
                1 => bytes.splice(at..at, std::iter::repeat_n(byte, count)).for_each(drop),
                2 if at < bytes.len() => bytes[at] = byte,
                _ => bytes.splice(at..at, std::iter::repeat_n(byte, 1)).for_each(drop),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Text nested far past every bound, in one of several spellings.
fn deeply_nested() -> impl Strategy<Value = String> {
    (proptest::sample::select(&["[", "{a: ", "{\"a\":", "- ", "(", "!", "-", "a.", "1+"][..]), 1usize..20_000)
        .prop_map(|(open, n)| open.repeat(n))
}

fn cel_text() -> impl Strategy<Value = String> {
    let token = proptest::sample::select(
        &[
            "inputs",
            ".",
            "a",
            "b",
            "size()",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            "1",
            "2.5",
            "'s'",
            "\"t\"",
            "true",
            "null",
            "+",
            "-",
            "*",
            "/",
            "%",
            "==",
            "!=",
            "<",
            ">=",
            "&&",
            "||",
            "!",
            "?",
            ":",
            ",",
            " in ",
            ".map(x, ",
            ".filter(x, ",
            ".all(x, ",
            ".exists(x, ",
            "x",
            "has(",
            "int(",
            "string(",
            "matches(",
            "'a+'",
            "r'\\d'",
            "b'z'",
            "//c\n",
            "'''x'''",
            "\\",
        ][..],
    );
    prop_oneof![
        4 => prop::collection::vec(token, 0..80).prop_map(|t| t.concat()),
        1 => "[ -~]{0,300}",
        1 => deeply_nested(),
    ]
}

// ---------------------------------------------------------------------------------------
// Targets

#[test]
fn workflow_documents_in_json() {
    let limits = Limits::default();
    let text = prop_oneof![
        3 => json_value(WORKFLOW_WORDS).prop_map(|v| v.to_string()),
        2 => mutated(valid_workflow().to_string()),
        1 => deeply_nested(),
    ];
    fuzz("workflow JSON", text, |text| {
        let _ = validate(&text, Format::Json, &limits);
    });
}

#[test]
fn workflow_documents_in_yaml() {
    let limits = Limits::default();
    let valid_yaml = yaml_serde::to_string(&valid_workflow()).unwrap();
    let text = prop_oneof![
        3 => json_value(WORKFLOW_WORDS).prop_map(|v| yaml_serde::to_string(&v).unwrap_or_default()),
        3 => mutated(valid_yaml),
        1 => deeply_nested(),
        1 => "([a-z]{1,3}: &[a-z] |\\*[a-z]|[\\[\\]{},:\\- \n'\"!|>#]|<<: ){0,60}".prop_map(|s| s),
    ];
    fuzz("workflow YAML", text, |text| {
        let _ = validate(&text, Format::Yaml, &limits);
    });
}

#[test]
fn cel_conditions_compile_and_evaluate() {
    let inputs = prop_oneof![
        Just(json!({"d": ["x", "y"], "a": 1, "b": {"c": [1, 2, 3]}})),
        json_value(WORKFLOW_WORDS),
    ];
    fuzz("CEL", (cel_text(), inputs), |(text, inputs)| {
        let inputs = match inputs {
            Value::Object(map) => map,
            other => Map::from_iter([("d".to_owned(), other)]),
        };
        if condition::compile(&text).is_ok() {
            let _ = condition::evaluate(&text, &inputs);
        }
    });
}

fn valid_spec() -> Value {
    json!({
        "name": "support-bot", "target": "bedrock-agent", "foundation_model": "anthropic.claude-3-haiku",
        "instruction": "Answer support questions politely and briefly, citing the knowledge base.",
        "agent_resource_role_arn": "arn:aws:iam::123456789012:role/agent",
        "action_groups": [{"name": "tickets", "api_schema": {"inline": "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths: {/t: {get: {responses: {'200': {description: ok}}}}}"}}],
        "smoke_test": {"prompt": "hi", "expect": "h.*"}
    })
}

#[test]
fn deploy_specs() {
    let limits = SpecLimits::default();
    let text = prop_oneof![
        2 => json_value(SPEC_WORDS).prop_map(|v| v.to_string()),
        2 => json_value(SPEC_WORDS).prop_map(|v| yaml_serde::to_string(&v).unwrap_or_default()),
        3 => mutated(valid_spec().to_string()),
        2 => mutated(yaml_serde::to_string(&valid_spec()).unwrap()),
        1 => deeply_nested(),
    ];
    fuzz("deploy spec", text, |text| {
        for format in [Format::Json, Format::Yaml] {
            if let Ok(submitted) = Submitted::parse_as(&text, format) {
                let _ = submitted.spec(&limits);
            }
        }
        if let Ok(submitted) = Submitted::parse(&text) {
            let _ = submitted.spec(&limits);
        }
    });
}

fn message(now: Timestamp) -> Message {
    Message {
        id: "0193a3b8-7c1e-7d2a-9f10-3c5e8b2a4d61".into(),
        kind: "task.assign".into(),
        to: Recipient::Agent("summarizer".into()),
        payload: json!({"text": "résumé", "n": [1, 2.5, null], "nested": {"a": {"b": true}}}),
        priority: Priority::new(3).unwrap(),
        group: "agent:summarizer".into(),
        idempotency_key: "k-1".into(),
        metadata: Map::new(),
        sender: Some("key:ops".into()),
        created_at: now,
    }
}

#[test]
fn message_envelopes() {
    let now = Timestamp::now();
    let keys = Keyring::new(EnvelopeKey::new("k1", "a long random secret"), vec![]);
    let opener = Opener {
        keys: keys.clone(),
        compat: Some(CompatKeys::new("old passphrase", "old signing key")),
        freshness: DEFAULT_FRESHNESS,
    };
    let plain = seal(&message(now), &keys, false);
    let encrypted = seal(&message(now), &keys, true);
    let legacy = json!({"message_id": "m", "message_type": "t", "recipient": "r", "content": {"a": 1},
        "priority": 3, "timestamp": "2026-01-01T00:00:00", "signature": "00", "encrypted": true,
        "encrypted_payload": "Zm9v"});
    let body = prop_oneof![
        3 => mutated(plain),
        3 => mutated(encrypted),
        2 => mutated(legacy.to_string()),
        2 => json_value(&["v", "kid", "sig", "enc", "payload", "id", "type", "to_agent", "priority", "group",
            "signature", "encrypted", "encrypted_payload", "timestamp", "content", "recipient"])
            .prop_map(|v| v.to_string()),
        1 => deeply_nested(),
    ];
    fuzz("envelope", body, |body| {
        let _ = opener.open(&body, now);
    });
}
