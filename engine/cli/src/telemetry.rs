//! Logs and traces. Logs go to stderr: `WEFT_LOG` picks what (default:
//! warnings and errors; `weft_core=debug` shows each transition and
//! invocation as a span), `--log-format json` writes one JSON object per
//! line. With `--otlp-endpoint <url>` the engine's spans — one per
//! transition, one per invocation — are also exported over OTLP/HTTP (JSON)
//! to `<url>/v1/traces`, batched on a thread of their own, whatever
//! `WEFT_LOG` says.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// What must be flushed before the process exits.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered (waiting up to a few seconds for the
    /// collector), then stops the exporter.
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown_with_timeout(std::time::Duration::from_secs(5))
        {
            eprintln!("warning: could not export the last spans: {e}");
        }
    }
}

pub fn init(json: bool, otlp: Option<&str>) -> Result<Telemetry, String> {
    // wasi-http warns about every refused connection an adapter makes; the
    // adapter reports those itself, as a failed step.
    let filter = EnvFilter::try_from_env("WEFT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,wasmtime_wasi_http=error"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let logs: Box<dyn Layer<Registry> + Send + Sync> = if json {
        fmt.json()
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let (provider, traces) = match otlp {
        None => (None, None),
        Some(url) => {
            let provider = exporter(url)?;
            let tracer = provider.tracer("weft");
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(Targets::new().with_target("weft_core", Level::DEBUG));
            (Some(provider), Some(layer))
        }
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))?;
    Ok(Telemetry { provider })
}

fn exporter(url: &str) -> Result<SdkTracerProvider, String> {
    let base = url.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(format!(
            "--otlp-endpoint {url}: give the collector's OTLP/HTTP base URL, like http://127.0.0.1:4318"
        ));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(format!("{base}/v1/traces"))
        .build()
        .map_err(|e| format!("--otlp-endpoint {url}: {e}"))?;
    let resource = Resource::builder()
        .with_service_name("weft")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}
