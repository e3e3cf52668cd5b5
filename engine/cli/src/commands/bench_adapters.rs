//! `weft bench adapters`: the cost of one invocation (fresh store +
//! instantiate + call) for the same kind of work in adapters written in
//! Rust, JavaScript and Python, side by side in one run, and of one call
//! of the HTTP adapter to a service on loopback.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use serde_json::{Value, json};
use weft_model::{Grants, Span, StepOutcome};
use weft_runtime::{Call, Plugin, Runtime};

use super::bench::now;
use crate::render;

#[derive(Debug, Args)]
pub struct AdapterArgs {
    /// Invocations timed per adapter.
    #[arg(long, default_value_t = 2_000)]
    pub invocations: usize,
    /// Where the Rust adapters are.
    #[arg(long, default_value = "plugins/target/wasm32-wasip2/release")]
    pub rust_dir: PathBuf,
    /// Where `scripts/build-foreign-adapters.sh` wrote the JavaScript and
    /// Python adapters (missing ones are skipped, and said so).
    #[arg(long, default_value = "target/foreign")]
    pub foreign_dir: PathBuf,
}

/// One adapter to time: its file, action, a typical input and config.
struct Subject {
    label: &'static str,
    file: PathBuf,
    action: &'static str,
    input: Value,
    config: Value,
    grants: Grants,
}

struct Figures {
    p50_us: f64,
    p99_us: f64,
    /// Compiling the component (and writing the cache entry).
    compile_ms: f64,
    /// Loading it again, precompiled, from the cache.
    cached_ms: f64,
}

pub async fn adapters(args: AdapterArgs) -> anyhow::Result<u8> {
    super::bench::machine();
    let scratch = super::bench::tempfile_dir()?;
    // A cache of its own and no fallback: the compile figure is a compile.
    let runtime = Arc::new(Runtime::new(weft_runtime::RuntimeOptions {
        cache_dir: Some(scratch.join("cache")),
        ..weft_runtime::RuntimeOptions::default()
    })?);
    let service = Service::start().await?;

    let subjects = [
        Subject {
            label: "rust",
            file: args.rust_dir.join("weft_payments.wasm"),
            action: "charge_payment",
            input: json!({"amount": 120, "card": "4242"}),
            config: json!({"limit": 5000}),
            grants: Grants::default(),
        },
        Subject {
            label: "js",
            file: args.foreign_dir.join("weft_risk_js.wasm"),
            action: "score-risk",
            input: json!({"amount": 120, "customer": "ada"}),
            config: json!({}),
            grants: Grants::default(),
        },
        Subject {
            label: "python",
            file: args.foreign_dir.join("weft_ledger_py.wasm"),
            action: "post-entry",
            input: json!({"account": "acc-1", "amount": 120}),
            config: json!({}),
            grants: Grants::default(),
        },
        Subject {
            label: "http",
            file: args.rust_dir.join("weft_http.wasm"),
            action: "request",
            input: json!({"id": "o-1"}),
            config: json!({"url": format!("http://{}/orders/{{{{ input.id }}}}", service.authority)}),
            grants: weft_model::bindings::grants_for_hosts(std::slice::from_ref(
                &service.authority,
            ))
            .map_err(anyhow::Error::msg)?,
        },
    ];
    let mut line = Vec::new();
    for s in &subjects {
        if !s.file.exists() {
            render::say(format_args!(
                "{:>6}: skipped, {} is not built ({})",
                s.label,
                s.file.display(),
                if s.label == "js" || s.label == "python" {
                    "scripts/build-foreign-adapters.sh"
                } else {
                    "make plugins"
                }
            ));
            continue;
        }
        let f = time(&runtime, s, args.invocations).await?;
        render::say(format_args!(
            "{:>6}: p50 {:>8.1} µs, p99 {:>8.1} µs per invocation over {} calls; load: compiled {:.0} ms, cached {:.1} ms",
            s.label, f.p50_us, f.p99_us, args.invocations, f.compile_ms, f.cached_ms
        ));
        line.push(format!(
            "{0}_p50_us={1:.1} {0}_p99_us={2:.1}",
            s.label, f.p50_us, f.p99_us
        ));
    }
    render::say(format_args!("BENCH-ADAPTERS {}", line.join(" ")));
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(crate::exit::OK)
}

async fn time(runtime: &Arc<Runtime>, s: &Subject, n: usize) -> anyhow::Result<Figures> {
    let bytes: Arc<[u8]> = std::fs::read(&s.file)?.into();
    let load = || async {
        let t = now();
        let plugin = runtime
            .load(s.label, bytes.clone())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        anyhow::Ok((plugin, t.elapsed().as_secs_f64() * 1e3))
    };
    let (_, compile_ms) = load().await?;
    let (plugin, cached_ms) = load().await?;
    let mut times = Vec::with_capacity(n);
    for i in 0..n + 20 {
        let t = now();
        let out = invoke(runtime, &plugin, s).await;
        if i >= 20 {
            times.push(t.elapsed());
        }
        if let StepOutcome::Failed { failure } = out {
            anyhow::bail!("{}: {} failed: {failure}", s.label, s.action);
        }
    }
    times.sort();
    let us = |q: f64| {
        times[((times.len() as f64 * q) as usize).min(times.len() - 1)].as_secs_f64() * 1e6
    };
    Ok(Figures {
        p50_us: us(0.50),
        p99_us: us(0.99),
        compile_ms,
        cached_ms,
    })
}

async fn invoke(runtime: &Runtime, plugin: &Plugin, s: &Subject) -> StepOutcome {
    runtime
        .invoke(
            plugin,
            Call {
                action: s.action,
                input: &s.input,
                config: &s.config,
                instance_id: "bench",
                key: "bench/a/1",
                attempt: 1,
                last_heartbeat: None,
                timeout: Span::from_secs(10),
                memory: 128 << 20,
                max_output: 1 << 20,
                fuel: None,
                grants: &s.grants,
                heartbeat: None,
            },
        )
        .await
}

/// A loopback HTTP service answering every request with a small JSON body.
struct Service {
    authority: String,
    _task: tokio::task::JoinHandle<()>,
}

impl Service {
    async fn start() -> anyhow::Result<Service> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let authority = listener.local_addr()?.to_string();
        let app = axum::Router::new().fallback(|uri: axum::http::Uri| async move {
            axum::Json(json!({"path": uri.path(), "status": "paid"}))
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Service {
            authority,
            _task: task,
        })
    }
}
