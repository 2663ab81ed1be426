//! The table itself: creating it where no template does (the local stack on moto, tests)
//! and reporting its status for health.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableDescription, TableStatus, TimeToLiveSpecification,
    TimeToLiveStatus,
};
use tdev_domain::ports::StoreError;

use crate::AwsStore;
use crate::items::GSI;

/// Real tables take seconds to a minute to become ACTIVE; moto's are ACTIVE at once.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);
const MAX_POLL: Duration = Duration::from_secs(2);

pub(crate) enum Status {
    Active,
    Other(String),
}

impl AwsStore {
    /// Creates the table if it does not exist (schema in the crate docs), waits until it
    /// and its index are ACTIVE, and turns on TTL; likewise the deployments table (no TTL)
    /// when it is a table of its own. Safe to call again, and from several processes at
    /// once. Production tables come from the SAM template instead.
    pub async fn ensure_table(&self) -> Result<(), StoreError> {
        self.ensure_table_named(&self.table).await?;
        self.ensure_ttl().await?;
        if self.deployments_table != self.table {
            self.ensure_table_named(&self.deployments_table).await?;
        }
        Ok(())
    }

    async fn ensure_table_named(&self, table: &str) -> Result<(), StoreError> {
        if self.describe_table(table).await?.is_none() {
            self.create_table(table).await?;
        }
        self.wait_until_active(table).await
    }

    /// `Err` holds a description of the failure, for the health report.
    pub(crate) async fn table_status(&self) -> Result<Status, String> {
        match self.dynamodb.describe_table().table_name(&self.table).send().await {
            Ok(output) => Ok(match output.table.as_ref().and_then(|t| t.table_status()) {
                Some(TableStatus::Active) => Status::Active,
                Some(other) => Status::Other(other.as_str().to_owned()),
                None => Status::Other("unknown".to_owned()),
            }),
            Err(e) => Err(DisplayErrorContext(&e).to_string()),
        }
    }

    /// `None` if there is no such table.
    async fn describe_table(&self, table: &str) -> Result<Option<TableDescription>, StoreError> {
        match self.dynamodb.describe_table().table_name(table).send().await {
            Ok(output) => Ok(output.table),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => Ok(None),
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }

    async fn create_table(&self, table: &str) -> Result<(), StoreError> {
        // The builders fail only on a missing required field, i.e. a bug here.
        let string_attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(StoreError::unavailable)
        };
        let key = |name: &str, key_type: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(StoreError::unavailable)
        };
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(GSI)
            .key_schema(key("gsi1pk", KeyType::Hash)?)
            .key_schema(key("gsi1sk", KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .map_err(StoreError::unavailable)?;
        let result = self
            .dynamodb
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(string_attr("pk")?)
            .attribute_definitions(string_attr("sk")?)
            .attribute_definitions(string_attr("gsi1pk")?)
            .attribute_definitions(string_attr("gsi1sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .global_secondary_indexes(gsi)
            .send()
            .await;
        match result {
            Ok(_) => {
                tracing::info!(table, "created the DynamoDB table");
                Ok(())
            }
            // Someone else created it since we looked: waiting for ACTIVE covers us both.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => Ok(()),
            Err(e) => Err(StoreError::unavailable(e)),
        }
    }

    async fn wait_until_active(&self, table_name: &str) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            // A table just created may not be visible yet, so "no table" means wait too.
            let table = self.describe_table(table_name).await?;
            let status = table.as_ref().and_then(|t| t.table_status());
            let indexes_active = table.as_ref().is_some_and(|t| {
                t.global_secondary_indexes()
                    .iter()
                    .all(|index| index.index_status() == Some(&IndexStatus::Active))
            });
            if status == Some(&TableStatus::Active) && indexes_active {
                return Ok(());
            }
            if started.elapsed() > ACTIVE_TIMEOUT {
                let status = status.map_or("absent", |s| s.as_str());
                return Err(StoreError::unavailable(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("table {table_name} is still {status} after {ACTIVE_TIMEOUT:?}"),
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    async fn ensure_ttl(&self) -> Result<(), StoreError> {
        let output = self
            .dynamodb
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        let status = output.time_to_live_description.as_ref().and_then(|d| d.time_to_live_status());
        // Enabling again is an error on AWS ("TimeToLive is already enabled").
        if matches!(status, Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)) {
            return Ok(());
        }
        let spec = TimeToLiveSpecification::builder()
            .attribute_name("ttl")
            .enabled(true)
            .build()
            .map_err(StoreError::unavailable)?;
        self.dynamodb
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }
}
