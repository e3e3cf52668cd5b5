//! Per-invocation host state: the WASI context (empty unless the binding
//! grants something), outgoing HTTP checked against the binding's
//! `allow_hosts`, the memory cap, and the `log` / `heartbeat` /
//! `retry-after` imports.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};
use weft_model::Grants;

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
    pub(crate) http: WasiHttpCtx,
    pub(crate) outbound: Outbound,
    /// What the guest asked with `retry-after`, in milliseconds.
    pub(crate) retry_after: Option<u64>,
}

impl HostState {
    pub(crate) fn new(wasi: WasiCtx, memory: usize, plugin: Arc<str>, grants: &Grants) -> Self {
        HostState {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryCap {
                max: memory,
                hit: false,
            },
            plugin,
            instance: String::new(),
            heartbeat: None,
            http: WasiHttpCtx::new(),
            outbound: Outbound::new(grants),
            retry_after: None,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Outgoing HTTP for one invocation: sent only to the hosts its binding
/// allows. A refused request hands the guest `HTTP-request-denied` and is
/// remembered, so the step fails with `error.capability_denied` whatever
/// the guest makes of it.
#[derive(Default)]
pub(crate) struct Outbound {
    pub(crate) allow: Grants,
    pub(crate) denied: Option<String>,
}

impl Outbound {
    pub(crate) fn new(grants: &Grants) -> Self {
        Outbound {
            allow: Grants {
                allow_hosts: grants.allow_hosts.clone(),
                ..Grants::default()
            },
            denied: None,
        }
    }
}

type Sent = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Sent {
        let uri = request.uri();
        let authority = uri.authority().map(|a| match a.port() {
            Some(_) => a.as_str().to_ascii_lowercase(),
            None => {
                let port = if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
                    443
                } else {
                    80
                };
                format!("{}:{port}", a.host().to_ascii_lowercase())
            }
        });
        match authority {
            Some(a) if self.allow.allows_host(&a) => {}
            Some(a) => {
                self.denied.get_or_insert(a);
                return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
            }
            None => {
                return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestUriInvalid) });
            }
        }
        _ = fut;
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
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

    fn retry_after(&mut self, millis: u64) -> wasmtime::Result<()> {
        self.retry_after = Some(millis);
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
