//! One module per subcommand; `run` dispatches.

pub mod bench;
mod operate;
mod resume;
mod run;
mod show;
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
        Command::Run { def, input, data } => run::run(&def, &input, &data.dir).await,
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

/// The WASM runtime, caching compiled plugins under the data directory.
pub fn runtime(data: Option<&Path>) -> anyhow::Result<Arc<Runtime>> {
    let options = RuntimeOptions {
        cache_dir: data.map(|d| d.join("cache")),
        ..RuntimeOptions::default()
    };
    Ok(Arc::new(Runtime::new(options)?))
}
