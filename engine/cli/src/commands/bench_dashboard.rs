//! `weft bench dashboard`: how long the dashboard's pages take to render with
//! many instances in the store. An in-process engine on the sled store
//! runs `--instances` instances of a one-step process to their end and
//! leaves `--waiting` more waiting for a signal; the server's router is
//! served on a loopback port, and each page is fetched `--rounds` times, one
//! request at a time, over a fresh connection. It prints p50 and p99 per
//! page: the time from sending the request to the last byte, on loopback,
//! which is the server's time plus a connection's.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use clap::Args;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_core::{Engine, EngineOptions, PageQuery, SystemClock};
use weft_model::Status;

use super::bench::{machine, now, percentile, tempfile_dir};
use crate::invoker::WasmInvoker;
use crate::{exit, load, render};

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Finished instances in the store.
    #[arg(long, default_value_t = 100_000)]
    pub instances: usize,
    /// Instances waiting for a signal (they are what the overview counts
    /// by process).
    #[arg(long, default_value_t = 1_000)]
    pub waiting: usize,
    /// Requests timed per page.
    #[arg(long, default_value_t = 50)]
    pub rounds: usize,
    /// The echo plugin component.
    #[arg(
        long,
        default_value = "plugins/target/wasm32-wasip2/release/weft_echo.wasm"
    )]
    pub plugin: PathBuf,
}

const PING: &str = r#"
process: ping
version: 1
start: call
states:
  call: { action: echo, input: '{n: .n}', output: .echo, on: { done: ok } }
  ok: { type: succeed }
"#;

const HOLD: &str = r#"
process: hold
version: 1
start: call
states:
  call: { action: echo, input: '{n: .n}', on: { done: hold } }
  hold:
    type: wait
    timeout: 1d
    on: { go: ok, timeout: ok }
  ok: { type: succeed }
"#;

/// Starts `n` instances of `process`, 256 at a time.
async fn start_many(engine: &Engine, process: &'static str, n: usize) -> anyhow::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = slots.clone().acquire_owned().await?;
        let engine = engine.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let id = engine.start(process, None, json!({"n": i})).await?;
            engine.wait(&id).await?;
            anyhow::Ok(())
        });
        while let Some(done) = tasks.try_join_next() {
            done??;
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// One GET over a fresh connection: the status and the milliseconds to the
/// last byte.
async fn get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<(u16, f64, usize)> {
    let started = now();
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut body = Vec::new();
    stream.read_to_end(&mut body).await?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let head = String::from_utf8_lossy(&body[..body.len().min(16)]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, ms, body.len()))
}

pub async fn dashboard(args: DashboardArgs) -> anyhow::Result<u8> {
    if !args.plugin.exists() {
        bail!(
            "{} does not exist: build the plugins first (make plugins)",
            args.plugin.display()
        );
    }
    let scratch = tempfile_dir()?.join("dashboard");
    std::fs::create_dir_all(&scratch)?;
    machine();
    let runtime = super::runtime(Some(&scratch))?;
    let store = super::open_store(&scratch.join("data"), true)?;
    let invoker = Arc::new(WasmInvoker::new(runtime.clone()));
    let engine = Engine::new(
        store.clone(),
        invoker.clone(),
        Arc::new(SystemClock),
        EngineOptions::default(),
    );
    for (name, text) in [("ping", PING), ("hold", HOLD)] {
        let loaded =
            super::bench::echo_process(&scratch, &runtime, &args.plugin, name, text).await?;
        load::deploy(&engine, &invoker, &loaded).await?;
    }
    let filling = now();
    start_many(&engine, "ping", args.instances).await?;
    start_many(&engine, "hold", args.waiting).await?;
    render::say(format_args!(
        "store: {} finished and {} waiting instances, made in {:.1} s",
        args.instances,
        args.waiting,
        filling.elapsed().as_secs_f64()
    ));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = weft_server::router(engine.clone(), weft_server::Options::default());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    // Pages of every kind, the list at its start, in its middle and
    // filtered, an instance in the middle of the store.
    let middle = engine
        .list(PageQuery {
            process: Some("ping".into()),
            status: Some(Status::Succeeded),
            limit: 1_000,
            after: None,
            ..PageQuery::default()
        })
        .await?;
    let mut cursor = middle.next.clone();
    for _ in 0..(args.instances / 2_000) {
        let Some(c) = cursor.clone() else { break };
        cursor = engine
            .list(PageQuery {
                process: Some("ping".into()),
                status: Some(Status::Succeeded),
                limit: 1_000,
                after: Some(c),
                ..PageQuery::default()
            })
            .await?
            .next;
    }
    let deep = cursor.map(|c| c.as_str().to_owned()).unwrap_or_default();
    let one = middle
        .items
        .last()
        .map(|i| i.id.as_str().to_owned())
        .unwrap_or_default();
    let pages = [
        ("overview", "overview", "/".to_owned()),
        (
            "instances, first page",
            "list_first",
            "/ui/instances".to_owned(),
        ),
        (
            "instances, page in the middle",
            "list_middle",
            format!("/ui/instances?process=ping&cursor={deep}"),
        ),
        (
            "instances, waiting only",
            "list_waiting",
            "/ui/instances?status=waiting".to_owned(),
        ),
        (
            "instances, a state none is in",
            "list_none",
            "/ui/instances?state=nope".to_owned(),
        ),
        ("instance", "instance", format!("/ui/instances/{one}")),
        (
            "process with its diagram",
            "process",
            "/ui/processes/hold/1".to_owned(),
        ),
    ];
    let mut last = Vec::new();
    for (name, key, path) in &pages {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..args.rounds {
            let (status, ms, size) = get(addr, path).await?;
            if status != 200 {
                bail!("{path} answered {status}");
            }
            times.push(ms);
            bytes = size;
        }
        times.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
        render::say(format_args!(
            "  {name:<30} p50 {p50:>7.2} ms  p99 {p99:>7.2} ms  ({} KiB)",
            bytes / 1024
        ));
        last.push(format!("{key}_p50_ms={p50:.2}"));
    }
    server.abort();
    engine.shutdown().await;
    render::say(format_args!(
        "BENCH-DASHBOARD instances={} waiting={} {}",
        args.instances,
        args.waiting,
        last.join(" ")
    ));
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(exit::OK)
}
