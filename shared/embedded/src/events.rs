//! The event log: append-only rows, read in time order through an index on
//! `(at_ns, id)`; the type pattern is applied as rows stream by, until the limit. In the
//! order appended, by rowid: a row's rowid is the cursor after it (events are never
//! deleted and the file is never vacuumed, so rowids only grow).
//!
//! The time window is [`EventFilter::window`], as on DynamoDB, so both list the same events.

use jiff::Timestamp;
use rusqlite::params;
use tdev_domain::events::{Event, EventFilter, EventPage, EventStore};
use tdev_domain::ports::StoreError;

use crate::{SqliteStore, db_error, insert, nanos, to_doc};

/// Runs `write` and appends `events` in one transaction: both or neither.
pub(crate) fn with_events(
    conn: &mut rusqlite::Connection,
    events: &[Event],
    write: impl FnOnce(&rusqlite::Connection) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return write(conn);
    }
    let tx = conn.transaction().map_err(db_error)?;
    write(&tx)?;
    for event in events {
        append(&tx, event)?;
    }
    tx.commit().map_err(db_error)
}

fn append(conn: &rusqlite::Connection, event: &Event) -> Result<(), StoreError> {
    let sql = "INSERT INTO events (id, type, at_ns, doc) VALUES (?1, ?2, ?3, ?4)";
    let row = params![event.id, event.kind, nanos(event.time), to_doc(event)?];
    insert(conn, sql, row, || format!("event {} exists", event.id))
}

impl EventStore for SqliteStore {
    async fn append_event(&self, event: &Event) -> Result<(), StoreError> {
        append(&self.conn(), event)
    }

    async fn events_after(&self, cursor: Option<&str>, limit: usize) -> Result<EventPage, StoreError> {
        let (after, rows): (i64, Vec<(i64, String)>) = {
            let conn = self.conn();
            let last: i64 = conn
                .query_row("SELECT coalesce(max(rowid), 0) FROM events", [], |row| row.get(0))
                .map_err(db_error)?;
            let after = match cursor {
                None => last,
                Some(cursor) => match cursor.parse::<i64>() {
                    Ok(rowid) if (0..=last).contains(&rowid) => rowid,
                    _ => return Err(StoreError::NotFound),
                },
            };
            let mut statement = conn
                .prepare_cached("SELECT rowid, doc FROM events WHERE rowid > ?1 ORDER BY rowid LIMIT ?2")
                .map_err(db_error)?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = statement
                .query_map(params![after, limit], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(db_error)?;
            (after, rows.collect::<Result<_, _>>().map_err(db_error)?)
        };
        let cursor = rows.last().map_or(after, |row| row.0).to_string();
        let events = rows
            .into_iter()
            .map(|(rowid, doc)| Ok((rowid.to_string(), crate::from_doc::<Event>("event", &doc)?)))
            .collect::<Result<_, StoreError>>()?;
        Ok(EventPage { events, cursor })
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
