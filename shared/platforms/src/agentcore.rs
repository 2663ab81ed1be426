//! Amazon Bedrock AgentCore Runtime, for specs with `target: {kind: agentcore-runtime, …}`.
//!
//! A runtime's versions are immutable: each change of its configuration makes a new one,
//! and the spec's endpoint says which version serves. Nothing is kept between calls: each
//! one finds the runtime by name (`ListAgentRuntimes`, every page) and does only what is
//! missing, so any step can be repeated after a crash.
//!
//! - `snapshot`: `GetAgentRuntime` (artifact, role, protocol, environment, network,
//!   version) and `GetAgentRuntimeEndpoint`, whose live version is the serving version (its
//!   target version only while it has none: mid-update, the target has not served yet).
//! - `apply`: `CreateAgentRuntime` (version 1); or `GetAgentRuntime` and, if its
//!   configuration differs from the spec's or its status is `CREATE_FAILED` or
//!   `UPDATE_FAILED`, `UpdateAgentRuntime` (a new version: the same spec is tried again).
//!   The description is sent but not compared: on its own it makes no new version.
//! - `prepare`: `GetAgentRuntime`'s status: `READY`, `CREATING`/`UPDATING`, `*_FAILED`.
//! - `publish`: the runtime's latest version (as listed); `CreateAgentRuntimeEndpoint` if
//!   the endpoint is absent, `UpdateAgentRuntimeEndpoint` if it targets another version (or
//!   its last change failed). Then `GetAgentRuntimeEndpoint` until the endpoint is `READY`
//!   with that version live, so that what follows (the smoke test) reaches it.
//! - `point_to`: the same with the given version.
//! - `restore`: nothing to do (see [`AgentDeployer::restore`] below).
//!
//! The wait of `publish` and `point_to` is bounded, 15 s by default
//! ([`AgentcoreRuntimes::with_wait_limit`]): a step runs in a worker Lambda with a 60 s
//! timeout. An endpoint still moving then makes the step `Settling`, naming it, its
//! status and live version; the pipeline repeats the step, which finds the endpoint
//! already targeting the version and only waits again.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_bedrockagentcorecontrol::operation::get_agent_runtime::GetAgentRuntimeOutput;
use aws_sdk_bedrockagentcorecontrol::operation::get_agent_runtime_endpoint::GetAgentRuntimeEndpointOutput;
use aws_sdk_bedrockagentcorecontrol::types::{
    AgentRuntime, AgentRuntimeArtifact, AgentRuntimeEndpointStatus, AgentRuntimeStatus,
    ContainerConfiguration, NetworkConfiguration, NetworkMode, ProtocolConfiguration, ServerProtocol,
    VpcConfig,
};
use serde::{Deserialize, Serialize};
use tdev_domain::agents::AgentTarget;
use tdev_domain::deploy::{
    AgentDeployer, AgentSpec, DeployError, PlatformKind, PlatformSpec, Published, Readiness, Snapshot,
};

use crate::calls::{CallResult, Deadline, STEP_WAIT};

/// Deploys to Amazon Bedrock AgentCore Runtime: each change is a new runtime version,
/// served through the spec's endpoint.
#[derive(Debug, Clone)]
pub struct AgentcoreRuntimes {
    client: aws_sdk_bedrockagentcorecontrol::Client,
    /// How long `publish` and `point_to` wait for the endpoint to serve the version before
    /// they are `Settling`.
    wait_limit: Duration,
}

impl AgentcoreRuntimes {
    /// A client for the account and region of `config`.
    pub fn new(config: &SdkConfig) -> Self {
        Self::from_client(aws_sdk_bedrockagentcorecontrol::Client::new(config))
    }

    /// Uses `client` as it is (tests give one that talks to moto).
    pub fn from_client(client: aws_sdk_bedrockagentcorecontrol::Client) -> Self {
        Self { client, wait_limit: STEP_WAIT }
    }

    /// Bounds each step's waiting by `limit` (default 15 s): the endpoint still moving
    /// then makes the step `Settling`.
    pub fn with_wait_limit(mut self, limit: Duration) -> Self {
        self.wait_limit = limit;
        self
    }
}

/// A runtime's configuration, as the spec gives it and `GetAgentRuntime` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RuntimeConfig {
    artifact: String,
    role_arn: String,
    protocol: String,
    environment: BTreeMap<String, String>,
    network_mode: String,
    /// Sorted, as are `security_groups`: their order means nothing.
    subnets: Vec<String>,
    security_groups: Vec<String>,
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

