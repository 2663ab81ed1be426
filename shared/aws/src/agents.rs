//! Agents: one item each, `pk = "AGENT#<id>"`, `sk = "AGENT"`, listed through `gsi1`
//! (`gsi1pk = "AGENTS"`, `gsi1sk = <id>`); the agent itself is a JSON document in `doc`.

use tdev_domain::agents::{Agent, AgentStore};
use tdev_domain::ports::StoreError;

use crate::AwsStore;
use crate::attrs::{self, Item, s};
use crate::items::GSI;

const SK: &str = "AGENT";
const GSI_PK: &str = "AGENTS";

fn pk(id: &str) -> String {
    format!("AGENT#{id}")
}

fn from_item(item: &Item) -> Result<Agent, StoreError> {
    attrs::from_doc("agent document", item)
}

fn to_item(agent: &Agent) -> Result<Item, StoreError> {
    let doc = attrs::doc(agent)?;
    Ok(Item::from([
        ("pk".to_owned(), s(pk(&agent.id))),
        ("sk".to_owned(), s(SK)),
        ("gsi1pk".to_owned(), s(GSI_PK)),
        ("gsi1sk".to_owned(), s(&agent.id)),
        ("doc".to_owned(), doc),
    ]))
}

impl AgentStore for AwsStore {
    async fn insert_agent(&self, agent: &Agent) -> Result<(), StoreError> {
        self.insert(to_item(agent)?, || format!("agent {} exists", agent.id)).await
    }

    async fn get_agent(&self, id: &str) -> Result<Option<Agent>, StoreError> {
        self.get(pk(id), SK).await?.as_ref().map(from_item).transpose()
    }

    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError> {
        let items = self.query(Some(GSI), GSI_PK.to_owned(), true).await?;
        items.iter().map(from_item).collect()
    }

    async fn update_agent(&self, agent: &Agent) -> Result<(), StoreError> {
        if self.put_if(to_item(agent)?, "attribute_exists(pk)", &[]).await? {
            Ok(())
        } else {
            Err(StoreError::NotFound)
        }
    }

    async fn delete_agent(&self, id: &str) -> Result<(), StoreError> {
        self.delete_existing(pk(id), SK).await
    }
}
