//! API keys: one item each, listed through `gsi1` (see the schema in the crate docs).

use aws_sdk_dynamodb::types::ReturnValue;
use jiff::Timestamp;
use tdev_domain::auth::{ApiKey, ApiKeyId, ApiKeyStore, KeyName, RateLimit, Scopes};
use tdev_domain::ports::StoreError;

use crate::AwsStore;
use crate::attrs::{self, Item, n, s};
use crate::items::{GSI, unless_refused};

const SK: &str = "KEY";
const GSI_PK: &str = "KEYS";

fn pk(id: &ApiKeyId) -> String {
    format!("KEY#{id}")
}

/// Sorts by creation time, then id. Zero-padding makes string order numeric order; a
/// pre-1970 `created_at` (never issued) would sort first.
fn gsi1sk(key: &ApiKey) -> String {
    let micros = u64::try_from(key.created_at.as_microsecond()).unwrap_or(0);
    format!("{micros:020}#{}", key.id)
}

fn to_item(key: &ApiKey) -> Item {
    let mut item = Item::from([
        ("pk".to_owned(), s(pk(&key.id))),
        ("sk".to_owned(), s(SK)),
        ("gsi1pk".to_owned(), s(GSI_PK)),
        ("gsi1sk".to_owned(), s(gsi1sk(key))),
        ("id".to_owned(), s(key.id.as_str())),
        ("name".to_owned(), s(key.name.as_str())),
        ("scopes".to_owned(), s(key.scopes.to_space_separated())),
        ("secret_hash".to_owned(), s(&key.secret_hash)),
        ("created_at".to_owned(), s(key.created_at.to_string())),
    ]);
    if let Some(at) = key.expires_at {
        item.insert("expires_at".to_owned(), s(at.to_string()));
    }
    if let Some(at) = key.revoked_at {
        item.insert("revoked_at".to_owned(), s(at.to_string()));
    }
    if let Some(limit) = key.rate_limit {
        item.insert("rate_capacity".to_owned(), n(limit.capacity));
        item.insert("rate_refill_per_minute".to_owned(), n(limit.refill_per_minute));
    }
    item
}

fn from_item(item: &Item) -> Result<ApiKey, StoreError> {
    let id = attrs::string(item, "id")?;
    let corrupt = |what: String| StoreError::Corrupt(format!("API key {id}: {what}"));
    let timestamp = |name: &str| -> Result<Option<Timestamp>, StoreError> {
        attrs::optional_string(item, name)?
            .map(|raw| raw.parse().map_err(|e| corrupt(format!("{name} {raw:?}: {e}"))))
            .transpose()
    };
    let rate_limit = match (
        attrs::optional_number(item, "rate_capacity")?,
        attrs::optional_number(item, "rate_refill_per_minute")?,
    ) {
        (Some(capacity), Some(refill_per_minute)) => Some(RateLimit { capacity, refill_per_minute }),
        (None, None) => None,
        _ => {
            return Err(corrupt("has only one of rate_capacity and rate_refill_per_minute".into()));
        }
    };
    Ok(ApiKey {
        id: ApiKeyId::parse(id).ok_or_else(|| corrupt("the id is malformed".into()))?,
        name: KeyName::new(attrs::string(item, "name")?).map_err(|e| corrupt(format!("name: {e}")))?,
        scopes: Scopes::parse_space_separated(attrs::string(item, "scopes")?)
            .map_err(|e| corrupt(format!("scopes: {e}")))?,
        secret_hash: attrs::string(item, "secret_hash")?.to_owned(),
        created_at: timestamp("created_at")?.ok_or_else(|| corrupt("created_at is missing".into()))?,
        expires_at: timestamp("expires_at")?,
        revoked_at: timestamp("revoked_at")?,
        rate_limit,
    })
}

impl ApiKeyStore for AwsStore {
    async fn insert_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.insert(to_item(key), || format!("an API key with id {} exists", key.id)).await
    }

    async fn get_key(&self, id: &ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        self.get(pk(id), SK).await?.as_ref().map(from_item).transpose()
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let items = self.query(Some(GSI), GSI_PK.to_owned(), true).await?;
        items.iter().map(from_item).collect()
    }

    async fn revoke_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<ApiKey, StoreError> {
        let result = self
            .update_at(&self.table, pk(id), SK)
            .update_expression("SET revoked_at = if_not_exists(revoked_at, :at)")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", s(at.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match unless_refused(result)? {
            Some(output) => from_item(output.attributes.as_ref().ok_or_else(|| {
                StoreError::Corrupt(format!("revoking API key {id} returned no attributes"))
            })?),
            None => Err(StoreError::NotFound),
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;
    use tdev_domain::auth::{NewApiKeyRequest, Scope};

    use super::*;

    fn key() -> ApiKey {
        let now = Timestamp::from_microsecond(1_700_000_000_123_456).unwrap();
        let request = NewApiKeyRequest {
            name: "ci".into(),
            scopes: vec!["read".into(), "agents:write".into()],
            expires_at: Some(now + SignedDuration::from_hours(1)),
            rate_limit: Some(RateLimit { capacity: 3, refill_per_minute: 9 }),
        };
        request.validate(now).unwrap().issue(now).0
    }

    #[test]
    fn an_item_round_trips_every_field_and_holds_no_plaintext() {
        let mut key = key();
        assert_eq!(from_item(&to_item(&key)).unwrap(), key);
        key.rate_limit = None;
        key.expires_at = None;
        key.revoked_at = Some(key.created_at + SignedDuration::from_nanos(1));
        let item = to_item(&key);
        assert_eq!(from_item(&item).unwrap(), key);
        assert_eq!(item["scopes"], s("read agents:write"));
        assert_eq!(item["gsi1sk"], s(format!("00001700000000123456#{}", key.id)));
        assert!(!item.contains_key("rate_capacity"));
        assert_eq!(key.scopes, Scopes::new([Scope::Read, Scope::AgentsWrite]));
    }

    #[test]
    fn unreadable_items_are_corrupt() {
        let good = to_item(&key());
        let cases: [(&str, Option<aws_sdk_dynamodb::types::AttributeValue>); 5] = [
            ("scopes", Some(s("read root"))),
            ("created_at", Some(s("yesterday"))),
            ("created_at", None),
            ("rate_capacity", None),
            ("name", Some(n(7))),
        ];
        for (name, value) in cases {
            let mut item = good.clone();
            match value {
                Some(value) => item.insert(name.to_owned(), value),
                None => item.remove(name),
            };
            let result = from_item(&item);
            assert!(matches!(result, Err(StoreError::Corrupt(_))), "{name}: {result:?}");
        }
    }
}
