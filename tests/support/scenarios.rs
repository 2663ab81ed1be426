//! What a user does, as functions over a running stack, so that every backend is put
//! through the same paces.

use reqwest::Method;
use serde_json::{Value, json};
use tdev_conformance::tokens::SigningMaterial;
use tdev_domain::auth::AuthStore;

use super::{Stack, now, problem};

/// The README's quickstart: a key, a token, a protected route, then a 429.
pub async fn quickstart<S: AuthStore, Q>(stack: &Stack<S, Q>) {
    let (id, key) = stack.create_key(&["read"], Some((3, 1))).await;
    let token = stack.token(&key).await;

    let whoami = stack.request(Method::GET, "/v1/whoami").bearer_auth(&token).send().await.unwrap();
    assert_eq!(whoami.status(), 200);
    assert_eq!(whoami.headers()["ratelimit-limit"], "3");
    assert_eq!(whoami.headers()["ratelimit-remaining"], "1", "the token exchange took one");
    let body: Value = whoami.json().await.unwrap();
    let expected = json!({"key_id": id, "scopes": ["read"], "via": "token",
        "rate_limit": {"capacity": 3, "refill_per_minute": 1}});
    assert_eq!(body, expected);

    let third = stack.request(Method::GET, "/v1/whoami").header("x-api-key", &key).send().await.unwrap();
    assert_eq!(third.status(), 200, "the key itself works too, on the same bucket");
    assert_eq!(third.headers()["ratelimit-remaining"], "0");

    let limited = stack.request(Method::GET, "/v1/whoami").bearer_auth(&token).send().await.unwrap();
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert_eq!(retry_after, 60, "one token a minute");
    assert_eq!(limited.headers()["ratelimit-remaining"], "0");
    problem(limited, 429).await;
}

/// A good token passes; every hostile one, a missing credential, bad keys and two
/// credentials at once are 401 problems with a `WWW-Authenticate` challenge.
pub async fn hostile_credentials<S: AuthStore, Q>(stack: &Stack<S, Q>) {
    let (id, _) = stack.create_key(&["admin"], None).await;
    let (kid, secret) = stack.current_signing_key().await;
    let material = SigningMaterial {
        kid: &kid,
        secret: &secret,
        issuer: &stack.config.token.issuer,
        audience: &stack.config.token.audience,
        subject: &id,
        now: now(),
    };
    let keys = || stack.request(Method::GET, "/v1/keys");
    let ok = keys().bearer_auth(material.valid()).send().await.unwrap();
    assert_eq!(ok.status(), 200, "the baseline token is good");

    let missing = keys().send().await.unwrap();
    assert!(missing.headers()["www-authenticate"].to_str().unwrap().contains("invalid_request"));
    problem(missing, 401).await;
    for (name, authorization) in material.bad_authorizations() {
        let response = keys().header("authorization", authorization).send().await.unwrap();
        assert_eq!(response.status(), 401, "{name}");
        assert!(response.headers()["www-authenticate"].to_str().unwrap().contains("Bearer"), "{name}");
        let body = problem(response, 401).await;
        assert_eq!(body["type"], "urn:tdev:problem:unauthenticated", "{name}");
    }
    let unknown_key = format!("tdk_aaaaaaaaaaaaaaaa_{}", "A".repeat(43));
    for bad_key in ["tdk_nope", unknown_key.as_str(), ""] {
        problem(keys().header("x-api-key", bad_key).send().await.unwrap(), 401).await;
    }
    let both =
        keys().bearer_auth(material.valid()).header("x-api-key", &stack.admin_key).send().await.unwrap();
    problem(both, 401).await;
}

