//! The AgentCore Runtime target against a real moto server (`infra/test.sh` starts one
//! and sets `TDEV_TEST_MOTO_URL`): runtimes, their versions and endpoints as moto keeps
//! them, through the real SDK client.
//!
//! moto itself leaves an updated runtime `UPDATING` for ever (its state manager knows only
//! `CREATING` → `READY`); the test command's moto (`infra/moto_server.py`) adds the
//! `UPDATING` → `READY` that AWS makes, so `prepare` after an update is `Ready` here.
//! `tests/agentcore_mocks.rs` covers the `*_FAILED` states.
//!
//! moto also never moves an updated endpoint's live version on its own
//! (`UpdateAgentRuntimeEndpoint` sets only its target); the test command's moto makes a
//! READY endpoint serve its target, as AWS does, and `publish` and `point_to` wait for
//! that. The mocks (`tests/agentcore_mocks.rs`) script an endpoint that stays behind.

use std::time::Duration;

use tdev_domain::agents::AgentTarget;
use tdev_domain::deploy::{AgentDeployer, AgentSpec, PlatformSpec, Published, Readiness, Snapshot};
use tdev_platforms::AgentcoreRuntimes;

#[path = "../../aws/tests/support/mod.rs"]
mod support;
use support::moto_config;
mod common;
use common::{ROLE, agentcore_spec};

/// A short wait: moto answers at once, and never moves an updated endpoint's live version.
fn target() -> AgentcoreRuntimes {
    AgentcoreRuntimes::new(&moto_config()).with_wait_limit(Duration::from_secs(2))
}

/// Runtime names are per run (moto outlives a test run), and match AgentCore's pattern
/// `[a-zA-Z][a-zA-Z0-9_]{0,47}`.
fn unique(purpose: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("tdev_{purpose}_{}_{}", std::process::id(), nanos % 1_000_000_000_000)
}

fn spec(name: &str, artifact: &str, environment: &[(&str, &str)]) -> AgentSpec {
    agentcore_spec(name, Some("an AgentCore test runtime"), artifact, environment)
}

fn image(tag: &str) -> String {
    format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/support-bot:{tag}")
}

async fn snapshot(target: &AgentcoreRuntimes, spec: &AgentSpec) -> Snapshot {
    target.snapshot(spec).await.expect("snapshot").expect("the runtime exists")
}

/// The runtime's latest version, as the snapshot saw it.
fn latest_version(snapshot: &Snapshot) -> &str {
    snapshot.config["version"].as_str().expect("a version")
}

/// Publishes `spec`, whose runtime's latest version is `version`, on an endpoint serving
/// `before`: it returns once `version` is live, and the snapshot then names it.
/// Returns the snapshot after.
async fn publish_new_version(
    target: &AgentcoreRuntimes,
    spec: &AgentSpec,
    version: &str,
    before: &str,
) -> Snapshot {
    let result = target.publish(spec).await;
    let snap = snapshot(target, spec).await;
    let endpoint = &snap.config["endpoint"];
    assert_eq!(endpoint["target_version"], version, "the endpoint is pointed at {version}");
    let live = endpoint["live_version"].as_str().expect("a live version");
    assert_eq!(snap.serving_version.as_deref(), Some(live), "the snapshot names the live version");
    let published = result.unwrap_or_else(|e| panic!("publish over version {before} failed: {e:?}"));
    assert_published(&published, version);
    assert_eq!(live, version, "published means live");
    snap
}

fn assert_published(published: &Published, version: &str) {
    assert_eq!(published.version, version);
    match &published.target {
        AgentTarget::AgentcoreRuntime { runtime_arn, qualifier } => {
            assert!(runtime_arn.starts_with("arn:aws:bedrock-agentcore:us-east-1:"), "{runtime_arn}");
            assert_eq!(qualifier.as_deref(), Some("live"));
        }
        other => panic!("not an AgentCore target: {other:?}"),
    }
}

