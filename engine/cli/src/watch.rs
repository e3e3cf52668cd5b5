//! `weft serve --plugins-dir <dir> --watch`: a component written into the
//! directory is swapped in for the plugin it is named after
//! (`weft_payments.wasm` and `payments.wasm` are plugin `payments`), after
//! the same checks as `weft plugin swap`. A file is taken once its size and
//! modification time have held still for one poll, so a copy under way is
//! not read half-written; a broken one is refused and logged, and the
//! component live before keeps serving. Files already there when the
//! engine starts are what was deployed or swapped before: only changes
//! made while it runs are swapped in.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use weft_core::Engine;
use weft_model::Span;
use weft_server::{Swap, SwapComponent};

use crate::invoker::WasmInvoker;
use crate::render;

/// How often the directory is read.
const POLL: Span = Span(250);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

#[derive(Debug, Default)]
struct Seen {
    /// What the file looked like when last handled (swapped or refused).
    handled: Option<Stamp>,
    /// What it looked like at the last poll, while it may be changing.
    last: Option<Stamp>,
}

fn components(dir: &Path) -> Vec<(PathBuf, Stamp)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Stamp)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "wasm"))
        .filter_map(|e| {
            let meta = e.metadata().ok().filter(std::fs::Metadata::is_file)?;
            Some((
                e.path(),
                Stamp {
                    len: meta.len(),
                    modified: meta.modified().ok(),
                },
            ))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Checks the directory is there, then watches it until the engine stops.
pub fn start(
    dir: &Path,
    engine: Engine,
    invoker: Arc<WasmInvoker>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    if !dir.is_dir() {
        anyhow::bail!(
            "--plugins-dir {} is not a directory: create it, or give the directory your adapters are built into",
            dir.display()
        );
    }
    let mut seen: HashMap<PathBuf, Seen> = components(dir)
        .into_iter()
        .map(|(p, s)| {
            (
                p,
                Seen {
                    handled: Some(s.clone()),
                    last: Some(s),
                },
            )
        })
        .collect();
    let dir = dir.to_owned();
    render::say(format_args!(
        "watching {} for adapter components ({} there now)",
        dir.display(),
        seen.len()
    ));
    let clock = engine.clock().clone();
    Ok(tokio::spawn(async move {
        loop {
            clock.sleep_until(clock.now().plus(POLL)).await;
            for (path, stamp) in components(&dir) {
                let entry = seen.entry(path.clone()).or_default();
                if entry.handled.as_ref() == Some(&stamp) {
                    continue;
                }
                if entry.last.as_ref() != Some(&stamp) {
                    // Changed since the last poll: it may still be being
                    // written.
                    entry.last = Some(stamp);
                    continue;
                }
                entry.handled = Some(stamp);
                swap_file(&engine, &invoker, &path).await;
            }
        }
    }))
}

async fn swap_file(engine: &Engine, invoker: &WasmInvoker, path: &Path) {
    let shown = path.display();
    let name = crate::commands::plugin::default_name(path);
    let bytes = match crate::load::read_limited(path, 256 << 20) {
        Ok(b) => b,
        Err(e) => {
            refused(&format!("cannot read {shown}: {e}"));
            return;
        }
    };
    let req = Swap {
        target: format!("plugin:{name}"),
        component: SwapComponent::Bytes {
            name: Some(name.clone()),
            bytes,
        },
        canary: None,
    };
    match crate::swapper::swap(engine, invoker.runtime(), Some(invoker), req).await {
        Ok(r) => render::say(format_args!(
            "watch: swapped plugin:{name} to {} ({}) from {shown}",
            r.plugin.as_deref().unwrap_or("an unregistered component"),
            render::short(&r.sha256)
        )),
        Err(e) if e.code == "target_not_found" => refused(&format!(
            "{shown} is not swapped in: no deployed bindings use plugin:{name}"
        )),
        Err(e) => refused(&format!(
            "{shown} refused: {}; plugin:{name} keeps its component",
            e.message
        )),
    }
}

fn refused(line: &str) {
    tracing::error!("watch: {line}");
}
