//! Fuzz tests of what the HTTP layer parses from callers before any handler runs: query
//! strings (every listing's filters) and JSON bodies (the strict reader, which refuses a
//! struct written as a list). Whatever comes in, the answer is a value or a problem —
//! never a panic or a stall.
//!
//! `TDEV_FUZZ_CASES=N` or `TDEV_FUZZ_LONG=1` (200,000 cases a target) for a soak run:
//! `TDEV_FUZZ_LONG=1 cargo test --release -p tdev-http --test fuzz`.

use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde::Deserialize;
use tdev_http::ApiQuery;

const BUDGET: Duration = Duration::from_secs(2);

fn cases() -> u32 {
    if let Some(n) = std::env::var("TDEV_FUZZ_CASES").ok().and_then(|n| n.parse().ok()) {
        return n;
    }
    if std::env::var("TDEV_FUZZ_LONG").is_ok_and(|v| v == "1") { 200_000 } else { 300 }
}

fn fuzz<S: Strategy>(name: &str, strategy: S, check: impl Fn(S::Value)) {
    let config = Config { cases: cases(), failure_persistence: None, ..Config::default() };
    let started = Instant::now();
    TestRunner::new(config)
        .run(&strategy, |input| {
            let at = Instant::now();
            check(input);
            prop_assert!(at.elapsed() < BUDGET, "{name}: one case took {:?}", at.elapsed());
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    eprintln!("fuzz {name}: {} cases in {:?}", cases(), started.elapsed());
}

/// The shape of the listings' filters (runs, events, dead letters, deployments).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Filters {
    status: Option<String>,
    agent: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    since: Option<jiff::Timestamp>,
    until: Option<jiff::Timestamp>,
    limit: Option<u32>,
    priority: Option<u8>,
}

#[test]
fn query_strings() {
    let name = proptest::sample::select(
        &["status", "agent", "type", "since", "until", "limit", "priority", "x", ""][..],
    );
    let value = prop_oneof![
        "[a-z0-9*._:-]{0,12}",
        "[0-9]{1,25}",
        "-?[0-9]{1,5}",
        "2026-0[0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](Z|\\+0[0-9]:00)?",
        "(%[0-9A-Fa-f]{2}|%|\\+|&|=|[^&=#]){0,30}",
    ];
    let query = prop::collection::vec((name, value), 0..12)
        .prop_map(|pairs| pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"));
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    fuzz("query string", query, |query| {
        let Ok(request) = axum::http::Request::builder().uri(format!("/v1/runs?{query}")).body(()) else {
            return;
        };
        let (mut parts, ()) = request.into_parts();
        let answer = runtime.block_on(ApiQuery::<Filters>::from_request_parts(&mut parts, &()));
        if let Err(error) = answer {
            let problem = error.problem();
            assert_eq!(problem.status, 422, "{query}: {problem:?}");
            assert_eq!(problem.errors[0].path, "$.query");
        }
    });
}

/// A real request body: the shape check and the typed read both run on what is fuzzed.
type Body = tdev_domain::auth::NewApiKeyRequest;

#[test]
fn json_bodies() {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        "-?[0-9]{1,22}(\\.[0-9]{1,5})?(e[+-]?[0-9]{1,4})?",
        "\"([a-z_]|\\\\u[0-9a-fA-F]{4}|\\\\[\"\\\\/bfnrt])*\"",
        proptest::sample::select(
            &["\"name\"", "\"scopes\"", "\"rate_limit\"", "\"capacity\"", "\"read\""][..]
        )
        .prop_map(str::to_owned),
    ];
    let text = leaf.prop_recursive(10, 200, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((inner.clone(), inner), 0..8).prop_map(|entries| {
                let members: Vec<String> = entries.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    });
    let text = prop_oneof![
        8 => text,
        1 => (proptest::sample::select(&["[", "{\"a\":", "[{\"name\":"][..]), 1usize..50_000).prop_map(|(o, n)| o.repeat(n)),
        1 => "[\\[\\]{}:,\" a-z0-9.-]{0,200}",
    ];
    fuzz("JSON body", text, |text| {
        if let Err(error) = tdev_http::json::parse::<Body>(text.as_bytes()) {
            let status = error.problem().status;
            assert!(status == 400 || status == 422, "{text}: {status}");
        }
    });
}
