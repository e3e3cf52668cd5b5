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

/// A GET whose refusal becomes this command's error.
async fn get(client: &Client, path: &str) -> anyhow::Result<serde_json::Value> {
    match client.call(Method::GET, path, None).await? {
        Ok(v) => Ok(v),
        Err(refusal) => bail!("{}", refusal.message),
    }
}
