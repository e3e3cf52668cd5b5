//! `weft bench`: durable transitions per second for many concurrent
//! instances of a 3-step process on the sled store, the latency of one
//! plugin invocation (fresh store + instantiate + call), the resident memory
//! of many instances parked in a wait state, and the time from opening a
//! store with many unfinished instances to the first resumed step. Prints
//! the machine, the figures, and a machine-readable last line.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use weft_core::{Clock, Engine, EngineOptions, SystemClock};
use weft_model::{Grants, Span, Status, StepOutcome};
use weft_runtime::{Call, Runtime};
use weft_store::Instances;

use crate::invoker::WasmInvoker;
use crate::{exit, load, render};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub workload: Option<Workload>,
    /// Instances to run through the 3-step process.
    #[arg(long, default_value_t = 10_000)]
    pub instances: usize,
    /// Instances in flight at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Invocations timed for the latency figures.
    #[arg(long, default_value_t = 20_000)]
    pub invocations: usize,
    /// The echo plugin component.
    #[arg(
        long,
        default_value = "plugins/target/wasm32-wasip2/release/weft_echo.wasm"
    )]
    pub plugin: PathBuf,
    /// Where to put the store (default: a fresh temporary directory).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Instances parked in a wait state for the idle-memory figure, and
    /// unfinished instances for the resume figure.
    #[arg(long, default_value_t = 100_000)]
    pub idle: usize,
    /// Sizes of the map state timed for the fan-out figures, comma-separated
    /// (0 skips them). Two sizes in one run show how the cost grows.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000, 10_000])]
    pub map_items: Vec<usize>,
}

/// Other workloads `weft bench` runs.
#[derive(Debug, clap::Subcommand)]
pub enum Workload {
    /// The saga3 workload over HTTP against a `weft serve` child process
    /// (shared/bench/saga3.md): N instances, C clients each starting one
    /// with `wait` and checking its result.
    Http(super::bench_http::HttpArgs),
    /// One invocation of a Rust, a JavaScript and a Python adapter side by
    /// side, and one HTTP-adapter call to a loopback service.
    Adapters(super::bench_adapters::AdapterArgs),
    /// Hot swaps of the component behind an action under a steady load:
    /// the time from a swap request to the first invocation on the new
    /// component, and the attempts that failed meanwhile.
    Swap(super::bench_swap::SwapArgs),
    /// The dashboard's pages rendered with 100,000 instances in the store.
    Dashboard(super::bench_dashboard::DashboardArgs),
    /// Durable transitions per second of the stores alone (sled, and
    /// PostgreSQL with --store), in batches of 1, 16 and 256.
    Store(super::bench_store::StoreArgs),
}

const MAP: &str = r#"
process: fan
version: 1
start: each
states:
  each:
    type: map
    items: .items
    max_concurrency: 64
    output: .results
    branch:
      start: e
      states:
        e: { action: echo, input: '{n: .item}', on: { done: ok } }
        ok: { type: succeed }
    on: { done: end }
  end: { type: succeed, output: '{n: (.results | length)}' }
"#;

const WAITER: &str = r#"
process: waiter
version: 1
start: hold
states:
  hold:
    type: wait
    timeout: 1d
    on: { go: a, timeout: a }
  a: { action: echo, input: '{n: .n}', output: .a, on: { done: end } }
  end: { type: succeed }
"#;

const PROCESS: &str = r#"
process: bench
version: 1
start: a
states:
  a: { action: echo, input: '{n: .n}', output: .a, on: { done: b } }
  b: { action: echo, input: '{n: .a.n}', output: .b, on: { done: c } }
  c: { action: echo, input: '{n: .b.n}', output: .c, on: { done: end } }
  end: { type: succeed }
"#;

#[allow(clippy::disallowed_methods)] // a benchmark measures wall time
pub(super) fn now() -> Instant {
    Instant::now()
}

