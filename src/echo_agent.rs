//! `tdev echo-agent`: an HTTP agent for trying workflows and squads locally. Register it
//! with a URL whose query names the outputs to produce
//! (`http://127.0.0.1:9100/?outputs=raw_data`): it answers each with what the step
//! received, `{"raw_data": {"step": …, "inputs": …}}`. With `answer=<text>` in the query
//! its reply also holds `"answer": "<text>"`: a squad member with an opinion.

use std::collections::HashMap;

use axum::Json;
use axum::extract::Query;
use axum::routing::post;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

pub fn router() -> axum::Router {
    axum::Router::new().route("/", post(answer))
}

async fn answer(Query(query): Query<HashMap<String, String>>, Json(payload): Json<Value>) -> Json<Value> {
    let outputs = query.get("outputs").map(String::as_str).unwrap_or("");
    let mut reply: Map<String, Value> = outputs
        .split(',')
        .filter(|name| !name.is_empty())
        .map(|name| {
            (name.to_owned(), json!({"step": payload["context"]["step_id"], "inputs": payload["inputs"]}))
        })
        .collect();
    if let Some(answer) = query.get("answer") {
        reply.insert("answer".to_owned(), json!(answer));
    }
    Json(Value::Object(reply))
}

pub async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    println!("echo agent listening on http://{}/", listener.local_addr()?);
    axum::serve(listener, router()).await?;
    Ok(())
}
