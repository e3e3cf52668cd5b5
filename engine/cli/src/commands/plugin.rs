//! `weft plugin add | list | describe | call`: the plugin registry, and one
//! action invoked once — the loop an adapter author works in. Through a
//! running server when one holds the data directory, else on the store.

use std::path::Path;
use std::sync::Arc;

use hyper::Method;
use serde_json::{Value, json};
use weft_model::{Span, StepOutcome};
use weft_runtime::Call;

use super::{Reach, offline_engine, reach};
use crate::client::segment;
use crate::{exit, load, render};

const PATIENCE: std::time::Duration = super::operate::PATIENCE;

fn view(entry: &weft_store::PluginEntry) -> Value {
    serde_json::to_value(entry).unwrap_or(Value::Null)
}

/// `weft plugin add <file> [--name n]`: loads the component as the engine
/// would run it, reads its manifest, and registers it.
pub async fn add(file: &Path, name: Option<&str>, data: &Path) -> anyhow::Result<u8> {
    let bytes = load::read_limited(file, 256 << 20)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let name = match name {
        Some(n) => n.to_owned(),
        None => default_name(file),
    };
    // Like a deploy, an add may be the first thing a data directory holds.
    let server = match crate::client::Client::find(data)? {
        Some(c) if c.alive().await => Reach::Server(c),
        _ => Reach::Store(super::open_store(data, true)?),
    };
    let entry: Value = match server {
        Reach::Server(client) => {
            let path = format!("/v1/plugins?name={}", segment(&name));
            match client.upload(&path, bytes).await? {
                Ok(v) => v,
                Err(refusal) => anyhow::bail!("{}", refusal.message),
            }
        }
        Reach::Store(store) => {
            let runtime = super::runtime(Some(data))?;
            let bytes: Arc<[u8]> = bytes.into();
            let plugin = runtime
                .load(&name, bytes.clone())
                .await
                .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), unusable(&e)))?;
            let engine = offline_engine(store)?;
            let (entry, _) = engine
                .register_plugin(&name, bytes, plugin.sha256.clone(), plugin.manifest.clone())
                .await?;
            engine.shutdown().await;
            view(&entry)
        }
    };
    render::say(format_args!(
        "{}@{}  {}  ({} actions)",
        entry["name"].as_str().unwrap_or_default(),
        entry["version"],
        entry["sha256"].as_str().unwrap_or_default(),
        entry["manifest"]["actions"].as_array().map_or(0, Vec::len)
    ));
    Ok(exit::OK)
}

/// `payments` for `weft_payments.wasm`, `payments` for `payments.wasm`.
pub(crate) fn default_name(file: &Path) -> String {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin");
    stem.strip_prefix("weft_").unwrap_or(stem).replace('_', "-")
}

/// `weft plugin list`.
pub async fn list(data: &Path, json_out: bool) -> anyhow::Result<u8> {
    let items: Vec<Value> = match reach(data, PATIENCE).await? {
        Reach::Server(client) => match client.call(Method::GET, "/v1/plugins", None).await? {
            Ok(v) => v["items"].as_array().cloned().unwrap_or_default(),
            Err(r) => anyhow::bail!("{}", r.message),
        },
        Reach::Store(store) => {
            let engine = offline_engine(store)?;
            let all = engine.plugins().await?;
            all.iter().map(view).collect()
        }
    };
    if json_out {
        render::say(render::pretty(&json!({ "items": items })));
        return Ok(exit::OK);
    }
    if items.is_empty() {
        render::say("no plugins registered: add one with weft plugin add <file.wasm>");
        return Ok(exit::OK);
    }
    render::say(format_args!(
        "{:<28}  {:<16}  {:>10}  actions",
        "plugin", "sha256", "bytes"
    ));
    for e in &items {
        let actions: Vec<&str> = e["manifest"]["actions"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["name"].as_str()).collect())
            .unwrap_or_default();
        render::say(format_args!(
            "{:<28}  {:<16}  {:>10}  {}",
            format!(
                "{}@{}",
                e["name"].as_str().unwrap_or_default(),
                e["version"]
            ),
            &e["sha256"].as_str().unwrap_or_default()
                [..16.min(e["sha256"].as_str().unwrap_or_default().len())],
            e["size"],
            actions.join(", ")
        ));
    }
    Ok(exit::OK)
}

