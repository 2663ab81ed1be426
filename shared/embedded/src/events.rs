//! The event log: append-only rows, read in time order through an index on
//! `(at_ns, id)`; the type pattern is applied as rows stream by, until the limit.
//!
//! The time window is the DynamoDB backend's, so both list the same events: without
//! `since`, the last [`DEFAULT_WINDOW_DAYS`] days before `until` (or now); and nothing
//! past the end of tomorrow (UTC), whatever `until` says: an event is stamped when it
//! happens, so later ones can only come from a clock a day wrong.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use rusqlite::params;
use tdev_domain::events::{Event, EventFilter, EventStore};
use tdev_domain::ports::StoreError;

use crate::{SqliteStore, db_error, is_constraint, nanos};

/// How far back a listing without `since` reaches.
const DEFAULT_WINDOW_DAYS: i64 = 7;

/// `since <= at < until`, with the defaults filled in from `now`.
fn window(filter: &EventFilter, now: Timestamp) -> (Timestamp, Timestamp) {
    let horizon = now
        .to_zoned(TimeZone::UTC)
        .date()
        .checked_add(2.days())
        .ok()
        .and_then(|day| day.to_zoned(TimeZone::UTC).ok())
        .map_or(Timestamp::MAX, |start| start.timestamp());
    let until = filter.until.map_or(horizon, |until| until.min(horizon));
    let since = filter.since.unwrap_or_else(|| {
        until
            .min(now)
            .checked_sub(SignedDuration::from_hours(24 * DEFAULT_WINDOW_DAYS))
            .unwrap_or(Timestamp::MIN)
    });
    (since, until)
}

impl EventStore for SqliteStore {
    async fn append_event(&self, event: &Event) -> Result<(), StoreError> {
        let doc = serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let result = self
            .conn()
            .prepare_cached("INSERT INTO events (id, type, at_ns, doc) VALUES (?1, ?2, ?3, ?4)")
            .map_err(db_error)?
            .execute(params![event.id, event.kind, nanos(event.at), doc]);
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_constraint(&e) => Err(StoreError::Conflict(format!("event {} exists", event.id))),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        if filter.limit == 0 {
            return Ok(Vec::new());
        }
        let (since, until) = window(filter, Timestamp::now());
        let bounded = EventFilter { since: Some(since), until: Some(until), ..filter.clone() };
        let conn = self.conn();
        let mut statement = conn
            .prepare_cached("SELECT doc FROM events WHERE at_ns >= ?1 AND at_ns < ?2 ORDER BY at_ns, id")
            .map_err(db_error)?;
        let mut rows = statement.query(params![nanos(since), nanos(until)]).map_err(db_error)?;
        let mut events = Vec::new();
        while let Some(row) = rows.next().map_err(db_error)? {
            let doc: String = row.get(0).map_err(db_error)?;
            let event: Event =
                serde_json::from_str(&doc).map_err(|e| StoreError::Corrupt(format!("event: {e}")))?;
            if bounded.matches(&event) {
                events.push(event);
                if events.len() == filter.limit {
                    break;
                }
            }
        }
        Ok(events)
    }
}
