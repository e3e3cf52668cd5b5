//! `weft validate`: every problem with a process and its bindings, or "valid".

use std::path::Path;

use crate::args::Definition;
use crate::{exit, load, render};

pub async fn validate(
    def: &Definition,
    data: &Path,
    strict: bool,
    explain: Option<&str>,
) -> anyhow::Result<u8> {
    let runtime = super::runtime(None)?;
    let registry = super::plugin::DataRegistry(data);
    match load::definition(&runtime, &def.process, &def.bindings, Some(&registry)).await {
        Ok(loaded) => {
            let p = &loaded.process;
            let declared = |action: &str| {
                let b = loaded.bindings.actions.get(action)?;
                let (plugin, _) = loaded.plugins.get(&b.plugin)?;
                plugin.manifest.action(&b.action).map(|a| a.errors.clone())
            };
            let cx = weft_model::analysis::Context {
                defaults: &loaded.bindings,
                bindings: Some(&loaded.bindings),
                declared_errors: &declared,
            };
            let warnings = match load::document(&def.process) {
                Ok(doc) => weft_model::analysis::check(&doc, p, &cx),
                Err(_) => Vec::new(),
            };
            for w in &warnings {
                eprintln!("{w}");
            }
            if let Some(state) = explain {
                match weft_model::analysis::explain(p, state, &loaded.bindings) {
                    Some(text) => print!("{text}"),
                    None => anyhow::bail!(
                        "--explain {state}: process '{}' has no state '{state}' (its states: {})",
                        p.name,
                        p.states.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                }
            }
            let n = warnings.len();
            let noted = match n {
                0 => String::new(),
                1 => " (1 warning)".to_owned(),
                n => format!(" ({n} warnings)"),
            };
            if strict && n > 0 {
                eprintln!("{n} warning{} with --strict", if n == 1 { "" } else { "s" });
                return Ok(exit::ERROR);
            }
            render::say(format_args!(
                "{}: process '{}' v{} is valid: {} states, {} actions bound to {} plugins{noted}",
                def.process.display(),
                p.name,
                p.version,
                p.states.len(),
                p.actions().len(),
                loaded.plugins.len()
            ));
            Ok(exit::OK)
        }
        Err(diags) => {
            for d in diags.iter() {
                eprintln!("{d}");
            }
            let n = diags.len();
            eprintln!("{n} problem{} found", if n == 1 { "" } else { "s" });
            Ok(exit::ERROR)
        }
    }
}

/// `weft deploy`: validate, then store the process version, the bindings and
/// the plugin components.
pub async fn deploy(def: &Definition, data: &Path) -> anyhow::Result<u8> {
    let runtime = super::runtime(Some(data))?;
    let registry = super::plugin::DataRegistry(data);
    let loaded =
        match load::definition(&runtime, &def.process, &def.bindings, Some(&registry)).await {
            Ok(l) => l,
            Err(diags) => {
                for d in diags.iter() {
                    eprintln!("{d}");
                }
                return Ok(exit::ERROR);
            }
        };
    if let Some(client) = crate::client::Client::find(data)?
        && client.alive().await
    {
        return deploy_remote(&client, def, &loaded, data).await;
    }
    let store = super::open_store(data, true)?;
    let engine = super::offline_engine(store)?;
    let invoker = crate::invoker::WasmInvoker::new(runtime);
    let deployed = load::deploy(&engine, &invoker, &loaded).await?;
    engine.shutdown().await;
    let p = &loaded.process;
    let what = match (deployed.new_version, deployed.new_revision) {
        (true, _) => format!("deployed process '{}' v{}", p.name, p.version),
        (false, true) => format!(
            "deployed bindings revision {} for process '{}' v{}: its running instances use them from their next attempt",
            deployed.revision, p.name, p.version
        ),
        (false, false) => format!(
            "process '{}' v{} is already deployed with these bindings (revision {})",
            p.name, p.version, deployed.revision
        ),
    };
    render::say(format_args!(
        "{what}, {} actions bound to {} plugins, in {}",
        loaded.bindings.actions.len(),
        loaded.plugins.len(),
        data.display()
    ));
    Ok(exit::OK)
}

/// A deploy to the engine that holds the data directory, through its API:
/// checked here first (so problems name local paths), then sent whole —
/// texts and plugin components — and checked again by the engine.
async fn deploy_remote(
    client: &crate::client::Client,
    def: &Definition,
    loaded: &load::Loaded,
    data: &Path,
) -> anyhow::Result<u8> {
    use anyhow::Context;
    use base64::Engine as _;
    let text = |p: &Path| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    // `bindings.yaml` has the parent "", which is the working directory.
    let parent = def
        .bindings
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(parent)?;
    let plugins: serde_json::Map<String, serde_json::Value> = loaded
        .plugins
        .iter()
        .map(|(name, (_, bytes))| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            (name.clone(), serde_json::Value::String(b64))
        })
        .collect();
    let body = serde_json::json!({
        "process": { "name": def.process.display().to_string(), "text": text(&def.process)? },
        "bindings": { "name": def.bindings.display().to_string(), "text": text(&def.bindings)? },
        "base": base.display().to_string(),
        "plugins": plugins,
    });
    let answer = client
        .call(hyper::Method::POST, "/v1/deployments", Some(&body))
        .await?;
    let v = match answer {
        Ok(v) => v,
        Err(refusal) => {
            for p in &refusal.problems {
                eprintln!("{p}");
            }
            eprintln!("error: {}", refusal.message);
            return Ok(exit::ERROR);
        }
    };
    let (name, version) = (v["process"].as_str().unwrap_or("?"), &v["version"]);
    let what = if v["new_version"] == true {
        format!("deployed process '{name}' v{version}")
    } else if v["new_revision"] == true {
        format!(
            "deployed bindings revision {} for process '{name}' v{version}: its running instances use them from their next attempt",
            v["revision"]
        )
    } else {
        format!(
            "process '{name}' v{version} is already deployed with these bindings (revision {})",
            v["revision"]
        )
    };
    render::say(format_args!(
        "{what}, {} actions bound to {} plugins, through the engine at {} ({})",
        v["actions"],
        v["plugins"],
        client.base(),
        data.display()
    ));
    Ok(exit::OK)
}
