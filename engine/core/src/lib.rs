//! weft-core: the driver and the one owner of operations. It feeds events
//! to the pure interpreter, commits what comes out (group commit through
//! [`Writer`]), and carries out the commands: invoking actions through an
//! [`Invoker`] with the bindings deployed for each instance's process
//! version, re-driving the outbox after a restart, recording each step's
//! outcome under its idempotency key so it is never invoked again once
//! recorded. Deploy, start, signal, complete, cancel, redrive, migrate,
//! status, history and list are [`Engine`] methods; the CLI and the server
//! only parse, call and render.
//!
//! Depends on `weft-model`, the store traits and tokio. It knows nothing of
//! sled or wasmtime: the binary wires those in.

mod apply;
mod backoff;
pub mod clock;
mod dispatch;
mod engine;
pub mod guard;
mod ids;
pub mod metrics;
mod nodes;
mod operate;
pub mod schedule;
pub mod swap;
mod timers;
pub mod writer;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use weft_model::{InstanceId, Invoke, StepOutcome};
use weft_store::{Definitions, Deployment};

pub use apply::Delivered;
pub use clock::{Clock, SimClock, SystemClock};
pub use engine::{Engine, EngineOptions, Notice};
pub use operate::{
    Completion, DeployRequest, Deployed, Done, Gauges, Operation, Page, PageQuery, PluginInfo,
    PluginUse, ProcessRecord, Started, Summary,
};
pub use swap::{Component, Live, LiveCanary, SwapLog, SwapRequest, Tally};
pub use writer::Writer;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Store(Arc<weft_store::Error>),
    #[error("the writer thread has stopped")]
    WriterGone,
    #[error("no process named '{0}' is deployed")]
    NoProcess(String),
    #[error("process '{name}' has no version {version}")]
    NoVersion { name: String, version: u32 },
    #[error("stored process '{name}' v{version} no longer validates: {why}")]
    BadStoredProcess {
        name: String,
        version: u32,
        why: String,
    },
    #[error("no instance {0}")]
    NoInstance(InstanceId),
    #[error("{0}")]
    Conflict(weft_store::Conflict),
    #[error("the instance input must be a JSON object")]
    InputNotObject,
    #[error("no step is waiting on token '{0}'")]
    NoToken(String),
    #[error("token '{0}' was already completed, or its step has moved on")]
    TokenUsed(String),
    #[error("instance {0}: {1}")]
    Refused(InstanceId, String),
    #[error(
        "'{0}' is neither an instance id (26 letters and digits) nor the business key of an instance"
    )]
    UnknownTarget(String),
    #[error(
        "the business key '{key}' names instances of several processes ({found}); use the instance id"
    )]
    AmbiguousKey { key: String, found: String },
    #[error("{what}: {why}")]
    TooLarge { what: String, why: String },
    #[error("the engine has stopped")]
    Stopped,
    #[error("{0}")]
    DeployRefused(String),
    #[error("no plugin '{0}' in the registry (give a name, name@version or a sha256 digest)")]
    NoPlugin(String),
    /// A swap, rollback or promote that cannot be done, and why.
    #[error("{0}")]
    SwapRefused(String),
    /// A swap target that nothing deployed binds.
    #[error("{0}")]
    NoTarget(String),
    /// The instance is driven by another node of a shared store: the
    /// request belongs there (the API forwards it).
    #[error("instance {0} is driven by another node")]
    Elsewhere(InstanceId),
    /// This node holds no partition of the shared store yet, so it cannot
    /// place a new instance.
    #[error(
        "this node holds no partition of the store yet: try again in a moment, or on another node"
    )]
    NoPartition,
}

impl Error {
    /// A stored record that cannot be decoded: reading it again will not
    /// help (unlike an I/O failure, which may pass).
    pub fn is_unreadable(&self) -> bool {
        matches!(self, Error::Store(e) if matches!(**e, weft_store::Error::Corrupt { .. }))
    }
}

impl From<weft_store::Error> for Error {
    fn from(e: weft_store::Error) -> Self {
        Error::Store(Arc::new(e))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Receives the details of each heartbeat an invocation sends.
pub type HeartbeatSink = Arc<dyn Fn(String) + Send + Sync>;

pub type InvokeFuture<'a> = Pin<Box<dyn Future<Output = StepOutcome> + Send + 'a>>;

pub type PrepareFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Carries out actions with the plugins a deployment names. The binary
/// implements it over the WASM runtime; tests implement it in memory.
pub trait Invoker: Send + Sync + 'static {
    /// Gets a deployment's plugins ready (reads their bytes from
    /// `definitions`, compiles, instantiates) before its first invocation in
    /// this engine. While it fails, the deployment's invocations stay queued
    /// and it is tried again later: work is never failed for want of a
    /// plugin the engine could not load.
    fn prepare<'a>(
        &'a self,
        _deployment: &'a Deployment,
        _definitions: &'a dyn Definitions,
    ) -> PrepareFuture<'a> {
        Box::pin(async { Ok(()) })
    }

    /// Invokes one attempt of `cmd` with `deployment`'s binding of its
    /// action, on the component whose sha256 is `component` (the engine
    /// routes: a swapped action's own, a canary's, or its plugin's).
    fn invoke<'a>(
        &'a self,
        deployment: &'a Deployment,
        cmd: &'a Invoke,
        component: &'a str,
        heartbeat: HeartbeatSink,
    ) -> InvokeFuture<'a>;

    /// What a loaded component says about itself, when this invoker has it.
    fn manifest(&self, _sha256: &str) -> Option<weft_model::Manifest> {
        None
    }
}