#[tokio::test]
async fn a_runtime_is_created_updated_and_pointed_back_and_a_repeated_apply_makes_no_version() {
    let target = target();
    let name = unique("lifecycle");
    let first = spec(&name, &image("v1"), &[("LOG_LEVEL", "info")]);

    // Nothing yet.
    assert_eq!(target.snapshot(&first).await.expect("snapshot"), None);

    // Create: version 1, served by the new endpoint.
    target.apply(&first).await.expect("apply creates the runtime");
    assert_eq!(target.prepare(&first).await.expect("prepare"), Readiness::Ready);
    assert_published(&target.publish(&first).await.expect("publish"), "1");
    let snap = snapshot(&target, &first).await;
    assert_eq!(snap.serving_version.as_deref(), Some("1"));
    assert_eq!(latest_version(&snap), "1");
    assert_eq!(snap.config["config"]["artifact"], image("v1"));
    assert_eq!(snap.config["config"]["environment"]["LOG_LEVEL"], "info");
    assert_eq!(snap.config["config"]["role_arn"], ROLE);

    // The same spec again (a repeat after a crash): no new version, the endpoint stays.
    target.apply(&first).await.expect("a repeated apply");
    assert_published(&target.publish(&first).await.expect("a repeated publish"), "1");
    let snap = snapshot(&target, &first).await;
    assert_eq!((latest_version(&snap), snap.serving_version.as_deref()), ("1", Some("1")));

    // A new artifact: version 2, and the endpoint is pointed at it (moto keeps 1 live).
    let second = spec(&name, &image("v2"), &[("LOG_LEVEL", "info")]);
    target.apply(&second).await.expect("apply updates the runtime");
    assert_eq!(
        target.prepare(&second).await.expect("prepare"),
        Readiness::Ready,
        "an updated runtime is READY again (infra/moto_server.py)"
    );
    let snap = publish_new_version(&target, &second, "2", "1").await;
    assert_eq!(latest_version(&snap), "2");
    assert_eq!(snap.config["config"]["artifact"], image("v2"));
    let serving = snap.serving_version.clone().expect("a serving version");

    // A changed environment: version 3.
    let third = spec(&name, &image("v2"), &[("LOG_LEVEL", "debug"), ("REGION", "us-east-1")]);
    target.apply(&third).await.expect("apply with a new environment");
    let snap = publish_new_version(&target, &third, "3", &serving).await;
    assert_eq!(latest_version(&snap), "3");
    assert_eq!(snap.config["config"]["environment"]["LOG_LEVEL"], "debug");
    target.apply(&third).await.expect("a repeated apply");
    assert_eq!(latest_version(&snapshot(&target, &third).await), "3", "an unchanged spec makes no version");

    // Rollback: the endpoint serves version 1 again; restore has nothing to do.
    assert_published(&target.point_to(&third, "1").await.expect("point_to 1"), "1");
    target.restore(&third, &snap).await.expect("restore");
    let snap = snapshot(&target, &third).await;
    assert_eq!((latest_version(&snap), snap.serving_version.as_deref()), ("3", Some("1")));
    assert_published(&target.point_to(&third, "1").await.expect("a repeated point_to"), "1");
}

#[tokio::test]
async fn a_vpc_runtime_keeps_its_network_and_is_not_updated_for_a_reordered_spec() {
    let target = target();
    let name = unique("vpc");
    let mut vpc = spec(&name, &image("v1"), &[]);
    let PlatformSpec::AgentcoreRuntime { network_mode, subnets, security_groups, .. } = &mut vpc.platform
    else {
        unreachable!()
    };
    *network_mode = "VPC".into();
    *subnets = vec!["subnet-b".into(), "subnet-a".into()];
    *security_groups = vec!["sg-1".into()];

    target.apply(&vpc).await.expect("apply");
    let snap = snapshot(&target, &vpc).await;
    assert_eq!(snap.serving_version, None, "no endpoint before publish");
    assert_eq!(snap.config["config"]["network_mode"], "VPC");
    assert_eq!(snap.config["config"]["subnets"], serde_json::json!(["subnet-a", "subnet-b"]));

    let PlatformSpec::AgentcoreRuntime { subnets, .. } = &mut vpc.platform else { unreachable!() };
    subnets.reverse();
    target.apply(&vpc).await.expect("apply again");
    assert_eq!(latest_version(&snapshot(&target, &vpc).await), "1");
}

#[tokio::test]
async fn steps_on_a_runtime_that_does_not_exist_fail_clearly() {
    let target = target();
    let absent = spec(&unique("absent"), &image("v1"), &[]);
    for result in [
        target.prepare(&absent).await.map(|_| ()),
        target.publish(&absent).await.map(|_| ()),
        target.point_to(&absent, "1").await.map(|_| ()),
    ] {
        let message = result.expect_err("no runtime").to_string();
        assert!(message.contains("AgentCore has no runtime named tdev_absent_"), "{message}");
    }
}
