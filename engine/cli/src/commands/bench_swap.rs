//! `weft bench swap`: hot swaps under a steady load. Instances of a one-step
//! process on the echo adapter start at a steady rate (1,000 a second by
//! default) on an engine with the sled store; meanwhile the component
//! behind `echo` is swapped several times, each time for a precompiled
//! build (another digest, already in the compile cache). It prints, per
//! swap, the time from the swap request to the first invocation on the new
//! component (`swap_live_ms`), and the attempts that failed and instances
//! that did not succeed over the whole run (`failed_during_swap`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use serde_json::json;
use weft_core::{
    Clock, Engine, EngineOptions, HeartbeatSink, InvokeFuture, Invoker, PrepareFuture, SystemClock,
};
use weft_model::{Invoke, RecordKind, Span, Status};
use weft_store::{Definitions, Deployment, Instances};

use super::bench::{machine, now, percentile, tempfile_dir};
use crate::invoker::WasmInvoker;
use crate::{exit, load, render};

#[derive(Debug, Args)]
pub struct SwapArgs {
    /// Instances started per second (one invocation each).
    #[arg(long, default_value_t = 1_000)]
    pub rate: u32,
    /// Swaps made during the run, one every --every.
    #[arg(long, default_value_t = 5)]
    pub swaps: usize,
    /// The time between swaps (and before the first, after the last).
    #[arg(long, default_value = "1s")]
    pub every: String,
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
  call: { action: echo, input: '{n: .n}', on: { done: ok } }
  ok: { type: succeed }
"#;

/// The invoker, noting when a component it is waiting for is first called.
struct Watching {
    inner: Arc<WasmInvoker>,
    waiting: Mutex<Option<(String, Option<Instant>)>>,
}

impl Watching {
    fn expect(&self, sha256: &str) {
        *self.waiting.lock().unwrap_or_else(|p| p.into_inner()) = Some((sha256.to_owned(), None));
    }

    fn first_call(&self) -> Option<Instant> {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|(_, at)| *at)
    }
}

impl Invoker for Watching {
    fn prepare<'a>(
        &'a self,
        deployment: &'a Deployment,
        definitions: &'a dyn Definitions,
    ) -> PrepareFuture<'a> {
        self.inner.prepare(deployment, definitions)
    }

    fn invoke<'a>(
        &'a self,
        deployment: &'a Deployment,
        cmd: &'a Invoke,
        component: &'a str,
        heartbeat: HeartbeatSink,
    ) -> InvokeFuture<'a> {
        if let Some((sha, at @ None)) = &mut *self.waiting.lock().unwrap_or_else(|p| p.into_inner())
            && sha == component
        {
            *at = Some(now());
        }
        self.inner.invoke(deployment, cmd, component, heartbeat)
    }

    fn manifest(&self, sha256: &str) -> Option<weft_model::Manifest> {
        self.inner.manifest(sha256)
    }
}

/// The component with a custom section naming `tag` appended: the same
/// adapter, other bytes, as a rebuild makes.
fn build_of(base: &[u8], tag: &str) -> Vec<u8> {
    weft_runtime::with_custom_section(base, "weft-bench-build", tag)
}

