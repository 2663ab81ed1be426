//! The item operations every store here is made of: a consistent read, a conditional
//! write, a create that never overwrites, a listing through a key, and a delete of an
//! item that must exist.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::builders::DeleteItemFluentBuilder;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use jiff::Timestamp;
use tdev_domain::ports::StoreError;

use crate::AwsStore;
use crate::attrs::{Item, n, s};

/// The index that lists records of one kind.
pub(crate) const GSI: &str = "gsi1";

/// The item of a record kept whole in `doc` at `pk`/`sk`, with the `version` its updates
/// are conditioned on ([`AwsStore::next_version_with_events`]).
pub(crate) fn versioned_item(pk: String, sk: &str, version: u64, doc: AttributeValue) -> Item {
    Item::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(sk)),
        ("version".to_owned(), n(version)),
        ("doc".to_owned(), doc),
    ])
}

/// The attributes that list a record under `gsi1pk = list` by age: `gsi1sk = <created µs,
/// 20 digits>#<id>` (a time before 1970 sorts as 1970).
pub(crate) fn listed_by_age(list: &str, created: Timestamp, id: &str) -> [(String, AttributeValue); 2] {
    let micros = u64::try_from(created.as_microsecond()).unwrap_or(0);
    [("gsi1pk".to_owned(), s(list)), ("gsi1sk".to_owned(), s(format!("{micros:020}#{id}")))]
}

/// Every item `request` finds, page after page: the paginator sends each page's
/// `LastEvaluatedKey` as the next one's `ExclusiveStartKey` (a page holds at most 1 MB).
async fn every_page(request: QueryFluentBuilder) -> Result<Vec<Item>, StoreError> {
    request.into_paginator().items().send().try_collect().await.map_err(StoreError::unavailable)
}

/// A conditional write's answer: its output when it was made, `None` when its condition
/// refused it, `Err` for any other failure.
pub(crate) fn unless_refused<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<Option<T>, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(output) => Ok(Some(output)),
        Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(None),
        Err(e) => Err(StoreError::unavailable(e)),
    }
}

/// One conditional Put of a transaction.
pub(crate) fn put(
    table: &str,
    item: Item,
    condition: &str,
    values: &[(&str, AttributeValue)],
) -> Result<TransactWriteItem, StoreError> {
    let mut put = Put::builder().table_name(table).set_item(Some(item)).condition_expression(condition);
    for (name, value) in values {
        put = put.expression_attribute_values(*name, value.clone());
    }
    // Fails only without a table name or an item: a bug here.
    Ok(TransactWriteItem::builder().put(put.build().map_err(StoreError::unavailable)?).build())
}

