//! The event log: append-only rows, read in time order through an index on
//! `(at_ns, id)`; the type pattern is applied as rows stream by, until the limit.
//!
//! The time window is [`EventFilter::window`], as on DynamoDB, so both list the same events.

use jiff::Timestamp;
use rusqlite::params;
use tdev_domain::events::{Event, EventFilter, EventStore};
use tdev_domain::ports::StoreError;

use crate::{SqliteStore, db_error, insert, nanos, to_doc};

impl EventStore for SqliteStore {
    async fn append_event(&self, event: &Event) -> Result<(), StoreError> {
        let sql = "INSERT INTO events (id, type, at_ns, doc) VALUES (?1, ?2, ?3, ?4)";
        let row = params![event.id, event.kind, nanos(event.time), to_doc(event)?];
        insert(&self.conn(), sql, row, || format!("event {} exists", event.id))
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        if filter.limit == 0 {
            return Ok(Vec::new());
        }
        let (since, until) = filter.window(Timestamp::now());
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