/// A revoked key is refused at once, directly and for token exchange; it stays listed,
/// with its revocation time and never its secret.
pub async fn revocation<S: AuthStore, Q>(stack: &Stack<S, Q>) {
    let admin =
        |method: Method, path: &str| stack.request(method, path).header("x-api-key", &stack.admin_key);
    let (id, key) = stack.create_key(&["read"], None).await;
    let whoami = || stack.request(Method::GET, "/v1/whoami").header("x-api-key", &key);
    assert_eq!(whoami().send().await.unwrap().status(), 200);

    let revoke = admin(Method::DELETE, &format!("/v1/keys/{id}")).send().await.unwrap();
    assert_eq!(revoke.status(), 204);
    let body = problem(whoami().send().await.unwrap(), 401).await;
    assert!(body["detail"].as_str().unwrap().contains("revoked"), "{body}");
    let exchange = stack.request(Method::POST, "/v1/tokens").header("x-api-key", &key).send().await.unwrap();
    problem(exchange, 401).await;

    let listed: Value = admin(Method::GET, "/v1/keys").send().await.unwrap().json().await.unwrap();
    let entry = listed["keys"].as_array().unwrap().iter().find(|k| k["id"] == id.as_str()).unwrap().clone();
    assert!(entry["revoked_at"].is_string());
    assert!(entry.get("secret").is_none() && !listed.to_string().contains(&key), "no secret is ever listed");
    let again = admin(Method::DELETE, &format!("/v1/keys/{id}")).send().await.unwrap();
    assert_eq!(again.status(), 204, "revoking twice is harmless");
    problem(admin(Method::DELETE, "/v1/keys/aaaaaaaaaaaaaaaa").send().await.unwrap(), 404).await;
}

/// Register, read, refuse duplicates and bad fields, and remove agents, with scopes.
pub async fn agent_registry<S: AuthStore, Q>(stack: &Stack<S, Q>) {
    let (_, writer) = stack.create_key(&["agents:write", "read"], None).await;
    let (_, reader) = stack.create_key(&["read"], None).await;
    let id = format!("extractor-{}", now());
    let body = json!({"id": id, "name": "Extractor", "target": {"kind": "http", "url": "http://127.0.0.1:9/extract"},
        "capabilities": ["extract"]});
    let register = |key: &str, body: &Value| {
        stack.request(Method::POST, "/v1/agents").header("x-api-key", key).json(body).send()
    };
    problem(register(&reader, &body).await.unwrap(), 403).await;
    let created = register(&writer, &body).await.unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["location"].to_str().unwrap(), format!("/v1/agents/{id}"));
    let agent: Value = created.json().await.unwrap();
    assert_eq!(agent["target"], json!({"kind": "http", "url": "http://127.0.0.1:9/extract"}));
    problem(register(&writer, &body).await.unwrap(), 409).await;
    let bad = json!({"id": "Bad Id", "name": "x", "target": {"kind": "lambda", "function": ""}});
    let invalid = problem(register(&writer, &bad).await.unwrap(), 422).await;
    let paths: Vec<&str> =
        invalid["errors"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["$.id", "$.target.function"]);
    let unknown_kind = json!({"id": "x", "name": "x", "target": {"kind": "smtp"}});
    problem(register(&writer, &unknown_kind).await.unwrap(), 422).await;

    let path = format!("/v1/agents/{id}");
    let read = stack.request(Method::GET, &path).header("x-api-key", &reader).send().await.unwrap();
    assert_eq!(read.status(), 200);
    let mut read: Value = read.json().await.unwrap();
    let health = read.as_object_mut().unwrap().remove("health").expect("the agent's health");
    assert_eq!(
        health,
        json!({"in_flight": 0, "breaker": {"state": "closed", "consecutive_failures": 0, "last_success_at": null, "last_failure_at": null, "version": 0}})
    );
    assert_eq!(read, agent, "the agent as registered");
    let listed = stack.get_json("/v1/agents", &reader).await;
    assert!(listed["agents"].as_array().unwrap().contains(&agent));

    problem(stack.request(Method::DELETE, &path).header("x-api-key", &reader).send().await.unwrap(), 403)
        .await;
    let removed = stack.request(Method::DELETE, &path).header("x-api-key", &writer).send().await.unwrap();
    assert_eq!(removed.status(), 204);
    problem(stack.request(Method::GET, &path).header("x-api-key", &reader).send().await.unwrap(), 404).await;
}
