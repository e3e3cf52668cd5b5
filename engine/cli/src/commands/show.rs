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
        Reach::Server(client) => remote_history(&client, target).await?,
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

/// An instance (by id or business key) and its whole history, through a
/// running server or from the store.
pub async fn instance_and_history(
    target: &str,
    data: &Path,
) -> anyhow::Result<(Instance, Vec<Record>)> {
    Ok(match reach(data, super::operate::PATIENCE).await? {
        Reach::Server(client) => {
            let path = format!("/v1/instances/{}", segment(target));
            let inst: Instance = serde_json::from_value(get(&client, &path).await?)?;
            let records = remote_history(&client, inst.id.as_str()).await?;
            (inst, records)
        }
        Reach::Store(store) => {
            let engine = offline_engine(store)?;
            let id = engine.resolve(target).await?;
            let inst = engine.status(&id).await?;
            let records = engine.history(&id, 0).await?;
            engine.shutdown().await;
            (inst, records)
        }
    })
}

/// `weft diagram`: a process file, or the deployed version an instance
/// runs, drawn; with an instance, its state and the path it took.
pub async fn diagram(
    file: Option<&Path>,
    format: &str,
    instance: Option<&str>,
    data: &Path,
) -> anyhow::Result<u8> {
    use weft_model::diagram::{self, Format, Trail};
    let format = match format {
        "mermaid" => Format::Mermaid,
        "dot" => Format::Dot,
        other => bail!("--format {other}: it is `mermaid` or `dot`"),
    };
    let (definition, trail) = match instance {
        None => (None, None),
        Some(target) => {
            let (inst, records, definition) = instance_and_process(target, data).await?;
            let mut trail = Trail {
                current: Some(inst.state.clone()),
                ..Trail::default()
            };
            for r in records.iter().filter(|r| r.branch.is_none()) {
                if let weft_model::RecordKind::Transition { from, to, .. } = &r.kind {
                    trail.visited.insert(from.clone());
                    trail.taken.insert((from.clone(), to.clone()));
                }
            }
            (Some(definition), Some(trail))
        }
    };
    let process = match (file, definition) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            match weft_model::parse_process(&path.display().to_string(), &text) {
                Ok(p) => p,
                Err(diags) => {
                    eprintln!("{diags}");
                    return Ok(exit::ERROR);
                }
            }
        }
        (None, Some(definition)) => {
            let doc = weft_model::Document::from_value("the deployed process", definition);
            weft_model::validate::process(&doc).map_err(|d| anyhow::anyhow!("{d}"))?
        }
        (None, None) => bail!("give a process file, or --instance <id> to draw what it runs"),
    };
    render::say(diagram::draw(&process, format, trail.as_ref()).trim_end());
    Ok(exit::OK)
}

/// An instance, its history and the definition of the version it runs.
async fn instance_and_process(
    target: &str,
    data: &Path,
) -> anyhow::Result<(Instance, Vec<Record>, serde_json::Value)> {
    match reach(data, super::operate::PATIENCE).await? {
        Reach::Server(client) => {
            let t = segment(target);
            let inst: Instance =
                serde_json::from_value(get(&client, &format!("/v1/instances/{t}")).await?)?;
            let records = remote_history(&client, target).await?;
            let path = format!(
                "/v1/processes/{}/versions/{}",
                segment(&inst.process),
                inst.version
            );
            let definition = get(&client, &path).await?["definition"].clone();
            Ok((inst, records, definition))
        }
        Reach::Store(store) => {
            let engine = offline_engine(store)?;
            let id = engine.resolve(target).await?;
            let inst = engine.status(&id).await?;
            let records = engine.history(&id, 0).await?;
            let definition = engine
                .process_record(&inst.process, Some(inst.version))
                .await?
                .definition;
            Ok((inst, records, definition))
        }
    }
}

/// What `weft list` asks for.
pub struct Filter {
    pub process: Option<String>,
    pub status: Option<String>,
    pub state: Option<String>,
    pub stuck: bool,
    pub limit: usize,
    pub cursor: Option<String>,
}

pub async fn list(filter: &Filter, data: &Path, json: bool) -> anyhow::Result<u8> {
    let page: serde_json::Value = match reach(data, super::operate::PATIENCE).await? {
        Reach::Server(client) => {
            let mut q = vec![format!("limit={}", filter.limit)];
            if filter.stuck {
                q.push("stuck=true".to_owned());
            }
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
                    stuck: filter.stuck,
                    after,
                    limit: filter.limit,
                    max_read: None,
                })
                .await?;
            serde_json::to_value(&page)?
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
        let overdue: Vec<weft_model::Overdue> =
            serde_json::from_value(i["overdue"].clone()).unwrap_or_default();
        let stuck = if overdue.is_empty() {
            String::new()
        } else {
            format!("  stuck: {}", render::overdue(&overdue))
        };
        render::say(format_args!(
            "{:<26}  {:<24}  {:<9}  {:<16}  {}{stuck}",
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

/// An instance's whole history through the API, page by page.
async fn remote_history(client: &Client, target: &str) -> anyhow::Result<Vec<Record>> {
    let mut all = Vec::new();
    let mut from = 0u64;
    loop {
        let path = format!("/v1/instances/{}/history?from={from}", segment(target));
        let page = get(client, &path).await?;
        all.extend(serde_json::from_value::<Vec<Record>>(
            page["items"].clone(),
        )?);
        match page["next"].as_u64() {
            Some(next) if next > from => from = next,
            _ => return Ok(all),
        }
    }
}

/// A GET whose refusal becomes this command's error.
async fn get(client: &Client, path: &str) -> anyhow::Result<serde_json::Value> {
    match client.call(Method::GET, path, None).await? {
        Ok(v) => Ok(v),
        Err(refusal) => bail!("{}", refusal.message),
    }
}