impl RuntimeConfig {
    fn from_spec(spec: &AgentSpec) -> Result<Self, DeployError> {
        let PlatformSpec::AgentcoreRuntime {
            artifact,
            protocol,
            environment,
            network_mode,
            subnets,
            security_groups,
            ..
        } = &spec.platform
        else {
            return Err(DeployError::Failed(format!("a {} spec is not for AgentCore", spec.platform.kind())));
        };
        let role_arn = spec.agent_role_arn.clone();
        Ok(Self {
            artifact: artifact.clone(),
            role_arn: role_arn
                .ok_or_else(|| DeployError::Failed("an AgentCore runtime needs an agent_role_arn".into()))?,
            protocol: protocol.clone(),
            environment: environment.clone(),
            network_mode: network_mode.clone(),
            subnets: sorted(subnets.clone()),
            security_groups: sorted(security_groups.clone()),
        })
    }

    fn held_by(runtime: &GetAgentRuntimeOutput) -> Self {
        let network = runtime.network_configuration();
        let vpc = network.and_then(NetworkConfiguration::network_mode_config);
        Self {
            artifact: match runtime.agent_runtime_artifact() {
                Some(AgentRuntimeArtifact::ContainerConfiguration(container)) => {
                    container.container_uri().to_owned()
                }
                _ => String::new(),
            },
            role_arn: runtime.role_arn().to_owned(),
            protocol: runtime
                .protocol_configuration()
                .map_or(ServerProtocol::Http.as_str(), |p| p.server_protocol().as_str())
                .to_owned(),
            environment: runtime
                .environment_variables()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            network_mode: network
                .map_or(NetworkMode::Public.as_str(), |n| n.network_mode().as_str())
                .to_owned(),
            subnets: sorted(vpc.map(|vpc| vpc.subnets().to_vec()).unwrap_or_default()),
            security_groups: sorted(vpc.map(|vpc| vpc.security_groups().to_vec()).unwrap_or_default()),
        }
    }

    /// The artifact, network and protocol as the SDK takes them.
    fn sdk_parts(
        &self,
    ) -> Result<(AgentRuntimeArtifact, NetworkConfiguration, ProtocolConfiguration), DeployError> {
        let invalid = |e: aws_smithy_types::error::operation::BuildError| {
            DeployError::Failed(format!("the AgentCore runtime configuration is incomplete: {e}"))
        };
        let container =
            ContainerConfiguration::builder().container_uri(&self.artifact).build().map_err(invalid)?;
        let vpc = match self.network_mode.as_str() {
            "VPC" => Some(
                VpcConfig::builder()
                    .set_subnets(Some(self.subnets.clone()))
                    .set_security_groups(Some(self.security_groups.clone()))
                    .build()
                    .map_err(invalid)?,
            ),
            _ => None,
        };
        let network = NetworkConfiguration::builder()
            .network_mode(NetworkMode::from(self.network_mode.as_str()))
            .set_network_mode_config(vpc)
            .build()
            .map_err(invalid)?;
        let protocol = ProtocolConfiguration::builder()
            .server_protocol(ServerProtocol::from(self.protocol.as_str()))
            .build()
            .map_err(invalid)?;
        Ok((AgentRuntimeArtifact::ContainerConfiguration(container), network, protocol))
    }
}

/// [`Snapshot::config`] for this target.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    runtime_id: String,
    runtime_arn: String,
    /// The runtime's latest version.
    version: String,
    config: RuntimeConfig,
    endpoint: Option<SavedEndpoint>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedEndpoint {
    name: String,
    target_version: Option<String>,
    live_version: Option<String>,
}

/// The version an endpoint is pointed at: its target, which becomes live once AgentCore
/// has moved it. What `route` compares, not what serves (see [`serving_version`]).
fn endpoint_version(endpoint: &GetAgentRuntimeEndpointOutput) -> Option<&str> {
    endpoint.target_version().or(endpoint.live_version())
}

/// The version an endpoint serves: its live one. Mid-update the target has not served yet,
/// so it counts only for an endpoint without a live version.
fn serving_version(endpoint: &GetAgentRuntimeEndpointOutput) -> Option<&str> {
    endpoint.live_version().or(endpoint.target_version())
}

fn endpoint_failed(status: &AgentRuntimeEndpointStatus) -> bool {
    matches!(status, AgentRuntimeEndpointStatus::CreateFailed | AgentRuntimeEndpointStatus::UpdateFailed)
}

fn endpoint_name(spec: &AgentSpec) -> Result<&str, DeployError> {
    match &spec.platform {
        PlatformSpec::AgentcoreRuntime { endpoint, .. } => Ok(endpoint),
        other => Err(DeployError::Failed(format!("a {} spec is not for AgentCore", other.kind()))),
    }
}

