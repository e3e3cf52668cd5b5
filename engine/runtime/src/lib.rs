//! weft-runtime: runs adapter plugins, which are WebAssembly components
//! implementing `weft:plugin/adapter` (see `wit/plugin.wit`).
//!
//! Lifecycle in phases: link once ([`Runtime::new`]) → load a component,
//! compiled once and cached precompiled on disk, into a [`Plugin`] holding one
//! `InstancePre` and the plugin's manifest → per invocation, a fresh `Store`
//! with a memory cap, an epoch deadline and only the authority the binding
//! grants ([`Runtime::invoke`]). A trap, a timeout or an exhausted limit comes
//! back as a typed [`Failure`](weft_model::Failure), never as a crash.
//!
//! Depends on `weft-model`, wasmtime and tokio; knows nothing of the store or
//! the driver.

mod bindings;
mod cache;
mod host;
mod invoke;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use weft_model::bindings::{DEFAULT_MEMORY, MAX_MEMORY};
use weft_model::{ActionInfo, Manifest};

pub use host::HeartbeatSink;
pub use invoke::Call;
pub use weft_model::StepOutcome;

use bindings::AdapterPre;
use host::HostState;

/// An error and its causes on one line, whitespace (and the byte dumps
/// some parser errors carry) collapsed: it ends up in one log or CLI line.
fn one_line(e: &wasmtime::Error) -> String {
    let text = format!("{e:#}");
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot set up the WebAssembly engine: {0:#}")]
    Engine(wasmtime::Error),
    #[error("{name}: this is not a WebAssembly component: {}", one_line(.source))]
    Compile {
        name: String,
        source: wasmtime::Error,
    },
    #[error("{name}: the component is larger than this engine's instance pool allows: {}", one_line(.source))]
    Pool {
        name: String,
        source: wasmtime::Error,
    },
    #[error("{name}: the component does not implement the weft:plugin/adapter world: {}", one_line(.source))]
    World {
        name: String,
        source: wasmtime::Error,
    },
    #[error("{name}: `describe` failed: {}", one_line(.source))]
    Describe {
        name: String,
        source: wasmtime::Error,
    },
    #[error("{name}: the manifest is unusable: {why}")]
    Manifest { name: String, why: String },
    #[error("cannot use the component cache at {path}: {source}")]
    Cache {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the component was refused for this engine's instance pool
    /// rather than for what it is.
    pub fn is_pool_limit(&self) -> bool {
        matches!(self, Error::Pool { .. })
    }
}

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where precompiled components are kept; `None` compiles every load.
    pub cache_dir: Option<PathBuf>,
    /// Another cache read (never written) when `cache_dir` has no entry:
    /// the user's, so a data directory's first load of a component that
    /// `weft validate` compiled is a read, not a compile.
    pub cache_fallback: Option<PathBuf>,
    /// Invocations that may run at once (the size of the instance pool).
    pub max_concurrent: u32,
    /// How often the epoch advances; deadlines are checked at this grain.
    pub epoch_tick: Duration,
    /// Core instances one component may hold. A Rust adapter holds a few; a
    /// Python one (componentize-py) 14, or 38 built with `--stub-wasi`.
    pub core_instances_per_component: u32,
    /// Core instances all running invocations may hold together, on average
    /// per invocation: a pool full of Python adapters needs 14 or more.
    pub core_instances_per_invocation: u32,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: None,
            cache_fallback: None,
            max_concurrent: 1000,
            epoch_tick: Duration::from_millis(10),
            core_instances_per_component: 64,
            core_instances_per_invocation: 16,
        }
    }
}

/// Whether a wasmtime error is the instance pool refusing a component.
pub(crate) fn refused_by_pool(e: &wasmtime::Error) -> bool {
    let text = format!("{e:#}");
    text.contains("in the pooling allocator") || text.contains("exceeds the configured maximum")
}

/// A loaded plugin, ready to be instantiated for each invocation.
pub struct Plugin {
    pub name: Arc<str>,
    /// sha256 of the component bytes, hex.
    pub sha256: String,
    pub manifest: Manifest,
    pre: AdapterPre<HostState>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("sha256", &self.sha256)
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

/// The wasmtime engine, linker and instance pool shared by every plugin.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    options: RuntimeOptions,
    slots: Arc<tokio::sync::Semaphore>,
    ticker: Arc<AtomicBool>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker.store(false, Ordering::Relaxed);
    }
}

/// sha256 of some bytes, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `component` with a custom section `name` holding `tag` appended: the
/// same adapter, other bytes (so another digest), as a rebuild makes. For
/// tests and benchmarks of swaps.
pub fn with_custom_section(component: &[u8], name: &str, tag: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut content = Vec::new();
    leb(name.len(), &mut content);
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(tag.as_bytes());
    let mut bytes = component.to_vec();
    bytes.push(0);
    leb(content.len(), &mut bytes);
    bytes.extend_from_slice(&content);
    bytes
}

