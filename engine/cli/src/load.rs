//! Reading what users wrote: a process, its bindings and the plugins those
//! name, checked together so every problem is reported at once — and putting
//! them into the store so an instance can be resumed from the store alone.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use indexmap::IndexMap;
use weft_model::source::{self, Diagnostic, Diagnostics, Document, Format, pointer};
use weft_model::{Bindings, Manifest, Millis, Process};
use weft_runtime::{Plugin, Runtime};
use weft_store::{Definitions, Deployment, ProcessRecord};

use crate::invoker::Route;

/// A checked process with its bindings and loaded plugins.
pub struct Loaded {
    pub process: Process,
    pub bindings: Bindings,
    pub plugins: IndexMap<String, (Arc<Plugin>, Arc<[u8]>)>,
}

impl Loaded {
    pub fn route(&self) -> Route {
        Route {
            bindings: Arc::new(self.bindings.clone()),
            plugins: self
                .plugins
                .iter()
                .map(|(n, (p, _))| (n.clone(), p.clone()))
                .collect(),
        }
    }
}

fn read(path: &Path) -> Result<String, Diagnostic> {
    std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::new(
            &path.display().to_string(),
            None,
            format!("cannot read the file: {e}"),
        )
        .hint("check the path")
    })
}

fn document(path: &Path) -> Result<Document, Diagnostic> {
    let text = read(path)?;
    let name = path.display().to_string();
    source::load(&name, &text, Format::from_path(&name))
}

/// Loads and checks a process, its bindings and their plugins. Every problem
/// found comes back, in file order.
pub async fn definition(
    runtime: &Runtime,
    process_path: &Path,
    bindings_path: &Path,
) -> Result<Loaded, Diagnostics> {
    let mut diags = Diagnostics::default();
    let pdoc = document(process_path).map_err(|d| diags.push(d)).ok();
    let process = pdoc.as_ref().and_then(|doc| {
        weft_model::validate::process(doc)
            .map_err(|d| diags.extend(d))
            .ok()
    });
    let bdoc = document(bindings_path).map_err(|d| diags.push(d)).ok();
    let base = bindings_path.parent().unwrap_or(Path::new("."));
    let bindings = bdoc.as_ref().and_then(|doc| {
        weft_model::bindings::bindings(doc, base)
            .map_err(|d| diags.extend(d))
            .ok()
    });

    let mut plugins = IndexMap::new();
    if let (Some(bindings), Some(bdoc)) = (&bindings, &bdoc) {
        for (name, path) in &bindings.plugins {
            let at = pointer(["plugins", name]);
            match load_plugin(runtime, name, path).await {
                Ok(loaded) => {
                    plugins.insert(name.clone(), loaded);
                }
                Err(why) => diags.push(bdoc.diag(&at, format!("plugin '{name}': {why}"))),
            }
        }
    }
    if let (Some(process), Some(pdoc), Some(bindings), Some(bdoc)) =
        (&process, &pdoc, &bindings, &bdoc)
    {
        let manifests: IndexMap<String, Manifest> = plugins
            .iter()
            .map(|(n, (p, _)): (&String, &(Arc<Plugin>, Arc<[u8]>))| {
                (n.clone(), p.manifest.clone())
            })
            .collect();
        diags.extend(weft_model::bindings::check(
            process, pdoc, bindings, bdoc, &manifests,
        ));
    }
    match (process, bindings) {
        (Some(process), Some(bindings)) if diags.is_empty() => Ok(Loaded {
            process,
            bindings,
            plugins,
        }),
        _ => Err(diags.sorted()),
    }
}

async fn load_plugin(
    runtime: &Runtime,
    name: &str,
    path: &Path,
) -> Result<(Arc<Plugin>, Arc<[u8]>), String> {
    let shown = tidy(path);
    let bytes: Arc<[u8]> = std::fs::read(path)
        .map_err(|e| format!("cannot read {}: {e}", shown.display()))?
        .into();
    let plugin = runtime
        .load(name, bytes.clone())
        .await
        .map_err(|e| format!("{}: {e}", shown.display()))?;
    Ok((Arc::new(plugin), bytes))
}

/// `a/b/../c` → `a/c`, without touching the filesystem.
pub fn tidy(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Stores the process version, the plugin components and the bindings, so
/// instances can later be resumed from the store alone.
pub fn deploy(store: &dyn Definitions, loaded: &Loaded, now: Millis) -> anyhow::Result<()> {
    let p = &loaded.process;
    let record = ProcessRecord {
        name: p.name.clone(),
        version: p.version,
        definition: p.definition.clone(),
        deployed_at: now,
    };
    if let Err(conflict) = store.put_process(&record)? {
        bail!("{conflict}: give the changed process a new `version:`");
    }
    let mut shas = IndexMap::new();
    for (name, (plugin, bytes)) in &loaded.plugins {
        store.put_plugin(&plugin.sha256, bytes)?;
        shas.insert(name.clone(), plugin.sha256.clone());
    }
    let mut bindings = loaded.bindings.clone();
    for grant in bindings
        .actions
        .values_mut()
        .flat_map(|b| b.grants.dirs.iter_mut())
    {
        grant.1 = std::path::absolute(&grant.1)
            .with_context(|| format!("cannot resolve {}", grant.1.display()))?;
    }
    store.put_deployment(&Deployment {
        process: p.name.clone(),
        bindings,
        plugins: shas,
        deployed_at: now,
    })?;
    Ok(())
}

/// Rebuilds a process's route from what the store holds.
pub async fn route_from_store(
    runtime: &Runtime,
    store: &dyn Definitions,
    process: &str,
) -> anyhow::Result<Route> {
    let d = store
        .deployment(process)?
        .with_context(|| format!("no bindings are deployed for process '{process}'"))?;
    let mut plugins = IndexMap::new();
    for (name, sha) in &d.plugins {
        let bytes = store
            .plugin(sha)?
            .with_context(|| format!("plugin '{name}' ({sha}) is missing from the store"))?;
        let plugin = runtime
            .load(name, bytes.into())
            .await
            .with_context(|| format!("cannot load plugin '{name}' from the store"))?;
        plugins.insert(name.clone(), Arc::new(plugin));
    }
    Ok(Route {
        bindings: Arc::new(d.bindings),
        plugins,
    })
}