pub async fn bench(args: BenchArgs) -> anyhow::Result<u8> {
    match args.workload {
        Some(Workload::Http(http)) => return super::bench_http::http(http).await,
        Some(Workload::Adapters(a)) => return super::bench_adapters::adapters(a).await,
        Some(Workload::Swap(s)) => return super::bench_swap::swap(s).await,
        Some(Workload::Dashboard(d)) => return super::bench_dashboard::dashboard(d).await,
        Some(Workload::Store(s)) => return super::bench_store::store(s).await,
        None => {}
    }
    if std::env::var_os("RUST_LIB_BACKTRACE").is_some_and(|v| v != "0") {
        render::say("note: RUST_LIB_BACKTRACE is set: every wasmtime error captures a backtrace");
    }
    if !args.plugin.exists() {
        bail!(
            "{} does not exist: build the plugins first (make plugins)",
            args.plugin.display()
        );
    }
    let scratch = tempfile_dir()?;
    let data = args.data.clone().unwrap_or_else(|| scratch.clone());
    machine();

    let runtime = super::runtime(Some(&data))?;
    let loaded = echo_process(&scratch, &runtime, &args.plugin, "bench", PROCESS).await?;

    // Latency first, in a quiet process: after the throughput run sled's
    // background threads are still flushing and would skew it.
    let echo = &loaded.plugins["echo"].0;
    let (p50, p99, per_s) = latency(&runtime, echo, args.invocations).await;
    render::say(format_args!(
        "invocation (fresh store + instantiate + call): p50 {p50:.1} µs, p99 {p99:.1} µs over {} calls; \
         {per_s:.0} calls/s on 2 tasks",
        args.invocations
    ));
    let (rate, commits, batches) = transitions(&args, &data, &runtime, &loaded).await?;
    render::say(format_args!(
        "durable transitions: {rate:.0}/s ({commits} commits in {batches} write batches, {:.1} per batch) \
         for {} instances of a 3-step process, {} in flight, sled store",
        commits as f64 / batches.max(1) as f64,
        args.instances,
        args.concurrency
    ));

    let (rss_mb, first_ms, resume_detail) = idle(&args, &scratch, &runtime).await?;
    render::say(format_args!(
        "idle instances: {rss_mb:.1} MB resident above an empty engine with {} instances waiting in a wait state \
         (sled cache capped at {} MiB)",
        args.idle,
        weft_store_sled::SledStore::CACHE_BYTES >> 20
    ));
    render::say(format_args!(
        "resume: first resumed step {first_ms:.0} ms after opening a store with {} unfinished instances ({resume_detail})",
        args.idle
    ));

    let mut maps = Vec::new();
    for &items in args.map_items.iter().filter(|&&n| n > 0) {
        let secs = map(items, &scratch, &runtime, &args.plugin).await?;
        render::say(format_args!(
            "map: one instance over {items} items, 64 at a time, ended in {secs:.2} s ({:.0} items/s)",
            items as f64 / secs
        ));
        maps.push((items, secs));
    }
    if let [(n1, s1), .., (n2, s2)] = maps[..] {
        render::say(format_args!(
            "map: {:.1}x the items took {:.1}x the time",
            n2 as f64 / n1 as f64,
            s2 / s1
        ));
    }
    let list =
        |f: &dyn Fn(&(usize, f64)) -> String| maps.iter().map(f).collect::<Vec<_>>().join(",");
    render::say(format_args!(
        "transitions_per_s={rate:.0} invoke_p50_us={p50:.1} invoke_p99_us={p99:.1} \
         waiting_rss_mb={rss_mb:.1} resume_first_step_ms={first_ms:.0} map_items={} map_s={}",
        list(&|(n, _)| n.to_string()),
        list(&|(_, s)| format!("{s:.2}")),
    ));
    if args.data.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    Ok(exit::OK)
}

/// Resident set size of this process, in MB.
fn rss_mb() -> f64 {
    status_mb("self", "VmRSS:")
}