impl Runtime {
    pub fn new(options: RuntimeOptions) -> Result<Runtime> {
        let mut pool = PoolingAllocationConfig::default();
        let n = options.max_concurrent;
        let per_component = options.core_instances_per_component.max(1);
        let per_invocation = options.core_instances_per_invocation.max(1);
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(per_invocation))
            .max_core_instances_per_component(per_component)
            .total_memories(n.saturating_mul(2))
            .max_memories_per_component(8)
            .total_tables(n.saturating_mul(per_invocation))
            .max_tables_per_component(per_component)
            // Foreign runtimes (Python, JavaScript) carry more instance
            // state than the 1 MiB default allows.
            .max_component_instance_size(4 << 20)
            .total_stacks(n)
            .max_memory_size(MAX_MEMORY as usize)
            // Keeping a little memory resident per slot avoids page faults
            // and madvise storms between invocations (see FIELD-NOTES).
            .linear_memory_keep_resident(4 << 20)
            .table_keep_resident(1 << 20);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            // Fuel is counted in every store; a binding without `fuel:` gets
            // an amount it cannot exhaust.
            .consume_fuel(true)
            .parallel_compilation(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(Error::Engine)?;

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(Error::Engine)?;
        // Linked for every plugin, denied by default: each request is checked
        // against its binding's `allow_hosts` (see host::Outbound).
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(Error::Engine)?;
        bindings::Adapter::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(Error::Engine)?;

        let ticker = Arc::new(AtomicBool::new(true));
        spawn_epoch_ticker(engine.clone(), options.epoch_tick, ticker.clone());
        Ok(Runtime {
            engine,
            linker,
            slots: Arc::new(tokio::sync::Semaphore::new(n as usize)),
            options,
            ticker,
        })
    }

    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// Loads a component: from the precompiled cache when possible, else
    /// compiled (on a blocking thread) and cached. `name` is only used in
    /// messages. Its `describe` runs under the default memory cap.
    pub async fn load(&self, name: &str, bytes: Arc<[u8]>) -> Result<Plugin> {
        self.load_with_memory(name, bytes, DEFAULT_MEMORY).await
    }

    /// [`Runtime::load`], running `describe` with `memory` bytes of linear
    /// memory at most: the most any binding of the plugin grants.
    pub async fn load_with_memory(
        &self,
        name: &str,
        bytes: Arc<[u8]>,
        memory: u64,
    ) -> Result<Plugin> {
        let sha256 = sha256_hex(&bytes);
        let engine = self.engine.clone();
        let cache_dir = self.options.cache_dir.clone();
        let fallback = self.options.cache_fallback.clone();
        let owned_name = name.to_owned();
        let sha = sha256.clone();
        let component = tokio::task::spawn_blocking(move || {
            let dirs = cache::Dirs {
                own: cache_dir.as_deref(),
                fallback: fallback.as_deref(),
            };
            cache::component(&engine, dirs, &owned_name, &sha, &bytes)
        })
        .await
        .map_err(|e| Error::Engine(wasmtime::format_err!("compile task failed: {e}")))??;
        self.prepare(name, sha256, &component, memory).await
    }

    async fn prepare(
        &self,
        name: &str,
        sha256: String,
        component: &Component,
        memory: u64,
    ) -> Result<Plugin> {
        let world = |source| Error::World {
            name: name.to_owned(),
            source,
        };
        let pre = self.linker.instantiate_pre(component).map_err(world)?;
        let pre = AdapterPre::new(pre).map_err(world)?;
        let name: Arc<str> = name.into();
        let manifest = invoke::describe(self, &pre, &name, memory).await?;
        check_manifest(&name, &manifest)?;
        Ok(Plugin {
            name,
            sha256,
            manifest,
            pre,
        })
    }
}

fn check_manifest(name: &str, m: &Manifest) -> Result<()> {
    let bad = |why: String| Error::Manifest {
        name: name.to_owned(),
        why,
    };
    if m.actions.is_empty() {
        return Err(bad("it declares no actions".into()));
    }
    let mut seen: Vec<&str> = Vec::new();
    for ActionInfo { name: a, .. } in &m.actions {
        if a.is_empty() {
            return Err(bad("an action has an empty name".into()));
        }
        if seen.contains(&a.as_str()) {
            return Err(bad(format!("the action '{a}' is declared twice")));
        }
        seen.push(a);
    }
    Ok(())
}

/// Advances the engine's epoch every `tick` until the runtime is dropped.
/// Deadlines are counted in ticks of this wall-clock thread: the one place
/// the runtime reads real time, because a runaway guest runs in real time.
fn spawn_epoch_ticker(engine: Engine, tick: Duration, alive: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new()
        .name("weft-epoch".into())
        .spawn(move || {
            while alive.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                engine.increment_epoch();
            }
        });
    if let Err(e) = spawned {
        tracing::error!(
            "cannot start the epoch thread, plugin deadlines will not be enforced: {e}"
        );
    }
}
