//! Reading what users wrote: a process, its bindings and the plugins those
//! name, checked together so every problem is reported at once — and putting
//! them into the store so an instance can be resumed from the store alone.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use indexmap::IndexMap;
use weft_core::DeployRequest;
use weft_model::source::{self, Diagnostic, Diagnostics, Document, Format, pointer};
use weft_model::{Bindings, Manifest, Process};
use weft_runtime::{Plugin, Runtime};
use weft_store::PluginBlob;

/// A checked process with its bindings and loaded plugins.
pub struct Loaded {
    pub process: Process,
    pub bindings: Bindings,
    pub plugins: IndexMap<String, (Arc<Plugin>, Arc<[u8]>)>,
}

/// Largest process or bindings file read.
const MAX_DOCUMENT_BYTES: u64 = 16 << 20;

/// Largest plugin component read: foreign-language components run to tens
/// of MiB (a Python one is ~18 MiB); this leaves room and stops `/dev/zero`.
const MAX_PLUGIN_BYTES: u64 = 256 << 20;

/// Reads a regular file of at most `max` bytes: a device, a FIFO or a huge
/// file is refused instead of read until memory runs out.
pub fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("it is not a regular file".into());
    }
    let mut bytes = Vec::with_capacity(meta.len().min(max) as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err(format!("it is larger than {} MiB", max >> 20));
    }
    Ok(bytes)
}

pub fn read(path: &Path) -> Result<String, Diagnostic> {
    let fail = |why: String| {
        Diagnostic::new(
            &path.display().to_string(),
            None,
            format!("cannot read the file: {why}"),
        )
        .hint("check the path")
    };
    let bytes = read_limited(path, MAX_DOCUMENT_BYTES).map_err(fail)?;
    String::from_utf8(bytes).map_err(|e| fail(format!("it is not UTF-8 text ({e})")))
}

pub fn document(path: &Path) -> Result<Document, Diagnostic> {
    let text = read(path)?;
    let name = path.display().to_string();
    source::load(&name, &text, Format::from_path(&name))
}

/// A process file alone, checked (no bindings, no plugins).
pub fn process_file(path: &Path) -> Result<weft_model::Process, weft_model::Diagnostics> {
    let text = read(path)?;
    weft_model::parse_process(&path.display().to_string(), &text)
}

