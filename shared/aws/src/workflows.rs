//! Workflow and squad versions in the single table, however large their definition.
//!
//! - Version (the head): `pk = "WORKFLOW#<id>"` (a squad: `"SQUAD#<id>"`), `sk =
//!   "V#<version>"`, `created_us`, and either `doc` (the stored definition as JSON, when it fits in [`INLINE_MAX`] bytes) or
//!   `chunks` (L of S: the SHA-256 hex of each chunk of that JSON, in order) and `bytes`
//!   (N, its length).
//! - Chunk: `pk = "CHUNK#<SHA-256 hex of data>"`, `sk = "CHUNK"`, `data` (B, at most
//!   [`CHUNK_BYTES`]).
//!
//! A DynamoDB item holds at most 400 KB, and a transaction at most 4 MB in all, so a large
//! definition cannot be one item or one transaction. Instead the chunks are written
//! first (unconditionally: a chunk's key is its content's hash, so writing it again, by a
//! retry or by a racing writer, changes nothing) and the head last, on the condition that
//! the version does not exist. A reader finds the head only once every chunk it names is
//! stored, so it never sees half a definition; a writer that dies before the head leaves
//! chunks nothing points at, which a retry reuses. Chunks are never deleted: versions
//! are immutable and kept for ever, and identical chunks are shared.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::future::try_join_all;
use sha2::{Digest, Sha256};
use tdev_domain::ports::StoreError;
use tdev_domain::runs::{DefinitionKind, DefinitionStore, StoredDefinition};

use crate::AwsStore;
use crate::attrs::{self, Item, n, s};

/// Below this a definition is kept in its head item: 400 KB less room for the keys and
/// the other attributes.
pub(crate) const INLINE_MAX: usize = 350 * 1024;
/// The size of each chunk but the last.
pub(crate) const CHUNK_BYTES: usize = 350 * 1024;

fn definition_pk(kind: DefinitionKind, id: &str) -> String {
    match kind {
        DefinitionKind::Workflow => format!("WORKFLOW#{id}"),
        DefinitionKind::Squad => format!("SQUAD#{id}"),
    }
}

fn version_sk(version: &str) -> String {
    format!("V#{version}")
}

fn chunk_pk(hash: &str) -> String {
    format!("CHUNK#{hash}")
}

const CHUNK_SK: &str = "CHUNK";

impl AwsStore {
    async fn definition_version(
        &self,
        kind: DefinitionKind,
        id: &str,
        version: &str,
    ) -> Result<Option<StoredDefinition>, StoreError> {
        match self.get(definition_pk(kind, id), &version_sk(version)).await? {
            Some(head) => self.read_head(&head).await.map(Some),
            None => Ok(None),
        }
    }

    /// The stored workflow a head item stands for, its chunks read and checked.
    async fn read_head(&self, head: &Item) -> Result<StoredDefinition, StoreError> {
        if head.contains_key("doc") {
            return attrs::from_doc("workflow", head);
        }
        let hashes = match head.get("chunks") {
            Some(AttributeValue::L(hashes)) => hashes
                .iter()
                .map(|hash| hash.as_s().cloned())
                .collect::<Result<Vec<String>, _>>()
                .map_err(|_| StoreError::Corrupt("attribute chunks holds a non-string".into()))?,
            _ => return Err(StoreError::Corrupt("a workflow version has neither doc nor chunks".into())),
        };
        let expected: usize = attrs::number(head, "bytes")?;
        // A definition has a handful of chunks (3 MiB by default: 9), all read at once.
        let parts = try_join_all(hashes.into_iter().map(|hash| self.read_chunk(hash))).await?;
        let doc = parts.concat();
        if doc.len() != expected {
            return Err(StoreError::Corrupt(format!(
                "a chunked workflow has {} bytes, its head says {expected}",
                doc.len()
            )));
        }
        serde_json::from_slice(&doc).map_err(|e| StoreError::Corrupt(format!("workflow: {e}")))
    }

    async fn read_chunk(&self, hash: String) -> Result<Vec<u8>, StoreError> {
        let item = self
            .get(chunk_pk(&hash), CHUNK_SK)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("workflow chunk {hash} is missing")))?;
        let data = match item.get("data") {
            Some(AttributeValue::B(data)) => data.clone().into_inner(),
            _ => return Err(StoreError::Corrupt(format!("workflow chunk {hash} has no data"))),
        };
        if hex::encode(Sha256::digest(&data)) != hash {
            return Err(StoreError::Corrupt(format!("workflow chunk {hash} does not match its hash")));
        }
        Ok(data)
    }

    /// Writes the chunks of `doc`, all at once; their hashes in order.
    async fn write_chunks(&self, doc: &[u8]) -> Result<Vec<String>, StoreError> {
        try_join_all(doc.chunks(CHUNK_BYTES).map(|data| async move {
            let hash = hex::encode(Sha256::digest(data));
            self.dynamodb
                .put_item()
                .table_name(&self.table)
                .item("pk", s(chunk_pk(&hash)))
                .item("sk", s(CHUNK_SK))
                .item("data", AttributeValue::B(Blob::new(data)))
                .send()
                .await
                .map_err(StoreError::unavailable)?;
            Ok(hash)
        }))
        .await
    }
}

impl DefinitionStore for AwsStore {
    async fn put_definition(
        &self,
        kind: DefinitionKind,
        workflow: &StoredDefinition,
    ) -> Result<(), StoreError> {
        let doc = serde_json::to_vec(workflow).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut head = Item::from([
            ("pk".to_owned(), s(definition_pk(kind, &workflow.id))),
            ("sk".to_owned(), s(version_sk(&workflow.version))),
            ("created_us".to_owned(), n(workflow.created_at.as_microsecond())),
        ]);
        if doc.len() <= INLINE_MAX {
            head.insert("doc".to_owned(), attrs::doc(workflow)?);
        } else {
            let hashes = self.write_chunks(&doc).await?;
            head.insert("chunks".to_owned(), AttributeValue::L(hashes.into_iter().map(s).collect()));
            head.insert("bytes".to_owned(), n(doc.len()));
        }
        if self.create(head).await? {
            return Ok(());
        }
        match self.get_definition(kind, &workflow.id, Some(&workflow.version)).await? {
            Some(stored) if stored.content_hash == workflow.content_hash => Ok(()),
            _ => Err(StoreError::Conflict(format!(
                "{} {} version {} exists with other content",
                kind.as_str(),
                workflow.id,
                workflow.version
            ))),
        }
    }

    async fn get_definition(
        &self,
        kind: DefinitionKind,
        id: &str,
        version: Option<&str>,
    ) -> Result<Option<StoredDefinition>, StoreError> {
        if let Some(version) = version {
            return self.definition_version(kind, id, version).await;
        }
        // Versions sort by name, not by age: read the heads (a handful) and take the newest.
        let heads = self.query(None, definition_pk(kind, id), true).await?;
        let mut newest: Option<(i64, &Item)> = None;
        for head in &heads {
            let created: i64 = attrs::optional_number(head, "created_us")?.unwrap_or(0);
            if newest.is_none_or(|(at, _)| created >= at) {
                newest = Some((created, head));
            }
        }
        match newest {
            Some((_, head)) => self.read_head(head).await.map(Some),
            None => Ok(None),
        }
    }
}