impl AwsStore {
    /// Writes `items` all or nothing. A cancelled transaction is `Conflict`, named by
    /// `lost[i]` for the first item `i` whose condition failed.
    pub(crate) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        lost: &[String],
    ) -> Result<(), StoreError> {
        let result = self.dynamodb.transact_write_items().set_transact_items(Some(items)).send().await;
        let Err(error) = result else { return Ok(()) };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) = error.as_service_error()
        else {
            return Err(StoreError::unavailable(error));
        };
        let codes: Vec<_> =
            cancelled.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None")).collect();
        if let Some(i) = codes.iter().position(|code| *code == "ConditionalCheckFailed") {
            return Err(StoreError::Conflict(
                lost.get(i).cloned().unwrap_or_else(|| "a condition failed".into()),
            ));
        }
        // A concurrent transaction on the same items (or a moto without reasons) lost a race.
        if codes.is_empty() || codes.contains(&"TransactionConflict") {
            return Err(StoreError::Conflict(format!("a concurrent write won: {codes:?}")));
        }
        Err(StoreError::unavailable(error))
    }

    /// The item at `pk`/`sk`, read strongly consistently (a write is seen by the next read).
    pub(crate) async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        self.get_in(&self.table, pk, sk).await
    }

    /// [`Self::get`] in `table`.
    pub(crate) async fn get_in(&self, table: &str, pk: String, sk: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .dynamodb
            .get_item()
            .table_name(table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::unavailable)?;
        Ok(output.item)
    }

    /// Puts `item` if `condition` holds (with `values` bound); `Ok(false)` if it did not.
    pub(crate) async fn put_if(
        &self,
        item: Item,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<bool, StoreError> {
        self.put_if_in(&self.table, item, condition, values).await
    }

    /// [`Self::put_if`] in `table`.
    pub(crate) async fn put_if_in(
        &self,
        table: &str,
        item: Item,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<bool, StoreError> {
        let mut request =
            self.dynamodb.put_item().table_name(table).set_item(Some(item)).condition_expression(condition);
        for (name, value) in values {
            request = request.expression_attribute_values(*name, value.clone());
        }
        Ok(unless_refused(request.send().await)?.is_some())
    }

    /// Puts `item` unless an item with its key exists; `Ok(false)` if one does.
    pub(crate) async fn create(&self, item: Item) -> Result<bool, StoreError> {
        self.put_if(item, "attribute_not_exists(pk)", &[]).await
    }

    /// Puts `item` unless an item with its key exists: `Conflict(exists())` if one does.
    pub(crate) async fn insert(&self, item: Item, exists: impl FnOnce() -> String) -> Result<(), StoreError> {
        if self.create(item).await? { Ok(()) } else { Err(StoreError::Conflict(exists())) }
    }

    /// An UpdateItem of the item at `pk`/`sk` in `table`, for the caller to finish.
    pub(crate) fn update_at(&self, table: &str, pk: String, sk: &str) -> UpdateItemFluentBuilder {
        self.dynamodb.update_item().table_name(table).key("pk", s(pk)).key("sk", s(sk))
    }

    /// A DeleteItem of the item at `pk`/`sk` in `table`, for the caller to finish.
    pub(crate) fn delete_at(&self, table: &str, pk: String, sk: &str) -> DeleteItemFluentBuilder {
        self.dynamodb.delete_item().table_name(table).key("pk", s(pk)).key("sk", s(sk))
    }

    /// The records listed under `gsi1pk = partition` in `table`, newest sort key first
    /// or oldest (`forward`), whose string attributes are `equal` to the values given
    /// (filtered on the server, so less is transferred), each read by `read` (which may
    /// refuse it too), page after page until `limit` are kept or the partition ends.
    pub(crate) async fn list_under<T>(
        &self,
        table: &str,
        partition: &str,
        forward: bool,
        equal: &[(&str, Option<&str>)],
        limit: usize,
        read: impl Fn(&Item) -> Result<Option<T>, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        const PAGE: usize = 100;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut request = self
            .dynamodb
            .query()
            .table_name(table)
            .index_name(GSI)
            .key_condition_expression("gsi1pk = :pk")
            .expression_attribute_values(":pk", s(partition))
            .scan_index_forward(forward);
        let mut conditions = Vec::new();
        for (name, value) in equal {
            if let Some(value) = value {
                conditions.push(format!("#{name} = :{name}"));
                request = request
                    .expression_attribute_names(format!("#{name}"), *name)
                    .expression_attribute_values(format!(":{name}"), s(*value));
            }
        }
        // A page's limit counts the items read, before the filter.
        let page = if conditions.is_empty() { limit.min(PAGE) } else { PAGE };
        request = request.limit(i32::try_from(page).unwrap_or(1));
        if !conditions.is_empty() {
            request = request.filter_expression(conditions.join(" AND "));
        }
        let mut items = request.into_paginator().items().send();
        let mut kept = Vec::new();
        while kept.len() < limit
            && let Some(item) = items.try_next().await.map_err(StoreError::unavailable)?
        {
            kept.extend(read(&item)?);
        }
        Ok(kept)
    }

    /// Every item whose `key` (`pk`, or `gsi1pk` with `index`) is `value`, in sort-key
    /// order (`forward`) or reverse; a table query is strongly consistent.
    pub(crate) async fn query(
        &self,
        index: Option<&str>,
        value: String,
        forward: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let key = if index.is_some() { "gsi1pk" } else { "pk" };
        let request = self
            .dynamodb
            .query()
            .table_name(&self.table)
            .set_index_name(index.map(str::to_owned))
            .key_condition_expression(format!("{key} = :key"))
            .expression_attribute_values(":key", s(value))
            .scan_index_forward(forward)
            .set_consistent_read(index.is_none().then_some(true));
        every_page(request).await
    }

    /// Every item at `pk` in `table` whose `sk` begins with `prefix`, in sort-key order,
    /// read strongly consistently.
    pub(crate) async fn query_prefix(
        &self,
        table: &str,
        pk: String,
        prefix: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let request = self
            .dynamodb
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true);
        every_page(request).await
    }

    /// Deletes the item at `pk`/`sk`; `NotFound` if there is none.
    pub(crate) async fn delete_existing(&self, pk: String, sk: &str) -> Result<(), StoreError> {
        let result =
            self.delete_at(&self.table, pk, sk).condition_expression("attribute_exists(pk)").send().await;
        unless_refused(result)?.map(drop).ok_or(StoreError::NotFound)
    }
}
