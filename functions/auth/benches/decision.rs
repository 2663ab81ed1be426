//! The authorizer's decision per call, measured with criterion (issue 2, item 1).
//!
//! Run: `cargo bench -p tdev-auth --bench decision` (or `infra/bench.sh`). Not part of CI.
//! The figures and how to read them are in BENCHMARKS.md.
//!
//! Each case runs `iters` calls inside one `block_on`, so the figure is the decision
//! itself, not entering the tokio runtime once per call.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerV2Request;
use criterion::{Criterion, criterion_group, criterion_main};
use jiff::{SignedDuration, Timestamp};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use tdev_auth::authorizer;
use tdev_domain::auth::{
    AuthConfig, AuthService, Claims, Credentials, NewApiKeyRequest, RateLimit, Scope, TokenRequest,
    TokenSettings,
};
use tdev_domain::ports::SecretStore;
use tdev_domain::{Clock, ManualClock, SystemClock};
use tdev_embedded::SqliteStore;
use tokio::runtime::Runtime;

fn config() -> AuthConfig {
    AuthConfig {
        token: TokenSettings {
            issuer: "t-developer".into(),
            audience: "t-developer-api".into(),
            leeway_secs: 5,
        },
        token_ttl_secs: 900,
        default_rate_limit: RateLimit::DEFAULT,
        failed_auth_limit: AuthConfig::DEFAULT_FAILED_AUTH_LIMIT,
        signing_secret: "tdev/signing-key".into(),
        key_cache_secs: 300,
    }
}

/// A bootstrapped service with a `read` key, and a `read` token exchanged for it.
struct Fixture {
    service: AuthService<SqliteStore>,
    read_key: String,
    token: String,
}

async fn fixture(store: SqliteStore, clock: Arc<dyn Clock>) -> Fixture {
    let service = AuthService::new(store, clock, config());
    service.bootstrap().await.unwrap().expect("a fresh store makes an admin key");
    // The key's limit is the maximum, so a bench never drains its bucket; the token
    // carries the same limit (claim `rl`).
    let read_key = service
        .create_key(NewApiKeyRequest {
            name: "bench".into(),
            scopes: vec!["read".into()],
            expires_at: None,
            rate_limit: Some(RateLimit {
                capacity: RateLimit::MAX_CAPACITY,
                refill_per_minute: RateLimit::MAX_REFILL_PER_MINUTE,
            }),
        })
        .await
        .unwrap()
        .plaintext;
    let principal = service.authenticate(Credentials::ApiKey(read_key.clone())).await.unwrap();
    let token = service.issue_token(&principal, TokenRequest::default()).await.unwrap().access_token;
    Fixture { service, read_key, token }
}

/// The authorizer fixture with `Authorization: Bearer <token>`, deserialized once.
fn authorizer_event(token: &str) -> ApiGatewayV2CustomAuthorizerV2Request {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/authorizer-request.json");
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["headers"]["authorization"] = json!(format!("Bearer {token}"));
    serde_json::from_value(event).unwrap()
}

fn decision(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let f = rt.block_on(fixture(SqliteStore::in_memory().unwrap(), Arc::new(SystemClock)));
    let event = authorizer_event(&f.token);

    // Sanity: every case below decides "authenticated, may read", so no case is timing
    // a fast refusal.
    rt.block_on(async {
        let by_token = f.service.authenticate(Credentials::Bearer(f.token.clone())).await;
        assert!(by_token.unwrap().may(Scope::Read));
        let by_key = f.service.authenticate(Credentials::ApiKey(f.read_key.clone())).await;
        assert!(by_key.unwrap().may(Scope::Read));
        let answer = authorizer::authorize(&f.service, &event).await.unwrap();
        assert_eq!(answer.context["authenticated"], true, "{:?}", answer.context);
    });

    let mut group = c.benchmark_group("decision");
    group.bench_function("token: authenticate + may(read)", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, || async {
                let principal = f.service.authenticate(Credentials::Bearer(f.token.clone())).await.unwrap();
                black_box(principal.may(Scope::Read))
            })
        })
    });
    group.bench_function("token: authorizer::authorize(event)", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, || async {
                black_box(authorizer::authorize(&f.service, &event).await.unwrap())
            })
        })
    });
    group.bench_function("api key: authenticate + may(read) (SQLite read)", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, || async {
                let principal =
                    f.service.authenticate(Credentials::ApiKey(f.read_key.clone())).await.unwrap();
                black_box(principal.may(Scope::Read))
            })
        })
    });
    group.finish();
}

/// For reference: the JWT library's share of the token path. The first case does what
/// `tdev_domain::auth::token::{key_id, verify}` do per call (header decoded on its own,
/// key and validation rules built anew); the second decodes with a key and rules built
/// once, which is what a cache of them per signing key would cost.
fn jwt_breakdown(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let f = rt.block_on(fixture(SqliteStore::in_memory().unwrap(), Arc::new(SystemClock)));
    let secret = rt
        .block_on(f.service.store().secret_versions(&f.service.config().signing_secret))
        .unwrap()
        .current
        .value
        .into_bytes();
    let settings = &f.service.config().token;
    let validation = || {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation
    };
    let token = f.token.as_str();
    let mut group = c.benchmark_group("jwt");
    group.bench_function("decode_header + decode, key and rules per call", |b| {
        b.iter(|| {
            let header = jsonwebtoken::decode_header(black_box(token)).unwrap();
            black_box(header.kid);
            let key = DecodingKey::from_secret(&secret);
            black_box(jsonwebtoken::decode::<Claims>(token, &key, &validation()).unwrap())
        })
    });
    let key = DecodingKey::from_secret(&secret);
    let rules = validation();
    group.bench_function("decode, key and rules prepared once", |b| {
        b.iter(|| black_box(jsonwebtoken::decode::<Claims>(black_box(token), &key, &rules).unwrap()))
    });
    group.finish();
}

/// For reference: what the local stack's guard adds after the decision, one rate-limit
/// charge, an `IMMEDIATE` SQLite transaction on a WAL file (as `tdev serve` uses).
/// The clock moves one refill interval (10 µs) per call, so every charge is allowed and
/// writes: a drained bucket would refuse without writing, and look faster than it is.
fn rate_limit_charge(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("tdev-bench-decision-{}", std::process::id()));
    let store = SqliteStore::open(&dir.join("tdev.db")).unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let f = rt.block_on(fixture(store, clock.clone()));
    let principal = rt.block_on(f.service.authenticate(Credentials::Bearer(f.token.clone()))).unwrap();
    c.bench_function("guard: rate_limit charge (SQLite file, WAL)", |b| {
        b.iter_custom(|iters| {
            timed(&rt, iters, || async {
                clock.advance(SignedDuration::from_micros(10));
                let decision = f.service.rate_limit(&principal).await.unwrap();
                assert!(decision.allowed);
            })
        })
    });
    drop(f);
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs `call` `iters` times inside one `block_on` and returns the time taken.
fn timed<F, Fut, T>(rt: &Runtime, iters: u64, call: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: Future<Output = T>,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(call().await);
        }
        start.elapsed()
    })
}

criterion_group! {
    name = benches;
    // A few seconds per case: this is a figure to compare, not a statistics exercise.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .without_plots();
    targets = decision, jwt_breakdown, rate_limit_charge
}
criterion_main!(benches);
