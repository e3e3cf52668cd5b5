//! Per-invocation host state: the WASI context (empty unless the binding
//! grants something), the memory cap, and the `log` / `heartbeat` imports.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::weft::plugin::host::{Host, Level};

/// Receives the details of each heartbeat an invocation sends.
pub type HeartbeatSink = Arc<dyn Fn(String) + Send + Sync>;

/// The longest log line or heartbeat a plugin may send; longer ones are cut.
const MAX_MESSAGE: usize = 4096;

pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) memory: MemoryCap,
    pub(crate) plugin: Arc<str>,
    pub(crate) instance: String,
    pub(crate) heartbeat: Option<HeartbeatSink>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let message = cut(message);
        let (plugin, instance) = (&*self.plugin, self.instance.as_str());
        match level {
            Level::Trace => tracing::trace!(target: "weft::plugin", plugin, instance, "{message}"),
            Level::Debug => tracing::debug!(target: "weft::plugin", plugin, instance, "{message}"),
            Level::Info => tracing::info!(target: "weft::plugin", plugin, instance, "{message}"),
            Level::Warn => tracing::warn!(target: "weft::plugin", plugin, instance, "{message}"),
            Level::Error => tracing::error!(target: "weft::plugin", plugin, instance, "{message}"),
        }
        Ok(())
    }

    fn heartbeat(&mut self, details: String) -> wasmtime::Result<()> {
        if let Some(sink) = &self.heartbeat {
            sink(cut(details));
        }
        Ok(())
    }
}

impl crate::bindings::weft::plugin::types::Host for HostState {}

/// Caps linear memory growth and remembers that the cap was hit, so the
/// resulting trap is reported as `error.limit` rather than a crash.
pub(crate) struct MemoryCap {
    pub(crate) max: usize,
    pub(crate) hit: bool,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.hit = true;
            return Err(wasmtime::format_err!(
                "memory limit of {} MiB exceeded",
                self.max >> 20
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}
