//! One module per subcommand; `run` dispatches.

pub mod bench;
pub(crate) mod operate;
mod resume;
mod run;
mod serve;
mod show;
mod start;
mod validate;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use weft_runtime::{Runtime, RuntimeOptions};
use weft_store::SledStore;

use crate::args::Command;
use crate::inbox::Request;

pub async fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Validate { def } => validate::validate(&def).await,
        Command::Deploy { def, data } => validate::deploy(&def, &data.dir).await,
        Command::Run {
            def,
            input,
            key,
            data,
        } => run::run(&def, &input, key, &data.dir).await,
        Command::Start {
            process,
            input,
            key,
            version,
            data,
        } => start::start(&process, &input, key, version, &data.dir).await,
        Command::Signal {
            target,
            event,
            payload,
            dir,
        } => {
            let data: serde_json::Value = serde_json::from_str(&payload).map_err(|e| {
                anyhow::anyhow!("--data is not valid JSON: {e} (quote it for the shell: --data '{{\"by\": \"ana\"}}')")
            })?;
            operate::operate(
                &dir,
                Request::Signal {
                    target,
                    event,
                    data,
                },
            )
            .await
        }
        Command::Migrate { target, to, data } => {
            operate::operate(
                &data.dir,
                Request::Migrate {
                    target,
                    version: to,
                },
            )
            .await
        }
        Command::Serve { data } => serve::serve(&data.dir).await,
        Command::Status { id, data, json } => show::status(&id, &data.dir, json),
        Command::History { id, data, json } => show::history(&id, &data.dir, json),
        Command::Resume { data } => resume::resume(&data.dir).await,
        Command::Complete {
            token,
            output,
            error,
            message,
            data,
        } => {
            let req = match (output, error) {
                (Some(o), _) => Request::Complete {
                    token,
                    output: operate::parse_output(&o)?,
                },
                (None, Some(kind)) => Request::Fail {
                    token,
                    kind,
                    message,
                },
                (None, None) => anyhow::bail!("give --output '<json>' or --error <kind>"),
            };
            operate::operate(&data.dir, req).await
        }
        Command::Heartbeat {
            token,
            details,
            data,
        } => operate::operate(&data.dir, Request::Heartbeat { token, details }).await,
        Command::Redrive { id, data } => operate::operate(&data.dir, Request::Redrive { id }).await,
        Command::Cancel {
            id,
            compensate,
            data,
        } => operate::operate(&data.dir, Request::Cancel { id, compensate }).await,
        Command::Bench(args) => bench::bench(args).await,
    }
}

/// Opens the store in a data directory, creating it when `create` is set.
pub fn open_store(dir: &Path, create: bool) -> anyhow::Result<Arc<SledStore>> {
    let db = dir.join("db");
    if !create && !db.exists() {
        anyhow::bail!(
            "there is no weft data in {} (start an instance with `weft run ... --data {}`)",
            dir.display(),
            dir.display()
        );
    }
    let store = SledStore::open(&db)
        .with_context(|| format!("cannot open the data in {}", dir.display()))?;
    Ok(Arc::new(store))
}

/// An engine on an open store that can run every deployed process: the
/// plugins come from the store. It takes spooled operator requests.
pub async fn engine_on(store: Arc<SledStore>, data: &Path) -> anyhow::Result<weft_core::Engine> {
    use weft_store::Definitions;
    let runtime = runtime(Some(data))?;
    let invoker = Arc::new(crate::invoker::WasmInvoker::new(runtime.clone()));
    let mut names: Vec<String> = store.processes()?.into_iter().map(|p| p.name).collect();
    names.dedup();
    for name in names {
        if store.deployment(&name)?.is_some() {
            let route = crate::load::route_from_store(&runtime, &*store, &name).await?;
            invoker.install(&name, route);
        }
    }
    let engine = weft_core::Engine::new(
        store,
        invoker,
        Arc::new(weft_core::SystemClock),
        weft_core::EngineOptions::default(),
    );
    crate::inbox::serve(&engine, data);
    Ok(engine)
}

/// The WASM runtime, caching compiled plugins under the data directory.
pub fn runtime(data: Option<&Path>) -> anyhow::Result<Arc<Runtime>> {
    let options = RuntimeOptions {
        cache_dir: data.map(|d| d.join("cache")),
        ..RuntimeOptions::default()
    };
    Ok(Arc::new(Runtime::new(options)?))
}