/// `weft plugin describe <name | name@version | digest>`.
pub async fn describe(what: &str, data: &Path, json_out: bool) -> anyhow::Result<u8> {
    let info: Value = match reach(data, PATIENCE).await? {
        Reach::Server(client) => {
            let path = format!("/v1/plugins/{}", segment(what));
            match client.call(Method::GET, &path, None).await? {
                Ok(v) => v,
                Err(r) => anyhow::bail!("{}", r.message),
            }
        }
        Reach::Store(store) => {
            let engine = offline_engine(store)?;
            serde_json::to_value(engine.plugin(what).await?)?
        }
    };
    if json_out {
        render::say(render::pretty(&info));
        return Ok(exit::OK);
    }
    for v in info["versions"].as_array().into_iter().flatten() {
        render::say(format_args!(
            "{}@{}  sha256 {}  {} bytes  (manifest: {} {})",
            v["name"].as_str().unwrap_or_default(),
            v["version"],
            v["sha256"].as_str().unwrap_or_default(),
            v["size"],
            v["manifest"]["name"].as_str().unwrap_or_default(),
            v["manifest"]["version"].as_str().unwrap_or_default(),
        ));
        for a in v["manifest"]["actions"].as_array().into_iter().flatten() {
            let mut flags = Vec::new();
            if a["idempotent"] == true {
                flags.push("idempotent".to_owned());
            }
            if let Some(c) = a["compensated_by"].as_str() {
                flags.push(format!("undone by {c}"));
            }
            let errors: Vec<&str> = a["errors"]
                .as_array()
                .map(|e| e.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !errors.is_empty() {
                flags.push(format!("errors: {}", errors.join(", ")));
            }
            render::say(format_args!(
                "  {}{}",
                a["name"].as_str().unwrap_or_default(),
                if flags.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", flags.join("; "))
                }
            ));
        }
    }
    let uses = info["used_by"].as_array().cloned().unwrap_or_default();
    if uses.is_empty() {
        render::say("used by: no deployed process version");
    }
    for u in &uses {
        render::say(format_args!(
            "used by: {} v{} (bindings r{}) for {}",
            u["process"].as_str().unwrap_or_default(),
            u["version"],
            u["revision"],
            u["actions"]
                .as_array()
                .map(|a| a
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        ));
    }
    Ok(exit::OK)
}

/// What `weft plugin call` runs with.
pub struct CallArgs<'a> {
    pub plugin: &'a str,
    pub action: &'a str,
    pub input: &'a str,
    pub config: &'a str,
    pub timeout: &'a str,
    pub memory: &'a str,
    pub allow_hosts: Vec<String>,
    pub fuel: Option<u64>,
}

