//! Compiled components cached on disk, keyed by the component's sha256 and
//! the engine's compatibility hash, so a restart loads plugins in
//! milliseconds instead of compiling them again.

use std::hash::{Hash, Hasher};
use std::path::Path;

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::{Error, Result};

/// Where to look for a compiled component, and where to keep one.
#[derive(Clone, Copy)]
pub(crate) struct Dirs<'a> {
    /// Read first, and written.
    pub(crate) own: Option<&'a Path>,
    /// Read when `own` has no entry; never written.
    pub(crate) fallback: Option<&'a Path>,
}

/// A component for `bytes`, from the cache when there is a usable entry.
pub(crate) fn component(
    engine: &Engine,
    dirs: Dirs<'_>,
    name: &str,
    sha256: &str,
    bytes: &[u8],
) -> Result<Component> {
    let compile_err = |source: wasmtime::Error| {
        if crate::refused_by_pool(&source) {
            Error::Pool {
                name: name.to_owned(),
                source,
            }
        } else {
            Error::Compile {
                name: name.to_owned(),
                source,
            }
        }
    };
    let entry = format!("{sha256}-{:016x}.cwasm", engine_hash(engine));
    for dir in [dirs.own, dirs.fallback].into_iter().flatten() {
        let path = dir.join(&entry);
        if path.exists() {
            match deserialize(engine, &path) {
                Ok(c) => return Ok(c),
                Err(e) => tracing::warn!("ignoring unusable cache entry {}: {e:#}", path.display()),
            }
        }
    }
    let Some(dir) = dirs.own else {
        return Component::new(engine, bytes).map_err(compile_err);
    };
    let path = dir.join(&entry);
    let compiled = engine.precompile_component(bytes).map_err(compile_err)?;
    let cache_err = |source| Error::Cache {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(cache_err)?;
    // Write then rename, so a crash never leaves a half-written entry.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &compiled).map_err(cache_err)?;
    std::fs::rename(&tmp, &path).map_err(cache_err)?;
    deserialize(engine, &path).map_err(compile_err)
}

/// Reads the entry into memory rather than mapping it: a mapped file that is
/// truncated under a running engine would kill it with SIGBUS.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    let bytes = std::fs::read(path)?;
    // SAFETY: the file is one this module wrote from `precompile_component`
    // (renamed into place only when complete), named by the source's sha256
    // and this engine's compatibility hash; wasmtime also refuses artifacts
    // from another engine configuration. Whoever can write the data directory
    // can already change what weft runs.
    unsafe { Component::deserialize(engine, &bytes) }
}

fn engine_hash(engine: &Engine) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    h.finish()
}
