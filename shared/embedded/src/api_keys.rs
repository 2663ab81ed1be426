use jiff::Timestamp;
use rusqlite::{OptionalExtension, Row, params};
use tdev_domain::auth::{ApiKey, ApiKeyId, ApiKeyStore, KeyName, RateLimit, Scopes};
use tdev_domain::ports::StoreError;

use crate::{SqliteStore, db_error, insert};

const COLUMNS: &str = "id, name, scopes, secret_hash, created_at, expires_at, revoked_at, rate_capacity, rate_refill_per_minute";

impl ApiKeyStore for SqliteStore {
    async fn insert_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let sql = "INSERT INTO api_keys (id, name, scopes, secret_hash, created_at, created_us, expires_at, revoked_at, rate_capacity, rate_refill_per_minute)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
        let row = params![
            key.id.as_str(),
            key.name.as_str(),
            key.scopes.to_space_separated(),
            key.secret_hash,
            key.created_at.to_string(),
            key.created_at.as_microsecond(),
            key.expires_at.map(|t| t.to_string()),
            key.revoked_at.map(|t| t.to_string()),
            key.rate_limit.map(|l| l.capacity),
            key.rate_limit.map(|l| l.refill_per_minute),
        ];
        insert(&self.conn(), sql, row, || format!("API key {} exists", key.id))
    }

    async fn get_key(&self, id: &ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1");
        self.conn().query_row(&sql, [id.as_str()], read_key).optional().map_err(db_error)?.transpose()
    }

    async fn list_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_us, id");
        let conn = self.conn();
        let mut statement = conn.prepare_cached(&sql).map_err(db_error)?;
        let rows = statement.query_map([], read_key).map_err(db_error)?;
        rows.map(|row| row.map_err(db_error)?).collect()
    }

    async fn revoke_key(&self, id: &ApiKeyId, at: Timestamp) -> Result<ApiKey, StoreError> {
        let sql = format!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1 RETURNING {COLUMNS}"
        );
        self.conn()
            .query_row(&sql, params![id.as_str(), at.to_string()], read_key)
            .optional()
            .map_err(db_error)?
            .ok_or(StoreError::NotFound)?
    }
}

/// The outer result is SQLite's; the inner one says whether the row makes a valid key.
fn read_key(row: &Row<'_>) -> rusqlite::Result<Result<ApiKey, StoreError>> {
    let id: String = row.get(0)?;
    let name: String = row.get(1)?;
    let scopes: String = row.get(2)?;
    let secret_hash: String = row.get(3)?;
    let created_at: String = row.get(4)?;
    let expires_at: Option<String> = row.get(5)?;
    let revoked_at: Option<String> = row.get(6)?;
    let capacity: Option<u32> = row.get(7)?;
    let refill: Option<u32> = row.get(8)?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("API key {id}: bad {what}"));
    let time = |text: &str, what: &str| text.parse::<Timestamp>().map_err(|_| corrupt(what));
    Ok((|| {
        Ok(ApiKey {
            id: ApiKeyId::parse(&id).ok_or_else(|| corrupt("id"))?,
            name: KeyName::new(&name).map_err(|_| corrupt("name"))?,
            scopes: Scopes::parse_space_separated(&scopes).map_err(|_| corrupt("scopes"))?,
            secret_hash,
            created_at: time(&created_at, "created_at")?,
            expires_at: expires_at.map(|t| time(&t, "expires_at")).transpose()?,
            revoked_at: revoked_at.map(|t| time(&t, "revoked_at")).transpose()?,
            rate_limit: match (capacity, refill) {
                (Some(capacity), Some(refill_per_minute)) => Some(RateLimit { capacity, refill_per_minute }),
                (None, None) => None,
                _ => return Err(corrupt("rate limit")),
            },
        })
    })())
}
