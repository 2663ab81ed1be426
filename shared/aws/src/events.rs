//! The event log: one item per event, append-only, partitioned by UTC day:
//! `pk = "EVENT#<yyyy-mm-dd of at>"`, `sk = "<at, 20-digit ns>#<id>"`, with `id`, `type`,
//! `at`, `subject` and the JSON `doc`. Listing is a Query per day between the bounds,
//! oldest day first, until the limit.
//!
//! The time window is [`EventFilter::window`]. Each day in it costs a Query, so a wide
//! window is slow when few events match.
//!
//! In the order appended: by `sk`, whose time is stamped by the writer, so an event is
//! only handed to a stream once [`SETTLE`] old — a writer whose clock is behind, or whose
//! write is slow, still lands before the cursor passes it. The cursor is the `sk` of the
//! last event given, or, after a read that found nothing, `<time>#` of the time up to
//! which it looked.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use tdev_domain::events::{Event, EventFilter, EventPage, EventStore};
use tdev_domain::ports::StoreError;

use crate::attrs::{self, Item, s};
use crate::{AwsStore, sortable};

/// Items read per page at most: the listing stops at its limit.
const PAGE: usize = 100;

fn pk(day: Date) -> String {
    format!("EVENT#{day}")
}

fn day_of(at: Timestamp) -> Date {
    at.to_zoned(TimeZone::UTC).date()
}

pub(crate) fn to_item(event: &Event) -> Result<Item, StoreError> {
    let doc = attrs::doc(event)?;
    Ok(Item::from([
        ("pk".to_owned(), s(pk(day_of(event.time)))),
        ("sk".to_owned(), s(format!("{}#{}", sortable(event.time), event.id))),
        ("id".to_owned(), s(&event.id)),
        ("type".to_owned(), s(&event.kind)),
        ("at".to_owned(), s(event.time.to_string())),
        ("subject".to_owned(), s(&event.subject)),
        ("doc".to_owned(), doc),
    ]))
}

fn from_item(item: &Item) -> Result<Event, StoreError> {
    attrs::from_doc("event", item)
}

/// How old an event must be before a stream is given it (see the module docs).
pub const SETTLE: SignedDuration = SignedDuration::from_secs(2);

/// A cursor's `sk` and its day; `NotFound` if it is not one.
fn parse_cursor(cursor: &str) -> Result<(String, Date), StoreError> {
    let (time, _) = cursor.split_once('#').ok_or(StoreError::NotFound)?;
    let ns: i128 = match time.len() {
        20 if time.bytes().all(|b| b.is_ascii_digit()) => time.parse().map_err(|_| StoreError::NotFound)?,
        _ => return Err(StoreError::NotFound),
    };
    let at = Timestamp::from_nanosecond(ns).map_err(|_| StoreError::NotFound)?;
    // No cursor given is later than now (a day of clock skew allowed).
    if at > Timestamp::now().checked_add(SignedDuration::from_hours(24)).unwrap_or(Timestamp::MAX) {
        return Err(StoreError::NotFound);
    }
    Ok((cursor.to_owned(), day_of(at)))
}

impl AwsStore {
    /// Puts `item` if `condition` holds (with `values`), and appends `events` with it, all
    /// or nothing (one TransactWriteItems): `Conflict(lost())` when the condition fails.
    async fn put_with_events(
        &self,
        item: Item,
        condition: &str,
        values: &[(&str, aws_sdk_dynamodb::types::AttributeValue)],
        events: &[Event],
        lost: impl FnOnce() -> String,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return if self.put_if(item, condition, values).await? {
                Ok(())
            } else {
                Err(StoreError::Conflict(lost()))
            };
        }
        let mut writes = vec![crate::items::put(&self.table, item, condition, values)?];
        for event in events {
            writes.push(crate::items::put(&self.table, to_item(event)?, "attribute_not_exists(pk)", &[])?);
        }
        self.transact(writes, &[lost()]).await
    }

    /// Creates `item` (none at its key yet) with `events`: `Conflict(exists())` if one is.
    pub(crate) async fn create_with_events(
        &self,
        item: Item,
        events: &[Event],
        exists: impl FnOnce() -> String,
    ) -> Result<(), StoreError> {
        self.put_with_events(item, "attribute_not_exists(pk)", &[], events, exists).await
    }

    /// Puts `item` at `version` over the stored `version - 1`, with `events`:
    /// `Conflict(changed())` if the stored one moved on.
    pub(crate) async fn next_version_with_events(
        &self,
        item: Item,
        version: u64,
        events: &[Event],
        changed: impl FnOnce() -> String,
    ) -> Result<(), StoreError> {
        let expected = attrs::n(version.saturating_sub(1));
        self.put_with_events(item, "version = :expected", &[(":expected", expected)], events, changed).await
    }
}

