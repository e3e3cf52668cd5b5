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
/// allows, at most [`MAX_REQUESTS`] of them. A refused request hands the
/// guest `HTTP-request-denied` and is remembered, so the step fails with
/// `error.capability_denied` (or `error.limit`) whatever the guest makes
/// of it.
pub(crate) struct Outbound {
    allow: Grants,
    sent: u32,
    pub(crate) refused: Option<Refused>,
}

/// Requests one attempt may send: bounds the connections (and file
/// descriptors) a guest can hold open until its timeout.
pub(crate) const MAX_REQUESTS: u32 = 64;

/// Why the host refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not in `allow_hosts`: the `host:port` asked for.
    Host(String),
    /// A URL with credentials (`user@host`), never sent.
    Credentials,
    /// More than [`MAX_REQUESTS`] in one attempt.
    TooMany,
}

impl Outbound {
    pub(crate) fn new(grants: &Grants) -> Self {
        Outbound {
            allow: Grants {
                allow_hosts: grants.allow_hosts.clone(),
                ..Grants::default()
            },
            sent: 0,
            refused: None,
        }
    }

    /// The `host:port` a request goes to, or why it may not go.
    fn check(&mut self, uri: &http::Uri) -> Result<(), Refused> {
        let authority = uri
            .authority()
            .ok_or_else(|| Refused::Host("a URL without a host".into()))?;
        // The client connects to the authority as written: one with
        // credentials would not be the host checked here, and may carry a
        // secret into a message.
        if authority.as_str().contains('@') {
            return Err(Refused::Credentials);
        }
        let port =
            authority
                .port_u16()
                .unwrap_or(if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
                    443
                } else {
                    80
                });
        let key = format!("{}:{port}", authority.host().to_ascii_lowercase());
        if !self.allow.allows_host(&key) {
            return Err(Refused::Host(key));
        }
        if self.sent >= MAX_REQUESTS {
            return Err(Refused::TooMany);
        }
        self.sent += 1;
        Ok(())
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
        if let Err(why) = self.check(request.uri()) {
            self.refused.get_or_insert(why);
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(hosts: &[&str]) -> Outbound {
        Outbound::new(&Grants {
            allow_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            ..Grants::default()
        })
    }

    fn uri(s: &str) -> http::Uri {
        s.parse().expect("a URI")
    }

    #[test]
    fn requests_go_only_to_allowed_host_ports() {
        let mut o = outbound(&["api.example.com:443", "127.0.0.1:8081", "*.svc.internal:80"]);
        for ok in [
            "https://api.example.com/x",
            "https://API.Example.com:443/x",
            "http://127.0.0.1:8081/",
            "http://a.svc.internal/y?z",
        ] {
            assert_eq!(o.check(&uri(ok)), Ok(()), "{ok}");
        }
        for (no, host) in [
            ("http://api.example.com/x", "api.example.com:80"),
            ("http://[::1]:8081/", "[::1]:8081"),
            ("https://api.example.com.:443/", "api.example.com.:443"),
        ] {
            assert_eq!(o.check(&uri(no)), Err(Refused::Host(host.into())), "{no}");
        }
        // Only host and port count, not the scheme.
        assert_eq!(o.check(&uri("https://127.0.0.1:8081/")), Ok(()));
        // Credentials are never sent, and never named.
        assert_eq!(
            o.check(&uri("http://user:s3cret@127.0.0.1:8081/")),
            Err(Refused::Credentials)
        );
        assert_eq!(
            outbound(&[]).check(&uri("http://127.0.0.1:8081/")),
            Err(Refused::Host("127.0.0.1:8081".into()))
        );
    }

    #[test]
    fn an_attempt_sends_a_bounded_number_of_requests() {
        let mut o = outbound(&["127.0.0.1:8081"]);
        for _ in 0..MAX_REQUESTS {
            assert_eq!(o.check(&uri("http://127.0.0.1:8081/")), Ok(()));
        }
        assert_eq!(
            o.check(&uri("http://127.0.0.1:8081/")),
            Err(Refused::TooMany)
        );
    }
}
