//! `weft status` and `weft history`: an instance as the engine reports it —
//! the running engine's, through its API, or the store's when none runs.

use std::path::Path;

use anyhow::bail;
use hyper::Method;
use weft_model::{Instance, Record};

use super::{Reach, offline_engine, reach};
use crate::client::{Client, segment};
use crate::{exit, render};

pub async fn status(target: &str, data: &Path, json: bool) -> anyhow::Result<u8> {
    let inst: Instance = match reach(data, super::operate::PATIENCE).await? {
        Reach::Server(client) => {
            let path = format!("/v1/instances/{}", segment(target));
            serde_json::from_value(get(&client, &path).await?)?
        }
        Reach::Store(store) => {
            let engine = offline_engine(store)?;
            let id = engine.resolve(target).await?;
            engine.status(&id).await?
        }
    };
    if json {
        render::say(format_args!(
            "{}",
            render::pretty(&serde_json::to_value(&inst)?)
        ));
    } else {
        render::say(render::status_table(&inst).trim_end());
    }
    Ok(exit::OK)
}

pub async fn history(target: &str, data: &Path, json: bool) -> anyhow::Result<u8> {
    let records: Vec<Record> = match reach(data, super::operate::PATIENCE).await? {
        Reach::Server(client) => {
            let mut all = Vec::new();
            let mut from = 0u64;
            loop {
                let path = format!("/v1/instances/{}/history?from={from}", segment(target));
                let page = get(&client, &path).await?;
                let items: Vec<Record> = serde_json::from_value(page["items"].clone())?;
                all.extend(items);
                match page["next"].as_u64() {
                    Some(next) if next > from => from = next,
                    _ => break,
                }
            }
            all
        }
        Reach::Store(store) => {
            let engine = offline_engine(store)?;
            let id = engine.resolve(target).await?;
            engine.history(&id, 0).await?
        }
    };
    if json {
        render::say(format_args!(
            "{}",
            render::pretty(&serde_json::to_value(&records)?)
        ));
    } else {
        render::say(render::history_table(&records).trim_end());
    }
    Ok(exit::OK)
}

/// What `weft list` asks for.
pub struct Filter {
    pub process: Option<String>,
    pub status: Option<String>,
    pub state: Option<String>,
    pub limit: usize,
    pub cursor: Option<String>,
}

pub async fn list(filter: &Filter, data: &Path, json: bool) -> anyhow::Result<u8> {
    let page: serde_json::Value = match reach(data, super::operate::PATIENCE).await? {
        Reach::Server(client) => {
            let mut q = vec![format!("limit={}", filter.limit)];
            for (k, v) in [
                ("process", &filter.process),
                ("status", &filter.status),
                ("state", &filter.state),
                ("cursor", &filter.cursor),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", segment(v)));
                }
            }
            get(&client, &format!("/v1/instances?{}", q.join("&"))).await?
        }
        Reach::Store(store) => {
            let engine = offline_engine(store)?;
            let status = match &filter.status {
                None => None,
                Some(s) => Some(
                    weft_model::Status::ALL
                        .into_iter()
                        .find(|st| st.as_str() == s)
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "--status {s}: it is one of {}",
                                weft_model::Status::ALL.map(|s| s.as_str()).join(", ")
                            )
                        })?,
                ),
            };
            let after = match &filter.cursor {
                None => None,
                Some(c) => Some(
                    weft_model::InstanceId::parse(c)
                        .ok_or_else(|| anyhow::anyhow!("--cursor {c} is not one weft printed"))?,
                ),
            };
            let page = engine
                .list(weft_core::PageQuery {
                    process: filter.process.clone(),
                    status,
                    state: filter.state.clone(),
                    after,
                    limit: filter.limit,
                })
                .await?;
            let items: Vec<serde_json::Value> = page
                .items
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "id": s.id, "process": s.process, "version": s.version, "key": s.key,
                        "status": s.status, "state": s.state, "updated_at": s.updated_at,
                    })
                })
                .collect();
            serde_json::json!({ "items": items, "next": page.next })
        }
    };
    if json {
        render::say(render::pretty(&page));
        return Ok(exit::OK);
    }
    let items = page["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        render::say("no instances match");
        return Ok(exit::OK);
    }
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_owned();
    render::say(format_args!(
        "{:<26}  {:<24}  {:<9}  {:<16}  key",
        "instance", "process", "status", "state"
    ));
    for i in &items {
        render::say(format_args!(
            "{:<26}  {:<24}  {:<9}  {:<16}  {}",
            text(&i["id"]),
            format!("{} v{}", text(&i["process"]), i["version"]),
            text(&i["status"]),
            text(&i["state"]),
            text(&i["key"]),
        ));
    }
    if let Some(next) = page["next"].as_str() {
        render::say(format_args!("more: add --cursor {next}"));
    }
    Ok(exit::OK)
}

/// A GET whose refusal becomes this command's error.
async fn get(client: &Client, path: &str) -> anyhow::Result<serde_json::Value> {
    match client.call(Method::GET, path, None).await? {
        Ok(v) => Ok(v),
        Err(refusal) => bail!("{}", refusal.message),
    }
}
