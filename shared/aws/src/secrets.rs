//! Secrets in Secrets Manager: the `AWSCURRENT` and `AWSPREVIOUS` stages of one secret.

use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use tdev_domain::ports::{SecretStore, SecretVersion, SecretVersions, StoreError};

use crate::AwsStore;

const CURRENT: &str = "AWSCURRENT";
const PREVIOUS: &str = "AWSPREVIOUS";

impl AwsStore {
    /// The version at `stage`; `Ok(None)` when Secrets Manager finds nothing, which is
    /// its answer both for a missing secret and for a stage no version holds.
    async fn secret_at(&self, name: &str, stage: &str) -> Result<Option<SecretVersion>, StoreError> {
        let result = self.secrets.get_secret_value().secret_id(name).version_stage(stage).send().await;
        let output = match result {
            Ok(output) => output,
            Err(e)
                if e.as_service_error().is_some_and(GetSecretValueError::is_resource_not_found_exception) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(StoreError::unavailable(e)),
        };
        let corrupt = |what: &str| StoreError::Corrupt(format!("secret {name} at {stage}: {what}"));
        Ok(Some(SecretVersion {
            version_id: output.version_id.ok_or_else(|| corrupt("no version id"))?,
            // A binary secret is not one of ours: we only ever write strings.
            value: output.secret_string.ok_or_else(|| corrupt("no string value"))?,
        }))
    }

    async fn current_secret(&self, name: &str) -> Result<SecretVersion, StoreError> {
        self.secret_at(name, CURRENT).await?.ok_or(StoreError::NotFound)
    }

    /// Makes `value` the current version of an existing secret. `Ok(None)`: no such secret.
    async fn put_secret_value(&self, name: &str, value: &str) -> Result<Option<String>, StoreError> {
        // The SDK fills in `ClientRequestToken`, which becomes the new version's id.
        let result = self.secrets.put_secret_value().secret_id(name).secret_string(value).send().await;
        match result {
            Ok(output) => output
                .version_id
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt(format!("writing secret {name} returned no version id"))),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => Ok(None),
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }
}

impl SecretStore for AwsStore {
    async fn secret_versions(&self, name: &str) -> Result<SecretVersions, StoreError> {
        let mut current = self.current_secret(name).await?;
        let mut previous = self.secret_at(name, PREVIOUS).await?;
        // Two reads are not one snapshot: if a rotation landed between them, the version
        // read as current is now previous. Reading current again restores a matching pair.
        if previous.as_ref().is_some_and(|p| p.version_id == current.version_id) {
            let newer = self.current_secret(name).await?;
            if newer.version_id == current.version_id {
                // Nothing newer yet both stages on one version: AWS never does this, but
                // the pair must still name two versions.
                previous = None;
            }
            current = newer;
        }
        Ok(SecretVersions { current, previous })
    }

    async fn put_secret(&self, name: &str, value: &str) -> Result<String, StoreError> {
        if let Some(version) = self.put_secret_value(name, value).await? {
            return Ok(version);
        }
        let result = self.secrets.create_secret().name(name).secret_string(value).send().await;
        match result {
            Ok(output) => output
                .version_id
                .ok_or_else(|| StoreError::Corrupt(format!("creating secret {name} returned no version id"))),
            // Another writer created it first: ours becomes the next version.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_exists_exception()) => {
                self.put_secret_value(name, value).await?.ok_or_else(|| {
                    StoreError::Conflict(format!("secret {name} was created and deleted while being written"))
                })
            }
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }
}