/// A memory figure (`VmRSS:`, `VmHWM:`, ...) of a process's
/// `/proc/<pid>/status`, in MB; 0 when it cannot be read.
pub(super) fn status_mb(pid: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Bindings that bind the action `echo` to the echo plugin at `plugin`.
pub(super) fn echo_bindings(plugin: &std::path::Path) -> anyhow::Result<String> {
    Ok(format!(
        "plugins:\n  echo: {}\nactions:\n  echo: {{ plugin: echo }}\n",
        std::path::absolute(plugin)?.display()
    ))
}

/// Writes a benchmark process whose one action, `echo`, is bound to the
/// echo plugin, and loads it.
pub(super) async fn echo_process(
    scratch: &std::path::Path,
    runtime: &Arc<Runtime>,
    plugin: &std::path::Path,
    name: &str,
    text: &str,
) -> anyhow::Result<load::Loaded> {
    let dir = scratch.join("defs");
    std::fs::create_dir_all(&dir)?;
    let process = dir.join(format!("{name}.yaml"));
    std::fs::write(&process, text)?;
    let bindings = dir.join("bindings.yaml");
    std::fs::write(&bindings, echo_bindings(plugin)?)?;
    load::definition(runtime, &process, &bindings, None)
        .await
        .map_err(|d| anyhow::anyhow!("{d}"))
}

/// Starts `n` instances of `waiter`, 256 at a time, and waits for all.
async fn start_many(engine: &Engine, n: usize, signal: bool) -> anyhow::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = slots.clone().acquire_owned().await?;
        let engine = engine.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let id = engine.start("waiter", Some(1), json!({"n": i})).await?;
            if signal {
                engine.signal(&id, "go", json!({})).await?;
            }
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

/// Resident memory with `--idle` instances waiting, and the time from
/// opening a store with `--idle` unfinished instances to the first resumed
/// step.
async fn idle(
    args: &BenchArgs,
    scratch: &std::path::Path,
    runtime: &Arc<Runtime>,
) -> anyhow::Result<(f64, f64, String)> {
    let loaded = echo_process(scratch, runtime, &args.plugin, "waiter", WAITER).await?;
    let clock = Arc::new(SystemClock);

    // Idle memory: an engine on a fresh store, then the same engine with
    // every instance parked in `hold`.
    let data = scratch.join("idle");
    let store = super::open_store(&data, true)?;
    let invoker = Arc::new(WasmInvoker::new(runtime.clone()));
    let engine = Engine::new(
        store.clone(),
        invoker.clone(),
        clock.clone(),
        EngineOptions::default(),
    );
    load::deploy(&engine, &invoker, &loaded).await?;
    engine.start("waiter", Some(1), json!({"n": -1})).await?;
    let empty = rss_mb();
    start_many(&engine, args.idle, false).await?;
    let waiting = store.ids_with_status(Status::Waiting)?.len();
    if waiting != args.idle + 1 {
        bail!(
            "expected {} waiting instances, found {waiting}",
            args.idle + 1
        );
    }
    // Let sled's background flusher settle before reading.
    clock
        .sleep_until(clock.now().plus(Span::from_millis(500)))
        .await;
    let rss = rss_mb() - empty;
    engine.shutdown().await;
    drop(engine);
    drop(store);

    // Resume: instances signalled by an offline engine (which commits but
    // carries nothing out) each have their next step in the outbox, as
    // after a crash. Time from opening the store to the first step done.
    let data = scratch.join("resume");
    {
        let store = super::open_store(&data, true)?;
        let options = EngineOptions {
            offline: true,
            ..EngineOptions::default()
        };
        let invoker = Arc::new(WasmInvoker::new(runtime.clone()));
        let engine = Engine::new(store.clone(), invoker.clone(), clock.clone(), options);
        load::deploy(&engine, &invoker, &loaded).await?;
        start_many(&engine, args.idle, true).await?;
        engine.shutdown().await;
    }
    let started = now();
    // The path `weft serve` takes: open the store (waiting for the one
    // above to let go of it), build the engine, resume; the plugin is read
    // from the store and loaded before the first invocation.
    let store = super::open_store(&data, false)?;
    let invoker = Arc::new(WasmInvoker::new(runtime.clone()));
    let engine = Engine::new(store.clone(), invoker, clock, EngineOptions::default());
    let mut notices = engine.subscribe();
    let resumed = engine.resume().await?.len();
    let first = loop {
        match tokio::time::timeout(Duration::from_secs(60), notices.recv()).await {
            Ok(Ok(n))
                if n.records
                    .iter()
                    .any(|r| matches!(r.kind, weft_model::RecordKind::Transition { .. })) =>
            {
                break started.elapsed();
            }
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => bail!("notices ended: {e}"),
            Err(_) => bail!("no step was resumed within 60 s"),
        }
    };
    engine.shutdown().await;
    Ok((
        rss,
        first.as_secs_f64() * 1e3,
        format!("{resumed} with a step in the outbox"),
    ))
}

/// Seconds one instance takes through a map state over `items` items of
/// the echo plugin, 64 at a time, the items given in its input.
async fn map(
    items: usize,
    scratch: &std::path::Path,
    runtime: &Arc<Runtime>,
    plugin: &std::path::Path,
) -> anyhow::Result<f64> {
    let loaded = echo_process(scratch, runtime, plugin, "fan", MAP).await?;
    let store = super::open_store(&scratch.join(format!("map-{items}")), true)?;
    let invoker = Arc::new(WasmInvoker::new(runtime.clone()));
    let clock = Arc::new(SystemClock);
    let engine = Engine::new(store, invoker.clone(), clock, EngineOptions::default());
    load::deploy(&engine, &invoker, &loaded).await?;
    let list: Vec<usize> = (0..items).collect();
    let started = now();
    let id = engine.start("fan", None, json!({ "items": list })).await?;
    let inst = engine.wait(&id).await?;
    let took = started.elapsed().as_secs_f64();
    engine.shutdown().await;
    if inst.status != Status::Succeeded || inst.output != Some(json!({ "n": items })) {
        bail!(
            "the map instance ended {} with {:?}",
            inst.status,
            inst.output
        );
    }
    Ok(took)
}

/// The `p` quantile (0 to 1) of sorted figures; 0 when there are none.
pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(super) fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir().join(format!("weft-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).with_context(|| format!("cannot create {}", base.display()))?;
    Ok(base)
}

pub(super) fn machine() {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    render::say(format_args!("machine: {cores} cores, {cpu}"));
}

/// Runs `instances` instances, `concurrency` at a time, and returns durable
/// transitions (commits) per second, commits and write batches.
async fn transitions(
    args: &BenchArgs,
    data: &std::path::Path,
    runtime: &Arc<Runtime>,
    loaded: &load::Loaded,
) -> anyhow::Result<(f64, u64, u64)> {
    let store = super::open_store(data, true)?;
    let clock = Arc::new(SystemClock);
    let invoker = Arc::new(WasmInvoker::new(runtime.clone()));
    let engine = Engine::new(store, invoker.clone(), clock, EngineOptions::default());
    load::deploy(&engine, &invoker, loaded).await?;

    let slots = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
    let mut notices = engine.subscribe();
    let total = args.instances;
    let finisher = {
        let slots = slots.clone();
        tokio::spawn(async move {
            let mut done = 0usize;
            let mut failed = 0usize;
            while done < total {
                match notices.recv().await {
                    Ok(n) if n.status != Status::Running => {
                        done += 1;
                        failed += usize::from(n.status != Status::Succeeded);
                        slots.add_permits(1);
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(k)) => {
                        anyhow::bail!("the benchmark fell {k} notices behind; lower --concurrency")
                    }
                    Err(e) => anyhow::bail!("notices ended: {e}"),
                }
            }
            Ok(failed)
        })
    };
    let before = engine.writer_stats().commits.load(Ordering::Relaxed);
    let batches_before = engine.writer_stats().batches.load(Ordering::Relaxed);
    let started = now();
    for n in 0..total {
        slots.acquire().await?.forget();
        let engine = engine.clone();
        tokio::spawn(async move {
            if let Err(e) = engine.start("bench", Some(1), json!({"n": n})).await {
                tracing::error!("start failed: {e}");
            }
        });
    }
    let failed = tokio::time::timeout(Duration::from_secs(600), finisher)
        .await
        .context("the benchmark did not finish in 10 minutes")???;
    let elapsed = started.elapsed().as_secs_f64();
    if failed > 0 {
        bail!("{failed} instances did not succeed");
    }
    let commits = engine.writer_stats().commits.load(Ordering::Relaxed) - before;
    let batches = engine.writer_stats().batches.load(Ordering::Relaxed) - batches_before;
    Ok((commits as f64 / elapsed, commits, batches))
}

/// p50 and p99 of one invocation, in µs, and calls per second with two
/// invocations in flight.
async fn latency(
    runtime: &Arc<Runtime>,
    echo: &Arc<weft_runtime::Plugin>,
    n: usize,
) -> (f64, f64, f64) {
    let input = json!({"n": 1});
    let config = json!({});
    let grants = Grants::default();
    let call = || Call {
        action: "echo",
        input: &input,
        config: &config,
        instance_id: "bench",
        key: "bench/a/1",
        attempt: 1,
        last_heartbeat: None,
        timeout: Span::from_secs(5),
        memory: 64 << 20,
        max_output: 1 << 20,
        fuel: None,
        grants: &grants,
        heartbeat: None,
    };
    // Warm up the pool's slots.
    for _ in 0..200 {
        let _ = runtime.invoke(echo, call()).await;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = now();
        let out = runtime.invoke(echo, call()).await;
        times.push(t.elapsed());
        debug_assert!(matches!(out, StepOutcome::Done { .. }));
    }
    times.sort();
    let us = |q: f64| {
        times[((times.len() as f64 * q) as usize).min(times.len() - 1)].as_secs_f64() * 1e6
    };

    let t = now();
    let per_task = n / 2;
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (rt, echo) = (runtime.clone(), echo.clone());
        tasks.push(tokio::spawn(async move {
            let input = json!({"n": 1});
            let config = json!({});
            let grants = Grants::default();
            for _ in 0..per_task {
                let _ = rt
                    .invoke(
                        &echo,
                        Call {
                            action: "echo",
                            input: &input,
                            config: &config,
                            instance_id: "bench",
                            key: "bench/a/1",
                            attempt: 1,
                            last_heartbeat: None,
                            timeout: Span::from_secs(5),
                            memory: 64 << 20,
                            max_output: 1 << 20,
                            fuel: None,
                            grants: &grants,
                            heartbeat: None,
                        },
                    )
                    .await;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let per_s = (per_task * 2) as f64 / t.elapsed().as_secs_f64();
    (us(0.50), us(0.99), per_s)
}