/// `weft plugin call <file | name | digest> <action>`: one invocation,
/// with no grants but the hosts allowed, and its outcome printed. Exit 0 done, 1 failed, 4
/// pending.
pub async fn call(args: &CallArgs<'_>, data: &Path) -> anyhow::Result<u8> {
    let input: Value = serde_json::from_str(args.input)
        .map_err(|e| anyhow::anyhow!("--input is not JSON: {e}"))?;
    let config: Value = serde_json::from_str(args.config)
        .map_err(|e| anyhow::anyhow!("--config is not JSON: {e}"))?;
    let timeout = Span::parse(args.timeout).map_err(|e| anyhow::anyhow!("--timeout: {e}"))?;
    let memory = weft_model::bindings::parse_size(args.memory)
        .map_err(|e| anyhow::anyhow!("--memory: {e}"))?;
    let as_file = Path::new(args.plugin);
    let bytes: Vec<u8> = if as_file.is_file() {
        load::read_limited(as_file, 256 << 20)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", as_file.display()))?
    } else {
        match reach(data, PATIENCE).await? {
            Reach::Server(client) => {
                let path = format!("/v1/plugins/{}/component", segment(args.plugin));
                match client.download(&path).await? {
                    Ok(b) => b,
                    Err(r) => anyhow::bail!("{} (and there is no such file)", r.message),
                }
            }
            Reach::Store(store) => {
                let engine = offline_engine(store)?;
                let (_, b) = engine
                    .plugin_component(args.plugin)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e} (and there is no such file)"))?;
                b
            }
        }
    };
    if args.fuel == Some(0) {
        anyhow::bail!("--fuel must be 1 or more");
    }
    let grants = weft_model::bindings::grants_for_hosts(&args.allow_hosts)
        .map_err(|e| anyhow::anyhow!("--allow-host {e}"))?;
    let runtime = super::runtime(None)?;
    let plugin = runtime
        .load_with_memory("call", bytes.into(), memory)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", args.plugin, unusable(&e)))?;
    if plugin.manifest.action(args.action).is_none() {
        let actions: Vec<&str> = plugin
            .manifest
            .actions
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        anyhow::bail!(
            "{} has no action '{}'; it has: {}",
            args.plugin,
            args.action,
            actions.join(", ")
        );
    }
    let outcome = runtime
        .invoke(
            &plugin,
            Call {
                action: args.action,
                input: &input,
                config: &config,
                instance_id: "weft-plugin-call",
                key: "weft-plugin-call/call/1",
                attempt: 1,
                last_heartbeat: None,
                timeout,
                memory,
                max_output: weft_model::bindings::DEFAULT_MAX_OUTPUT,
                fuel: args.fuel,
                grants: &grants,
                heartbeat: None,
            },
        )
        .await;
    Ok(match outcome {
        StepOutcome::Done { output } => {
            render::say(format_args!("done: {output}"));
            exit::OK
        }
        StepOutcome::Pending { token } => {
            render::say(format_args!("pending: token {token}"));
            exit::WAITING
        }
        StepOutcome::Failed { failure } => {
            render::say(format_args!(
                "failed: {}: {}",
                failure.kind, failure.message
            ));
            exit::FAILED
        }
    })
}

/// The registry of a data directory, for bindings that name registered
/// components: through the server holding it, or from its store.
pub struct DataRegistry<'a>(pub &'a Path);

impl load::Registry for DataRegistry<'_> {
    fn fetch<'a>(&'a self, reference: &'a str) -> load::Fetch<'a> {
        Box::pin(async move {
            let what = reference.strip_prefix("sha256:").unwrap_or(reference);
            match reach(self.0, PATIENCE).await.map_err(|e| e.to_string())? {
                Reach::Server(client) => {
                    let path = format!("/v1/plugins/{}/component", segment(what));
                    match client.download(&path).await.map_err(|e| e.to_string())? {
                        Ok(bytes) => Ok(bytes),
                        Err(r) => Err(r.message),
                    }
                }
                Reach::Store(store) => {
                    let engine = offline_engine(store).map_err(|e| e.to_string())?;
                    let found = engine
                        .plugin_component(what)
                        .await
                        .map_err(|e| e.to_string());
                    engine.shutdown().await;
                    found.map(|(_, bytes)| bytes)
                }
            }
        })
    }
}

/// Why a component cannot be used, in one line: refused by this engine's
/// instance pool, or not a weft adapter at all.
pub(crate) fn unusable(e: &weft_runtime::Error) -> String {
    if e.is_pool_limit() {
        e.to_string()
    } else {
        format!("this is not a weft adapter component: {e}")
    }
}
