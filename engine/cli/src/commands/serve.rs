//! `weft serve`: the long-running engine and its HTTP API. It resumes every
//! unfinished instance, fires durable timers and cron schedules as they
//! fall due, and answers the API — which other `weft` commands use too. It prints each transition as it
//! commits, and runs until interrupted (Ctrl-C) or terminated (SIGTERM);
//! stopping it at any moment loses nothing.

use std::path::Path;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use weft_model::Status;

use super::{engine_on, open_store};
use crate::api::Bound;
use crate::args::{Listen, StoreArgs};
use crate::{exit, render};

/// The file in the data dir that tells other `weft` commands where the
/// running server answers.
pub const ADDRESS_FILE: &str = "server.addr";

pub async fn serve(
    data: &Path,
    http: &Listen,
    watch: Option<&Path>,
    on: &StoreArgs,
) -> anyhow::Result<u8> {
    if on.url.is_some() && on.advertise.is_none() && http.listen.ip().is_unspecified() {
        anyhow::bail!(
            "--listen {} is every address: say which one the other nodes reach this one at \
             with --advertise http://host:port",
            http.listen
        );
    }
    // Bound before anything else: a taken port stops the start at once.
    let bound = Bound::bind(http).await?.with_metrics()?;
    // Installed before anything runs: a stop asked for while the engine
    // starts is not lost. SIGTERM is what service managers send.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let (store, shared) = match &on.url {
        Some(url) => {
            let pg = Arc::new(connect(url, on, data).await?);
            (pg.clone() as Arc<dyn weft_store::Store>, Some(pg))
        }
        None => (open_store(data, true)? as Arc<dyn weft_store::Store>, None),
    };
    let (engine, invoker) = engine_on(store.clone(), data)?;
    let mut notices = engine.subscribe();
    let bound = match &shared {
        Some(pg) => bound.with_peers(Arc::new(Peers(pg.clone()))),
        None => bound,
    };
    let api = bound.serve(&engine, &invoker, data)?;
    let rebalancer = match &shared {
        Some(pg) => {
            let url = on.advertise.clone().unwrap_or_else(|| api.url.clone());
            let node = pg.clone();
            tokio::task::spawn_blocking(move || node.advertise(&url)).await??;
            Some(tokio::spawn(follow_ownership(pg.clone(), engine.clone())))
        }
        None => None,
    };
    let watcher = match watch {
        Some(dir) => Some(crate::watch::start(dir, engine.clone(), invoker.clone())?),
        None => None,
    };
    let local = api.url.clone();
    let resumed = engine.resume().await?;
    let schedules = engine.run_schedules().await?;
    // Counted once work is under way: it reads an index entry per instance.
    let waiting = store.ids_with_status(Status::Waiting)?.len();
    let what = match &shared {
        Some(pg) => format!(
            "{} as node {} ({} of {} partitions)",
            weft_store_postgres::redact(on.url.as_deref().unwrap_or_default()),
            pg.ownership().node,
            pg.ownership().held.len(),
            pg.partitions()
        ),
        None => data.display().to_string(),
    };
    render::say(format_args!(
        "serving {what} at {local}: {} instance{} resumed, {waiting} waiting, {schedules} schedule{}; \
         Ctrl-C or SIGTERM stops",
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
    if let Some(r) = rebalancer {
        r.abort();
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
    if let Some(pg) = shared {
        // Other nodes take this one's partitions at once, not after the
        // lease.
        if let Err(e) = tokio::task::spawn_blocking(move || pg.release()).await? {
            render::say(format_args!("could not hand over the partitions: {e}"));
        }
    }
    printer.abort();
    render::say("stopped");
    Ok(exit::OK)
}

/// Connects to the PostgreSQL store as a node, creating the schema in an
/// empty database.
async fn connect(
    url: &str,
    on: &StoreArgs,
    data: &Path,
) -> anyhow::Result<weft_store_postgres::PgStore> {
    super::store::require_url(url)?;
    std::fs::create_dir_all(data)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", data.display()))?;
    let options = weft_store_postgres::Options {
        node: on
            .node
            .clone()
            .unwrap_or_else(weft_store_postgres::default_node_name),
        lease_ttl: std::time::Duration::from_millis(on.lease_ttl.as_millis()),
        ..weft_store_postgres::Options::default()
    };
    let url = url.to_owned();
    Ok(
        tokio::task::spawn_blocking(move || weft_store_postgres::PgStore::connect(&url, options))
            .await??,
    )
}

/// Where the other nodes of the PostgreSQL store answer.
struct Peers(Arc<weft_store_postgres::PgStore>);

impl weft_server::Peers for Peers {
    fn owner(&self, id: &weft_model::InstanceId) -> Option<String> {
        match self.0.owner_url(id) {
            Ok(url) => url,
            Err(e) => {
                tracing::warn!("cannot look up the node of {id}: {e}");
                None
            }
        }
    }
}

/// Lets the engine follow this node's share of the partitions: when it
/// changes (another node took some, or this one took over a stopped
/// node's), the engine lets go of what it lost and takes up the work of
/// what it gained. And, every second, the bindings: a deploy or swap made
/// through another node is used here from the next attempt on.
async fn follow_ownership(pg: Arc<weft_store_postgres::PgStore>, engine: weft_core::Engine) {
    let clock = engine.clock().clone();
    let mut last = pg.ownership().held;
    for round in 1u64.. {
        clock
            .sleep_until(clock.now().plus(weft_model::Span::from_millis(200)))
            .await;
        // Every second: bindings changed through another node.
        if round % 5 == 0 {
            match engine.refresh_bindings().await {
                Ok(0) => {}
                Ok(n) => render::say(format_args!(
                    "bindings changed through another node: {n} process version{} now run \
                     with the newest",
                    if n == 1 { "" } else { "s" }
                )),
                Err(e) => tracing::warn!("cannot read the newest bindings: {e}"),
            }
        }
        let now = pg.ownership().held;
        if now == last {
            continue;
        }
        let gained = now.keys().filter(|p| !last.contains_key(p)).count();
        let lost = last.keys().filter(|p| !now.contains_key(p)).count();
        let partitions = pg.partitions();
        let gained_set: std::collections::BTreeSet<u32> = now
            .keys()
            .filter(|p| !last.contains_key(p))
            .copied()
            .collect();
        let ours = |id: &weft_model::InstanceId| {
            gained_set.contains(&weft_store_postgres::partition_of(id, partitions))
        };
        match engine.rebalance(&ours).await {
            Ok(n) => {
                render::say(format_args!(
                    "partitions: took {gained}, lost {lost}, holds {}; {n} invocation{} taken up",
                    now.len(),
                    if n == 1 { "" } else { "s" }
                ));
                last = now;
            }
            // Tried again at the next look.
            Err(e) => render::say(format_args!("partitions changed, but: {e}")),
        }
    }
}