impl AgentcoreRuntimes {
    /// The runtime named `name`, as listed (its id, ARN, latest version and status).
    async fn find_runtime(&self, name: &str) -> Result<Option<AgentRuntime>, DeployError> {
        let mut runtimes = self.client.list_agent_runtimes().into_paginator().items().send();
        while let Some(runtime) = runtimes.try_next().await.or_deploy_error("ListAgentRuntimes")? {
            if runtime.agent_runtime_name() == name {
                return Ok(Some(runtime));
            }
        }
        Ok(None)
    }

    async fn runtime(&self, name: &str) -> Result<AgentRuntime, DeployError> {
        self.find_runtime(name)
            .await?
            .ok_or_else(|| DeployError::Failed(format!("AgentCore has no runtime named {name}")))
    }

    async fn get_runtime(&self, runtime_id: &str) -> Result<GetAgentRuntimeOutput, DeployError> {
        let request = self.client.get_agent_runtime().agent_runtime_id(runtime_id);
        request.send().await.or_deploy_error("GetAgentRuntime")
    }

    async fn endpoint(
        &self,
        runtime_id: &str,
        name: &str,
    ) -> Result<Option<GetAgentRuntimeEndpointOutput>, DeployError> {
        let request =
            self.client.get_agent_runtime_endpoint().agent_runtime_id(runtime_id).endpoint_name(name);
        match request.send().await {
            Ok(endpoint) => Ok(Some(endpoint)),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => Ok(None),
            Err(e) => Err(e).or_deploy_error("GetAgentRuntimeEndpoint"),
        }
    }

    /// Points the endpoint at `version`, creating it if absent (nothing if it already
    /// targets it, unless its last change failed), then waits until it serves `version`.
    async fn route(
        &self,
        spec: &AgentSpec,
        runtime: &AgentRuntime,
        version: &str,
        deadline: Deadline,
    ) -> Result<Published, DeployError> {
        let endpoint = endpoint_name(spec)?;
        let runtime_id = runtime.agent_runtime_id();
        let seen = match self.endpoint(runtime_id, endpoint).await? {
            None => {
                let request = self.client.create_agent_runtime_endpoint().agent_runtime_id(runtime_id);
                let request = request.name(endpoint).agent_runtime_version(version);
                request.send().await.or_deploy_error("CreateAgentRuntimeEndpoint")?;
                None
            }
            Some(held) if endpoint_version(&held) != Some(version) || endpoint_failed(held.status()) => {
                let request = self.client.update_agent_runtime_endpoint().agent_runtime_id(runtime_id);
                let request = request.endpoint_name(endpoint).agent_runtime_version(version);
                request.send().await.or_deploy_error("UpdateAgentRuntimeEndpoint")?;
                None
            }
            Some(held) => Some(held),
        };
        self.await_endpoint(runtime_id, endpoint, version, seen, deadline).await?;
        Ok(Published {
            version: version.to_owned(),
            target: AgentTarget::AgentcoreRuntime {
                runtime_arn: runtime.agent_runtime_arn().to_owned(),
                qualifier: Some(endpoint.to_owned()),
            },
        })
    }

    /// Waits until the endpoint serves `version`: `READY`, with `version` live. `seen` is
    /// the endpoint as just got, if nothing was written since. One that ends `*_FAILED`
    /// is `Err(Failed)`; one still moving at `deadline` is `Settling`.
    async fn await_endpoint(
        &self,
        runtime_id: &str,
        name: &str,
        version: &str,
        mut seen: Option<GetAgentRuntimeEndpointOutput>,
        deadline: Deadline,
    ) -> Result<(), DeployError> {
        let mut backoff = deadline.backoff();
        loop {
            let endpoint = match seen.take() {
                Some(endpoint) => endpoint,
                None => self.endpoint(runtime_id, name).await?.ok_or_else(|| {
                    DeployError::Unavailable(format!(
                        "the endpoint {name} is gone while it was being pointed"
                    ))
                })?,
            };
            let (status, live) = (endpoint.status(), endpoint.live_version());
            if *status == AgentRuntimeEndpointStatus::Ready && live == Some(version) {
                return Ok(());
            }
            if endpoint_failed(status) {
                return Err(DeployError::Failed(format!(
                    "the endpoint {name} is {}: {}",
                    status.as_str(),
                    endpoint.failure_reason().unwrap_or("no reason given")
                )));
            }
            let serving = live.map_or("no version".to_owned(), |live| format!("version {live}"));
            let what = format!(
                "the endpoint {name} is {}, serving {serving} and not yet {version}",
                status.as_str()
            );
            backoff.wait(&what).await?;
        }
    }
}

impl AgentDeployer for AgentcoreRuntimes {
    fn supports(&self, kind: PlatformKind) -> bool {
        kind == PlatformKind::AgentcoreRuntime
    }

