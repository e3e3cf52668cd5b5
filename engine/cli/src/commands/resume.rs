//! `weft resume`: after a crash, pick up every unfinished instance in a data
//! directory and drive each to its end.

use std::path::Path;
use std::sync::Arc;

use weft_core::{Engine, EngineOptions, SystemClock};
use weft_model::Status;
use weft_store::{Definitions, Instances};

use super::open_store;
use crate::invoker::WasmInvoker;
use crate::{exit, load, render};

pub async fn resume(data: &Path) -> anyhow::Result<u8> {
    let store = open_store(data, false)?;
    let running = store.ids_with_status(Status::Running)?;
    if running.is_empty() {
        let waiting = store.ids_with_status(Status::Waiting)?.len();
        render::say(format_args!(
            "nothing to resume in {} ({waiting} waiting for signals or timers: `weft serve` keeps them moving)",
            data.display()
        ));
        return Ok(exit::OK);
    }
    let runtime = super::runtime(Some(data))?;
    let invoker = Arc::new(WasmInvoker::new(runtime.clone()));
    for id in &running {
        let Some(inst) = store.instance(id)? else {
            continue;
        };
        if !invoker.has(&inst.process) {
            let route =
                load::route_from_store(&runtime, &*store as &dyn Definitions, &inst.process)
                    .await?;
            invoker.install(&inst.process, route);
        }
    }
    let engine = Engine::new(
        store.clone(),
        invoker,
        Arc::new(SystemClock),
        EngineOptions::default(),
    );
    crate::inbox::serve(&engine, data);
    let mut notices = engine.subscribe();
    // Where each history stands before anything moves: print only what follows.
    let mut seqs = std::collections::HashMap::new();
    for id in &running {
        seqs.insert(id.clone(), store.instance(id)?.map_or(0, |i| i.seq));
    }
    // Instances with an invocation to carry out get it now; those waiting
    // on a retry timer or a completion token wait on.
    let pending = engine.resume()?;
    let mut moving = Vec::new();
    for id in running {
        let waits = store.instance(&id)?.is_some_and(|i| {
            i.fan.is_some()
                || i.step
                    .is_some_and(|s| !matches!(s.phase, weft_model::Phase::Invoking))
        });
        if pending.contains(&id) || waits {
            moving.push(id);
        } else {
            eprintln!(
                "warning: instance {id} is running but has no pending work; leaving it alone"
            );
        }
    }
    render::say(format_args!(
        "resuming {} instance{}",
        moving.len(),
        if moving.len() == 1 { "" } else { "s" }
    ));
    let from: Vec<u64> = moving
        .iter()
        .map(|id| seqs.get(id).copied().unwrap_or(0))
        .collect();
    let ended = super::run::follow(&engine, &moving, &from, &mut notices, true).await?;
    for inst in &ended {
        render::say(format_args!("{}  {}", inst.id, render::summary(inst)));
    }
    let count = |s: Status| ended.iter().filter(|i| i.status == s).count();
    render::say(format_args!(
        "done: {} succeeded, {} failed, {} parked, {} waiting",
        count(Status::Succeeded),
        count(Status::Failed),
        count(Status::Parked),
        count(Status::Waiting)
    ));
    let waiting = store.ids_with_status(Status::Waiting)?.len();
    if waiting > 0 {
        render::say(format_args!(
            "{waiting} instance{} wait for signals or timers: `weft serve --data {}` keeps them moving",
            if waiting == 1 { "" } else { "s" },
            data.display()
        ));
    }
    Ok(exit::OK)
}
