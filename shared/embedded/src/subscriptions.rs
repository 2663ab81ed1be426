use rusqlite::params;
use tdev_domain::events::{Subscription, SubscriptionStore};
use tdev_domain::ports::StoreError;

use crate::{SqliteStore, execute, insert, to_doc};

/// Subscriptions are stored as their JSON document.
impl SubscriptionStore for SqliteStore {
    async fn insert_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let sql = "INSERT INTO subscriptions (id, doc) VALUES (?1, ?2)";
        let row = params![subscription.id, to_doc(subscription)?];
        insert(&self.conn(), sql, row, || format!("subscription {} exists", subscription.id))
    }

    async fn list_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        self.docs_by_id("subscriptions", "subscription")
    }

    async fn delete_subscription(&self, id: &str) -> Result<(), StoreError> {
        let deleted = execute(&self.conn(), "DELETE FROM subscriptions WHERE id = ?1", [id])?;
        if deleted == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }
}
