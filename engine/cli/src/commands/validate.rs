//! `weft validate`: every problem with a process and its bindings, or "valid".

use std::path::Path;

use crate::args::Definition;
use crate::{exit, load, render};

pub async fn validate(def: &Definition) -> anyhow::Result<u8> {
    let runtime = super::runtime(None)?;
    match load::definition(&runtime, &def.process, &def.bindings).await {
        Ok(loaded) => {
            let p = &loaded.process;
            render::say(format_args!(
                "{}: process '{}' v{} is valid: {} states, {} actions bound to {} plugins",
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
    let loaded = match load::definition(&runtime, &def.process, &def.bindings).await {
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
        anyhow::bail!(
            "an engine serves {} at {}, and deploying through it is not built yet: stop it, \
             deploy, then start it again",
            data.display(),
            client.base()
        );
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
