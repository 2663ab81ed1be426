//! Subscriptions: one item each, `pk = "SUB#<id>"`, `sk = "SUB"`, listed through `gsi1`
//! (`gsi1pk = "SUBSCRIPTIONS"`, `gsi1sk = <id>`); the subscription is a JSON document in
//! `doc`. Insert is create-only; delete is conditional on the item existing.

use tdev_domain::events::{Subscription, SubscriptionStore};
use tdev_domain::ports::StoreError;

use crate::AwsStore;
use crate::attrs::{self, Item, s};
use crate::items::GSI;

const SK: &str = "SUB";
const GSI_PK: &str = "SUBSCRIPTIONS";

fn pk(id: &str) -> String {
    format!("SUB#{id}")
}

impl SubscriptionStore for AwsStore {
    async fn insert_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let item = Item::from([
            ("pk".to_owned(), s(pk(&subscription.id))),
            ("sk".to_owned(), s(SK)),
            ("gsi1pk".to_owned(), s(GSI_PK)),
            ("gsi1sk".to_owned(), s(&subscription.id)),
            ("doc".to_owned(), attrs::doc(subscription)?),
        ]);
        self.insert(item, || format!("subscription {} exists", subscription.id)).await
    }

    async fn list_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        let items = self.query(Some(GSI), GSI_PK.to_owned(), true).await?;
        items.iter().map(|item| attrs::from_doc("subscription document", item)).collect()
    }

    async fn delete_subscription(&self, id: &str) -> Result<(), StoreError> {
        self.delete_existing(pk(id), SK).await
    }
}
