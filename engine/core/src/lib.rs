//! weft-core: the driver. It feeds events to the pure interpreter, commits
//! what comes out (group commit through [`Writer`]), and carries out the
//! commands: invoking actions through an [`Invoker`], re-driving the outbox
//! after a restart, recording each step's outcome under its idempotency key
//! so it is never invoked again once recorded.
//!
//! Depends on `weft-model`, the store traits and tokio. It knows nothing of
//! sled or wasmtime: the binary wires those in.

pub mod clock;
mod engine;
pub mod guard;
mod ids;
pub mod schedule;
pub mod writer;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use weft_model::{Bindings, InstanceId, Invoke, StepOutcome};

pub use clock::{Clock, SimClock, SystemClock};
pub use engine::{Completion, Delivered, Engine, EngineOptions, Notice, Started};
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

/// Carries out an action. The binary implements it over the WASM runtime;
/// tests implement it in memory.
pub trait Invoker: Send + Sync + 'static {
    fn invoke<'a>(&'a self, cmd: &'a Invoke, heartbeat: HeartbeatSink) -> InvokeFuture<'a>;

    /// The bindings of a process's actions: retry defaults and timeouts for
    /// the interpreter, limits for the engine's guards.
    fn bindings(&self, _process: &str) -> Option<Arc<Bindings>> {
        None
    }
}
