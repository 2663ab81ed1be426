//! Reading and writing DynamoDB attribute values. Anything unexpected in a stored item
//! is `Corrupt`, naming the attribute.

use std::collections::HashMap;
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;
use tdev_domain::ports::StoreError;

pub(crate) type Item = HashMap<String, AttributeValue>;

/// A record as the JSON document its item keeps in `doc`.
pub(crate) fn doc(value: &impl serde::Serialize) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(value).map(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The record in `item`'s `doc`; `what` names it if it does not read.
pub(crate) fn from_doc<T: serde::de::DeserializeOwned>(what: &str, item: &Item) -> Result<T, StoreError> {
    serde_json::from_str(string(item, "doc")?).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A string attribute that must be there.
pub(crate) fn string<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    optional_string(item, name)?.ok_or_else(|| missing(name))
}

/// A string attribute that may be absent.
pub(crate) fn optional_string<'a>(item: &'a Item, name: &str) -> Result<Option<&'a str>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(true)) => Ok(None),
        Some(AttributeValue::S(value)) => Ok(Some(value)),
        Some(_) => Err(StoreError::Corrupt(format!("attribute {name} is not a string"))),
    }
}

/// A number attribute that may be absent, parsed as `T`.
pub(crate) fn optional_number<T: FromStr>(item: &Item, name: &str) -> Result<Option<T>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(true)) => Ok(None),
        Some(AttributeValue::N(value)) => value
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Corrupt(format!("attribute {name} is not a valid number: {value}"))),
        Some(_) => Err(StoreError::Corrupt(format!("attribute {name} is not a number"))),
    }
}

/// A number attribute that must be there.
pub(crate) fn number<T: FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    optional_number(item, name)?.ok_or_else(|| missing(name))
}

fn missing(name: &str) -> StoreError {
    StoreError::Corrupt(format!("attribute {name} is missing"))
}
