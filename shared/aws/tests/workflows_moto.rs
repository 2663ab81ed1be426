//! Large workflow definitions on DynamoDB (moto): what a writer that dies halfway leaves
//! behind, and what a damaged chunk does to a reader. The schema is in `src/workflows.rs`.

mod support;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use jiff::Timestamp;
use support::{moto_config, unique};
use tdev_aws::AwsStore;
use tdev_conformance::runs::large_definition;
use tdev_domain::ports::StoreError;
use tdev_domain::runs::{DefinitionKind, DefinitionStore, StoredDefinition};

fn large(id: &str, seed: &str) -> StoredDefinition {
    StoredDefinition {
        id: id.into(),
        version: "1.0.0".into(),
        definition: large_definition(id, "1.0.0", 2 << 20, seed),
        content_hash: format!("hash-{seed}"),
        created_at: Timestamp::from_second(1_700_000_000).unwrap(),
    }
}

/// A store on a table of its own, and a client to reach behind the store's back.
async fn fresh_table() -> (AwsStore, aws_sdk_dynamodb::Client) {
    let config = moto_config();
    let store = AwsStore::new(&config, unique("large-workflows"));
    store.ensure_table().await.unwrap();
    (store, aws_sdk_dynamodb::Client::new(&config))
}

async fn head(store: &AwsStore, client: &aws_sdk_dynamodb::Client, id: &str) -> Option<AttributeValue> {
    let item = client
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(format!("WORKFLOW#{id}")))
        .key("sk", AttributeValue::S("V#1.0.0".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item?;
    assert!(!item.contains_key("doc"), "a 2 MiB definition is not kept in its head item");
    item.get("chunks").cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_writer_that_dies_before_the_head_leaves_nothing_a_reader_sees_and_a_retry_works() {
    let (store, client) = fresh_table().await;
    let id = unique("crash");
    let workflow = large(&id, "crash");

    // Written whole, then its head removed: the table as a writer leaves it that died
    // after the chunks and before the head.
    store.put_definition(DefinitionKind::Workflow, &workflow).await.unwrap();
    let Some(AttributeValue::L(chunks)) = head(&store, &client, &id).await else { panic!("chunked") };
    assert!(chunks.len() >= 6, "2 MiB in chunks under 400 KB: {}", chunks.len());
    client
        .delete_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(format!("WORKFLOW#{id}")))
        .key("sk", AttributeValue::S("V#1.0.0".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        store.get_definition(DefinitionKind::Workflow, &id, None).await.unwrap(),
        None,
        "no head: no version"
    );
    assert_eq!(store.get_definition(DefinitionKind::Workflow, &id, Some("1.0.0")).await.unwrap(), None);

    // Another content may take the version; the dead writer's retry is then refused.
    let other = large(&id, "other");
    store.put_definition(DefinitionKind::Workflow, &other).await.expect("the version is free");
    assert!(matches!(
        store.put_definition(DefinitionKind::Workflow, &workflow).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.get_definition(DefinitionKind::Workflow, &id, Some("1.0.0")).await.unwrap(),
        Some(other)
    );

    // A retry of the same content into a free version reuses the chunks left behind.
    let id = unique("retry");
    let workflow = large(&id, "crash");
    store.put_definition(DefinitionKind::Workflow, &workflow).await.expect("the retry stores it");
    assert_eq!(store.get_definition(DefinitionKind::Workflow, &id, None).await.unwrap(), Some(workflow));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_chunk_is_corrupt_not_a_wrong_definition() {
    let (store, client) = fresh_table().await;
    let id = unique("damaged");
    store.put_definition(DefinitionKind::Workflow, &large(&id, &id)).await.unwrap();
    let Some(AttributeValue::L(chunks)) = head(&store, &client, &id).await else { panic!("chunked") };
    let hash = chunks[1].as_s().unwrap();
    client
        .put_item()
        .table_name(store.table())
        .item("pk", AttributeValue::S(format!("CHUNK#{hash}")))
        .item("sk", AttributeValue::S("CHUNK".into()))
        .item("data", AttributeValue::B(Blob::new(b"{}".to_vec())))
        .send()
        .await
        .unwrap();
    match store.get_definition(DefinitionKind::Workflow, &id, None).await {
        Err(StoreError::Corrupt(detail)) => assert!(detail.contains(hash), "{detail}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
