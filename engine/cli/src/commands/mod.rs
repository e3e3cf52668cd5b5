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

/// The names of the processes stored, each once.
pub fn process_names(store: &dyn weft_store::Definitions) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = store.processes()?.into_iter().map(|p| p.name).collect();
    names.dedup(); // stored by name, then version
    Ok(names)
}

/// The processes that have bindings deployed: those an engine can run.
pub fn deployed(store: &dyn weft_store::Definitions) -> anyhow::Result<Vec<String>> {
    let mut names = process_names(store)?;
    let mut keep = Vec::with_capacity(names.len());
    for name in names.drain(..) {
        if store.deployment(&name)?.is_some() {
            keep.push(name);
        }
    }
    Ok(keep)
}

/// An engine on an open store that runs `processes`, their bindings and
/// plugins loaded from the store. It takes spooled operator requests.
pub async fn engine_on(
    store: Arc<SledStore>,
    data: &Path,
    processes: &[String],
) -> anyhow::Result<weft_core::Engine> {
    let runtime = runtime(Some(data))?;
    let invoker = Arc::new(crate::invoker::WasmInvoker::new(runtime.clone()));
    for name in processes {
        let route = crate::load::route_from_store(&runtime, &*store, name).await?;
        invoker.install(name, route);
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