    async fn snapshot(&self, spec: &AgentSpec) -> Result<Option<Snapshot>, DeployError> {
        let endpoint_name = endpoint_name(spec)?;
        let Some(runtime) = self.find_runtime(&spec.name).await? else { return Ok(None) };
        let held = self.get_runtime(runtime.agent_runtime_id()).await?;
        let endpoint = self.endpoint(runtime.agent_runtime_id(), endpoint_name).await?;
        let serving_version = endpoint.as_ref().and_then(serving_version).map(str::to_owned);
        let saved = Saved {
            runtime_id: held.agent_runtime_id().to_owned(),
            runtime_arn: held.agent_runtime_arn().to_owned(),
            version: held.agent_runtime_version().to_owned(),
            config: RuntimeConfig::held_by(&held),
            endpoint: endpoint.map(|endpoint| SavedEndpoint {
                name: endpoint.name().to_owned(),
                target_version: endpoint.target_version().map(str::to_owned),
                live_version: endpoint.live_version().map(str::to_owned),
            }),
        };
        let config = serde_json::to_value(&saved)
            .map_err(|e| DeployError::Failed(format!("the snapshot does not serialize: {e}")))?;
        Ok(Some(Snapshot { serving_version, config }))
    }

    async fn apply(&self, spec: &AgentSpec) -> Result<(), DeployError> {
        let wanted = RuntimeConfig::from_spec(spec)?;
        let (artifact, network, protocol) = wanted.sdk_parts()?;
        let environment = Some(wanted.environment.clone().into_iter().collect());
        match self.find_runtime(&spec.name).await? {
            None => {
                self.client
                    .create_agent_runtime()
                    .agent_runtime_name(&spec.name)
                    .agent_runtime_artifact(artifact)
                    .role_arn(&wanted.role_arn)
                    .network_configuration(network)
                    .protocol_configuration(protocol)
                    .set_environment_variables(environment)
                    .set_description(spec.description.clone())
                    .set_tags((!spec.tags.is_empty()).then(|| spec.tags.clone().into_iter().collect()))
                    .send()
                    .await
                    .or_deploy_error("CreateAgentRuntime")?;
            }
            Some(runtime) => {
                let held = self.get_runtime(runtime.agent_runtime_id()).await?;
                // A failed version holds the spec's configuration but will never serve: a
                // new version is the only way forward for the same spec.
                let failed = matches!(
                    held.status(),
                    AgentRuntimeStatus::CreateFailed | AgentRuntimeStatus::UpdateFailed
                );
                if failed || RuntimeConfig::held_by(&held) != wanted {
                    self.client
                        .update_agent_runtime()
                        .agent_runtime_id(runtime.agent_runtime_id())
                        .agent_runtime_artifact(artifact)
                        .role_arn(&wanted.role_arn)
                        .network_configuration(network)
                        .protocol_configuration(protocol)
                        .set_environment_variables(environment)
                        .set_description(spec.description.clone())
                        .send()
                        .await
                        .or_deploy_error("UpdateAgentRuntime")?;
                }
            }
        }
        Ok(())
    }

    async fn prepare(&self, spec: &AgentSpec) -> Result<Readiness, DeployError> {
        let runtime = self.runtime(&spec.name).await?;
        let held = self.get_runtime(runtime.agent_runtime_id()).await?;
        match held.status() {
            AgentRuntimeStatus::Ready => Ok(Readiness::Ready),
            status @ (AgentRuntimeStatus::CreateFailed | AgentRuntimeStatus::UpdateFailed) => {
                Err(DeployError::Failed(format!(
                    "the runtime {} is {}: {}",
                    spec.name,
                    status.as_str(),
                    held.failure_reason().unwrap_or("no reason given")
                )))
            }
            status => Ok(Readiness::Pending(status.as_str().to_owned())),
        }
    }

    async fn publish(&self, spec: &AgentSpec) -> Result<Published, DeployError> {
        let deadline = Deadline::after(self.wait_limit);
        let runtime = self.runtime(&spec.name).await?;
        self.route(spec, &runtime, runtime.agent_runtime_version(), deadline).await
    }

    async fn point_to(&self, spec: &AgentSpec, version: &str) -> Result<Published, DeployError> {
        let deadline = Deadline::after(self.wait_limit);
        let runtime = self.runtime(&spec.name).await?;
        self.route(spec, &runtime, version, deadline).await
    }

    /// Nothing to restore: a runtime's versions are immutable, so the version the
    /// snapshot's endpoint served still holds its configuration, and the endpoint is what
    /// serves; the rollback's `point_to` puts it back on that version.
    async fn restore(&self, _spec: &AgentSpec, _snapshot: &Snapshot) -> Result<(), DeployError> {
        Ok(())
    }
}