/// A bindings file alone, for its retry and timeout defaults: plugin paths
/// are not read.
pub fn bindings_file(path: &Path) -> Result<weft_model::Bindings, weft_model::Diagnostics> {
    let doc = document(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    weft_model::bindings::bindings(&doc, base)
}

/// Where a definition's plugin components come from.
pub enum Plugins<'a> {
    /// The files its bindings name.
    Files,
    /// Bytes given by name (a deploy through the API): the paths in the
    /// bindings are not read.
    Given(&'a IndexMap<String, Vec<u8>>),
}

/// A registered component's bytes, on their way.
pub type Fetch<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, String>> + Send + 'a>>;

/// A plugin registry that bindings may name components from.
pub trait Registry: Sync {
    /// The bytes of `reference` (`name@version`, or `sha256:<hex>`).
    fn fetch<'a>(&'a self, reference: &'a str) -> Fetch<'a>;
}

/// Whether a bindings `plugins:` value names a registered component
/// (`payments@2`, `sha256:<64 hex>`) rather than a file.
pub fn registry_reference(text: &str) -> Option<&str> {
    let versioned = text.split_once('@').is_some_and(|(name, v)| {
        weft_model::validate::valid_name(name)
            && !v.is_empty()
            && v.bytes().all(|b| b.is_ascii_digit())
    });
    let digest = text
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    (versioned || digest).then_some(text)
}

/// Loads and checks a process, its bindings and their plugins. Every problem
/// found comes back, in file order.
pub async fn definition(
    runtime: &Runtime,
    process_path: &Path,
    bindings_path: &Path,
    registry: Option<&dyn Registry>,
) -> Result<Loaded, Diagnostics> {
    let base = bindings_path.parent().unwrap_or(Path::new("."));
    check(
        runtime,
        document(process_path),
        document(bindings_path),
        base,
        Plugins::Files,
        registry,
    )
    .await
}

/// `definition` from texts (named as their files were), with relative
/// paths in the bindings resolved against `base`.
pub async fn from_texts(
    runtime: &Runtime,
    process: (&str, &str),
    bindings: (&str, &str),
    base: &Path,
    plugins: Plugins<'_>,
    registry: Option<&dyn Registry>,
) -> Result<Loaded, Diagnostics> {
    let doc = |(name, text): (&str, &str)| source::load(name, text, Format::from_path(name));
    check(
        runtime,
        doc(process),
        doc(bindings),
        base,
        plugins,
        registry,
    )
    .await
}

async fn check(
    runtime: &Runtime,
    pdoc: Result<Document, Diagnostic>,
    bdoc: Result<Document, Diagnostic>,
    base: &Path,
    given: Plugins<'_>,
    registry: Option<&dyn Registry>,
) -> Result<Loaded, Diagnostics> {
    let mut diags = Diagnostics::default();
    let pdoc = pdoc.map_err(|d| diags.push(d)).ok();
    let process = pdoc.as_ref().and_then(|doc| {
        weft_model::validate::process(doc)
            .map_err(|d| diags.extend(d))
            .ok()
    });
    let bdoc = bdoc.map_err(|d| diags.push(d)).ok();
    let bindings = bdoc.as_ref().and_then(|doc| {
        weft_model::bindings::bindings(doc, base)
            .map_err(|d| diags.extend(d))
            .ok()
    });

    let mut plugins = IndexMap::new();
    if let (Some(bindings), Some(bdoc)) = (&bindings, &bdoc) {
        for (name, path) in &bindings.plugins {
            let at = pointer(["plugins", name]);
            let written = bdoc
                .value
                .get("plugins")
                .and_then(|p| p.get(name))
                .and_then(|v| v.as_str())
                .and_then(registry_reference);
            let given_bytes = match &given {
                Plugins::Given(bytes) => bytes.get(name),
                Plugins::Files => None,
            };
            let memory = bindings.memory_for(name);
            let loaded = match (given_bytes, written, &given) {
                (Some(b), _, _) => load_bytes(runtime, name, b.as_slice().into(), memory).await,
                (None, Some(reference), _) => match registry {
                    Some(r) => match r.fetch(reference).await {
                        Ok(bytes) => load_bytes(runtime, name, bytes.into(), memory).await,
                        Err(why) => Err(format!("the registered component '{reference}': {why}")),
                    },
                    None => Err(format!(
                        "'{reference}' names a registered component, and no registry is at hand (give --data)"
                    )),
                },
                (None, None, Plugins::Files) => load_plugin(runtime, name, path, memory).await,
                (None, None, Plugins::Given(_)) => {
                    Err("its component was not sent with the deploy".to_owned())
                }
            };
            match loaded {
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
    memory: u64,
) -> Result<(Arc<Plugin>, Arc<[u8]>), String> {
    let shown = tidy(path);
    let bytes: Arc<[u8]> = read_limited(path, MAX_PLUGIN_BYTES)
        .map_err(|e| format!("cannot read {}: {e}", shown.display()))?
        .into();
    let plugin = runtime
        .load_with_memory(name, bytes.clone(), memory)
        .await
        .map_err(|e| format!("{}: {e}", shown.display()))?;
    Ok((Arc::new(plugin), bytes))
}

async fn load_bytes(
    runtime: &Runtime,
    name: &str,
    bytes: Arc<[u8]>,
    memory: u64,
) -> Result<(Arc<Plugin>, Arc<[u8]>), String> {
    if bytes.len() as u64 > MAX_PLUGIN_BYTES {
        return Err(format!("it is larger than {} MiB", MAX_PLUGIN_BYTES >> 20));
    }
    let plugin = runtime
        .load_with_memory(name, bytes.clone(), memory)
        .await
        .map_err(|e| e.to_string())?;
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

/// What a deploy stores: the checked process, its bindings with granted
/// directories made absolute (so they mean the same to every later engine,
/// whatever its working directory), and the plugin bytes.
pub fn deploy_request(loaded: &Loaded) -> anyhow::Result<DeployRequest> {
    let mut bindings = loaded.bindings.clone();
    for grant in bindings
        .actions
        .values_mut()
        .flat_map(|b| b.grants.dirs.iter_mut())
    {
        grant.1 = std::path::absolute(&grant.1)
            .with_context(|| format!("cannot resolve {}", grant.1.display()))?;
    }
    Ok(DeployRequest {
        process: loaded.process.clone(),
        bindings,
        plugins: loaded
            .plugins
            .iter()
            .map(|(name, (plugin, bytes))| PluginBlob {
                name: name.clone(),
                sha256: plugin.sha256.clone(),
                bytes: bytes.clone(),
            })
            .collect(),
    })
}

/// Deploys through the engine: one atomic write of the process version,
/// its bindings and plugins. The plugins just loaded are handed to the
/// invoker so they are not loaded twice.
pub async fn deploy(
    engine: &weft_core::Engine,
    invoker: &crate::invoker::WasmInvoker,
    loaded: &Loaded,
) -> anyhow::Result<weft_core::Deployed> {
    for (plugin, _) in loaded.plugins.values() {
        invoker.add(plugin.clone());
    }
    let p = &loaded.process;
    match engine.deploy(deploy_request(loaded)?).await {
        Ok(d) => Ok(d),
        Err(weft_core::Error::Conflict(conflict)) => {
            bail!("{conflict}: give the changed process a new `version:`")
        }
        Err(e) => {
            Err(e).with_context(|| format!("cannot deploy process '{}' v{}", p.name, p.version))
        }
    }
}