impl EventStore for AwsStore {
    async fn events_after(&self, cursor: Option<&str>, limit: usize) -> Result<EventPage, StoreError> {
        let until = Timestamp::now().checked_sub(SETTLE).unwrap_or(Timestamp::MIN);
        let (mut after, mut day) = match cursor {
            Some(cursor) => parse_cursor(cursor)?,
            None => (format!("{}#", sortable(until)), day_of(until)),
        };
        let last_day = day_of(until);
        let mut page = EventPage { events: Vec::new(), cursor: after.clone() };
        while page.events.len() < limit && day <= last_day {
            let mut items = self
                .dynamodb
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(pk(day)))
                .expression_attribute_values(":from", s(&after))
                .expression_attribute_values(":to", s(sortable(until)))
                .consistent_read(true)
                .limit(i32::try_from((limit - page.events.len()).min(PAGE)).unwrap_or(1))
                .into_paginator()
                .items()
                .send();
            while let Some(item) = items.try_next().await.map_err(StoreError::unavailable)? {
                let sk = attrs::string(&item, "sk")?.to_owned();
                if sk == after {
                    continue; // BETWEEN includes the cursor's own event.
                }
                after = sk.clone();
                page.events.push((sk, from_item(&item)?));
                if page.events.len() == limit {
                    break;
                }
            }
            if page.events.len() < limit {
                day = day.tomorrow().map_err(|e| StoreError::Corrupt(format!("event day: {e}")))?;
            }
        }
        // Nothing new up to `until`: the next read starts there, not at the last event
        // given, so a quiet log is not walked day by day again at every read.
        let settled = format!("{}#", sortable(until));
        page.cursor = if page.events.is_empty() && settled > after { settled } else { after };
        Ok(page)
    }

    async fn append_event(&self, event: &Event) -> Result<(), StoreError> {
        self.insert(to_item(event)?, || format!("event {} exists", event.id)).await
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        let (since, until) = filter.window(Timestamp::now());
        if filter.limit == 0 || since >= until {
            return Ok(Vec::new());
        }
        let bounded = EventFilter { since: Some(since), until: Some(until), ..filter.clone() };
        // The pattern's literal start narrows on the server; the glob decides below.
        let prefix =
            filter.pattern.as_deref().map(|p| p.split('*').next().unwrap_or_default()).unwrap_or_default();
        let last_day = day_of(until.checked_sub(SignedDuration::from_nanos(1)).unwrap_or(until));
        let mut day = day_of(since);
        let mut events = Vec::new();
        loop {
            let mut request = self
                .dynamodb
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(pk(day)))
                // An event at `until` sorts after `:to` (its key goes on with `#<id>`).
                .expression_attribute_values(":from", s(sortable(since)))
                .expression_attribute_values(":to", s(sortable(until)))
                .consistent_read(true);
            let page = if prefix.is_empty() { (filter.limit - events.len()).min(PAGE) } else { PAGE };
            request = request.limit(i32::try_from(page).unwrap_or(1));
            if !prefix.is_empty() {
                request = request
                    .filter_expression("begins_with(#type, :prefix)")
                    .expression_attribute_names("#type", "type")
                    .expression_attribute_values(":prefix", s(prefix));
            }
            let mut items = request.into_paginator().items().send();
            while let Some(item) = items.try_next().await.map_err(StoreError::unavailable)? {
                let event = from_item(&item)?;
                if bounded.matches(&event) {
                    events.push(event);
                    if events.len() == filter.limit {
                        return Ok(events);
                    }
                }
            }
            if day >= last_day {
                return Ok(events);
            }
            day = day.tomorrow().map_err(|e| StoreError::Corrupt(format!("event day: {e}")))?;
        }
    }
}
