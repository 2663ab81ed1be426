//! What every `AgentStore` promises.

use jiff::Timestamp;
use tdev_domain::agents::{Agent, AgentStatus, AgentStore, AgentTarget};
use tdev_domain::ports::StoreError;

fn agent(id: &str, target: AgentTarget) -> Agent {
    Agent {
        id: id.into(),
        name: format!("Agent {id}"),
        target,
        capabilities: ["extract".to_owned(), "summarize".to_owned()].into(),
        status: AgentStatus::Active,
        max_concurrency: None,
        created_at: Timestamp::from_second(1_700_000_000).unwrap(),
    }
}

/// Agents round-trip every field of every target kind; ids are unique; updates replace;
/// delete works once.
pub async fn run_all<S: AgentStore>(store: &S) {
    let prefix =
        super::unique("agent").replace(|c: char| !c.is_ascii_alphanumeric(), "-").to_ascii_lowercase();
    let agents = [
        agent(&format!("{prefix}-http"), AgentTarget::Http { url: "http://127.0.0.1:9/run".into() }),
        agent(
            &format!("{prefix}-lambda"),
            AgentTarget::Lambda { function: "arn:aws:lambda:us-east-1:1:function:f".into() },
        ),
        agent(
            &format!("{prefix}-bedrock"),
            AgentTarget::BedrockAgent { agent_id: "A1".into(), alias_id: "L1".into() },
        ),
        agent(
            &format!("{prefix}-core"),
            AgentTarget::AgentcoreRuntime {
                runtime_arn: "arn:aws:bedrock-agentcore:r".into(),
                qualifier: Some("prod".into()),
            },
        ),
    ];
    for agent in &agents {
        store.insert_agent(agent).await.expect("insert agent");
        assert_eq!(store.get_agent(&agent.id).await.expect("get agent").as_ref(), Some(agent), "round trip");
    }
    let duplicate = store.insert_agent(&agents[0]).await;
    assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "{duplicate:?}");

    let listed = store.list_agents().await.expect("list agents");
    let ours: Vec<&Agent> = listed.iter().filter(|a| a.id.starts_with(&prefix)).collect();
    let mut expected: Vec<&Agent> = agents.iter().collect();
    expected.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(ours, expected, "listed by id");

    let mut changed = agents[1].clone();
    changed.status = AgentStatus::Draining;
    changed.max_concurrency = Some(3);
    changed.capabilities.insert("translate".into());
    store.update_agent(&changed).await.expect("update");
    assert_eq!(store.get_agent(&changed.id).await.expect("get updated"), Some(changed), "updated");
    let mut missing = agents[1].clone();
    missing.id = format!("{prefix}-missing");
    let update_missing = store.update_agent(&missing).await;
    assert!(matches!(update_missing, Err(StoreError::NotFound)), "{update_missing:?}");
    assert_eq!(store.get_agent(&missing.id).await.expect("get missing"), None, "no upsert");

    store.delete_agent(&agents[0].id).await.expect("delete");
    assert_eq!(store.get_agent(&agents[0].id).await.expect("get deleted"), None);
    let again = store.delete_agent(&agents[0].id).await;
    assert!(matches!(again, Err(StoreError::NotFound)), "{again:?}");
}