pub async fn swap(args: SwapArgs) -> anyhow::Result<u8> {
    if !args.plugin.exists() {
        bail!(
            "{} does not exist: build the plugins first (make plugins)",
            args.plugin.display()
        );
    }
    if args.rate == 0 || args.swaps == 0 {
        bail!("--rate and --swaps must be 1 or more");
    }
    let every = Span::parse(&args.every).map_err(|e| anyhow::anyhow!("--every: {e}"))?;
    let scratch = tempfile_dir()?.join("swap");
    std::fs::create_dir_all(&scratch)?;
    machine();
    let runtime = super::runtime(Some(&scratch))?;
    let loaded = super::bench::echo_process(&scratch, &runtime, &args.plugin, "ping", PING).await?;
    let base = std::fs::read(&args.plugin)?;
    // Precompiled: each build is loaded once, so its compiled code is in
    // the cache the swap reads.
    let mut builds = Vec::new();
    for i in 0..args.swaps {
        let bytes = build_of(&base, &format!("build-{i}"));
        runtime.load("echo", bytes.clone().into()).await?;
        builds.push(bytes);
    }

    let store = super::open_store(&scratch.join("data"), true)?;
    let wasm = Arc::new(WasmInvoker::new(runtime.clone()));
    let watching = Arc::new(Watching {
        inner: wasm.clone(),
        waiting: Mutex::new(None),
    });
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let engine = Engine::new(
        store.clone(),
        watching.clone(),
        clock.clone(),
        EngineOptions::default(),
    );
    load::deploy(&engine, &wasm, &loaded).await?;

    // The load: one start every 1/rate s, each on a task of its own.
    let gap = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (engine, stop) = (engine.clone(), stop.clone());
        tokio::spawn(async move {
            let begun = now();
            let mut started = 0u64;
            let mut starts = tokio::task::JoinSet::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let due = begun + gap.mul_f64(started as f64);
                let wait = due.saturating_duration_since(now());
                if !wait.is_zero() {
                    let until = SystemClock.now().plus(Span(wait.as_millis() as u64));
                    SystemClock.sleep_until(until).await;
                }
                let engine = engine.clone();
                starts
                    .spawn(async move { engine.start("ping", None, json!({"n": started})).await });
                started += 1;
                while let Some(done) = starts.try_join_next() {
                    done??;
                }
            }
            while let Some(done) = starts.join_next().await {
                done??;
            }
            Ok::<(u64, Duration), anyhow::Error>((started, begun.elapsed()))
        })
    };
    let pause = |span: Span| {
        let clock = clock.clone();
        async move { clock.sleep_until(clock.now().plus(span)).await }
    };
    pause(every).await;
    let mut live_ms = Vec::new();
    let mut commit_ms = Vec::new();
    for bytes in builds {
        let sha = weft_runtime::sha256_hex(&bytes);
        watching.expect(&sha);
        let asked = now();
        crate::swapper::swap(
            &engine,
            &runtime,
            Some(&wasm),
            weft_server::Swap {
                target: "plugin:echo".into(),
                component: weft_server::SwapComponent::Bytes { name: None, bytes },
                canary: None,
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("the swap was refused: {}", e.message))?;
        commit_ms.push(asked.elapsed().as_secs_f64() * 1e3);
        let first = loop {
            if let Some(at) = watching.first_call() {
                break at;
            }
            if asked.elapsed() > Duration::from_secs(30) {
                bail!("no invocation reached the new component within 30 s");
            }
            pause(Span(1)).await;
        };
        live_ms.push(first.duration_since(asked).as_secs_f64() * 1e3);
        pause(every).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (started, took) = load.await??;
    // Every instance ends: wait for the last ones.
    let deadline = now() + Duration::from_secs(60);
    loop {
        let running = store.ids_with_status(Status::Running)?.len();
        if running == 0 {
            break;
        }
        if now() > deadline {
            bail!("{running} instances still running 60 s after the load stopped");
        }
        pause(Span(20)).await;
    }
    let mut failed_attempts = 0usize;
    let mut not_succeeded = 0usize;
    for status in Status::ALL {
        let ids = store.ids_with_status(status)?;
        if status != Status::Succeeded {
            not_succeeded += ids.len();
        }
        for id in ids {
            failed_attempts += store
                .history(&id, 0)?
                .iter()
                .filter(|r| matches!(r.kind, RecordKind::AttemptFailed { .. }))
                .count();
        }
    }
    engine.shutdown().await;
    let rate = started as f64 / took.as_secs_f64();
    let mut sorted = live_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let mut commits = commit_ms.clone();
    commits.sort_by(f64::total_cmp);
    render::say(format_args!(
        "swap under load: {started} instances at {rate:.0}/s (one invocation each), {} swaps to precompiled builds",
        live_ms.len()
    ));
    render::say(format_args!(
        "  request to first invocation on the new component: p50 {:.1} ms, max {:.1} ms ({})",
        percentile(&sorted, 0.5),
        sorted.last().copied().unwrap_or(0.0),
        live_ms
            .iter()
            .map(|m| format!("{m:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    render::say(format_args!(
        "  swap request answered (loaded from cache, checked, committed): p50 {:.1} ms, max {:.1} ms",
        percentile(&commits, 0.5),
        commits.last().copied().unwrap_or(0.0)
    ));
    let failed = failed_attempts + not_succeeded;
    render::say(format_args!(
        "  failed attempts {failed_attempts}, instances not succeeded {not_succeeded}"
    ));
    render::say(format_args!(
        "swap_live_ms={:.1} swap_live_max_ms={:.1} failed_during_swap={failed} rate={rate:.0}",
        percentile(&sorted, 0.5),
        sorted.last().copied().unwrap_or(0.0),
    ));
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(if failed == 0 { exit::OK } else { exit::FAILED })
}
