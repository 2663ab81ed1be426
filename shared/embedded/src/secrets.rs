use rusqlite::{OptionalExtension, TransactionBehavior, params};
use tdev_domain::ports::{SecretStore, SecretVersion, SecretVersions, StoreError};

use crate::{SqliteStore, db_error};

/// Secrets with Secrets Manager's staging: one current version, one previous.
impl SecretStore for SqliteStore {
    async fn secret_versions(&self, name: &str) -> Result<SecretVersions, StoreError> {
        let conn = self.conn();
        let stage = |stage: &str| {
            conn.query_row(
                "SELECT version_id, value FROM secret_versions WHERE name = ?1 AND stage = ?2",
                [name, stage],
                |row| Ok(SecretVersion { version_id: row.get(0)?, value: row.get(1)? }),
            )
            .optional()
            .map_err(db_error)
        };
        let current = stage("current")?.ok_or(StoreError::NotFound)?;
        Ok(SecretVersions { current, previous: stage("previous")? })
    }

    async fn put_secret(&self, name: &str, value: &str) -> Result<String, StoreError> {
        let version_id = uuid::Uuid::new_v4().to_string();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_error)?;
        tx.execute("UPDATE secret_versions SET stage = NULL WHERE name = ?1 AND stage = 'previous'", [name])
            .map_err(db_error)?;
        tx.execute(
            "UPDATE secret_versions SET stage = 'previous' WHERE name = ?1 AND stage = 'current'",
            [name],
        )
        .map_err(db_error)?;
        tx.execute(
            "INSERT INTO secret_versions (name, version_id, value, stage, seq)
             VALUES (?1, ?2, ?3, 'current', COALESCE((SELECT MAX(seq) FROM secret_versions WHERE name = ?1), 0) + 1)",
            params![name, version_id, value],
        )
        .map_err(db_error)?;
        tx.commit().map_err(db_error)?;
        Ok(version_id)
    }
}
