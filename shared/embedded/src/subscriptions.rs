use rusqlite::params;
use tdev_domain::events::{Subscription, SubscriptionStore};
use tdev_domain::ports::StoreError;

use crate::{SqliteStore, db_error};

/// Subscriptions are stored as their JSON document.
impl SubscriptionStore for SqliteStore {
    async fn insert_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let doc = serde_json::to_string(subscription).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let inserted = self
            .conn()
            .execute("INSERT INTO subscriptions (id, doc) VALUES (?1, ?2)", params![subscription.id, doc]);
        match inserted {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Conflict(format!("subscription {} exists", subscription.id)))
            }
            Err(e) => Err(db_error(e)),
        }
    }

    async fn list_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        let conn = self.conn();
        let mut statement =
            conn.prepare_cached("SELECT id, doc FROM subscriptions ORDER BY id").map_err(db_error)?;
        let rows = statement
            .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))
            .map_err(db_error)?;
        rows.map(|row| {
            let (id, doc) = row.map_err(db_error)?;
            serde_json::from_str(&doc).map_err(|e| StoreError::Corrupt(format!("subscription {id}: {e}")))
        })
        .collect()
    }

    async fn delete_subscription(&self, id: &str) -> Result<(), StoreError> {
        let deleted =
            self.conn().execute("DELETE FROM subscriptions WHERE id = ?1", [id]).map_err(db_error)?;
        if deleted == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }
}
