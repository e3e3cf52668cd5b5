//! `weft serve`: the long-running engine and its HTTP API. It resumes every
//! unfinished instance, fires durable timers and cron schedules as they
//! fall due, and answers the API — which other `weft` commands use too. It prints each transition as it
//! commits, and runs until interrupted (Ctrl-C) or terminated (SIGTERM);
//! stopping it at any moment loses nothing.

use std::path::Path;

use tokio::signal::unix::{SignalKind, signal};
use weft_model::Status;
use weft_store::Instances;

use super::{engine_on, open_store};
use crate::api::Bound;
use crate::args::Listen;
use crate::{exit, render};

/// The file in the data dir that tells other `weft` commands where the
/// running server answers.
pub const ADDRESS_FILE: &str = "server.addr";

pub async fn serve(data: &Path, http: &Listen, watch: Option<&Path>) -> anyhow::Result<u8> {
    // Bound before anything else: a taken port stops the start at once.
    let bound = Bound::bind(http).await?.with_metrics()?;
    // Installed before anything runs: a stop asked for while the engine
    // starts is not lost. SIGTERM is what service managers send.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let store = open_store(data, true)?;
    let (engine, invoker) = engine_on(store.clone(), data)?;
    let mut notices = engine.subscribe();
    let api = bound.serve(&engine, &invoker, data)?;
    let watcher = match watch {
        Some(dir) => Some(crate::watch::start(dir, engine.clone(), invoker.clone())?),
        None => None,
    };
    let local = api.url.clone();
    let resumed = engine.resume().await?;
    let schedules = engine.run_schedules().await?;
    // Counted once work is under way: it reads an index entry per instance.
    let waiting = store.ids_with_status(Status::Waiting)?.len();
    render::say(format_args!(
        "serving {} at {local}: {} instance{} resumed, {waiting} waiting, {schedules} schedule{}; \
         Ctrl-C or SIGTERM stops",
        data.display(),
        resumed.len(),
        if resumed.len() == 1 { "" } else { "s" },
        if schedules == 1 { "" } else { "s" },
    ));
    // Transitions are printed as they commit, also while stopping.
    let printer = tokio::spawn(async move {
        loop {
            match notices.recv().await {
                Ok(n) => {
                    for r in &n.records {
                        if let Some(line) = render::progress(r) {
                            render::say(format_args!("{}  {line}", n.instance));
                        }
                        if matches!(
                            r.kind,
                            weft_model::RecordKind::Succeeded { .. }
                                | weft_model::RecordKind::Failed { .. }
                                | weft_model::RecordKind::Parked { .. }
                                | weft_model::RecordKind::Cancelled { .. }
                        ) {
                            render::say(format_args!("{}  {}", n.instance, render::record(r)));
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(k)) => {
                    render::say(format_args!("({k} notices skipped: the engine is busy)"));
                }
                Err(_) => return,
            }
        }
    });
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    if let Some(w) = watcher {
        w.abort();
    }
    // A planned stop: the API stops taking requests (those under way are
    // answered), then the engine starts nothing new and lets invocations
    // under way finish and commit, all within the grace period; what is
    // still running then is cut off and runs again at the next start.
    let clock = engine.clock().clone();
    let until = clock.now().plus(http.grace);
    render::say(format_args!(
        "stopping: finishing what is under way (up to {})",
        http.grace
    ));
    tokio::select! {
        () = api.stop() => {}
        () = clock.sleep_until(until) => {}
    }
    let left = engine.drain(until.since(clock.now())).await;
    if left > 0 {
        render::say(format_args!(
            "{left} invocation{} cut off: {} again at the next start",
            if left == 1 { " was" } else { "s were" },
            if left == 1 { "it runs" } else { "they run" },
        ));
    }
    engine.shutdown().await;
    printer.abort();
    render::say("stopped");
    Ok(exit::OK)
}
