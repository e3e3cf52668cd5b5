//! `weft resume`: after a crash, pick up every unfinished instance in a data
//! directory and drive each to its end.

use std::path::Path;

use weft_model::Status;
use weft_store::Instances;

use super::open_store;
use crate::{exit, render};

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
    // One read of each before anything moves: which process it runs, where
    // its history stands (print only what follows), whether it waits on a
    // timer, a token or branches rather than an invocation.
    let mut found = Vec::with_capacity(running.len());
    for id in running {
        let inst = match store.instance(&id) {
            Ok(Some(inst)) => inst,
            Ok(None) => continue,
            // One unreadable record must not stop the others.
            Err(e) => {
                eprintln!("warning: instance {id} is left alone: {e}");
                continue;
            }
        };
        let waits = inst.fan.is_some()
            || inst
                .step
                .as_ref()
                .is_some_and(|s| !matches!(s.phase, weft_model::Phase::Invoking));
        found.push((id, inst.seq, waits));
    }
    let (engine, invoker) = super::engine_on(store.clone(), data)?;
    // Other commands (complete, signal, status, ...) reach this engine here.
    let _api = crate::api::Bound::loopback()
        .await?
        .serve(&engine, &invoker, data)?;
    let mut notices = engine.subscribe();
    // Instances with an invocation to carry out get it now; those waiting
    // on a retry timer or a completion token wait on.
    let pending: std::collections::HashSet<_> = engine.resume().await?.into_iter().collect();
    let mut moving = Vec::new();
    let mut from = Vec::new();
    for (id, seq, waits) in found {
        if pending.contains(&id) || waits {
            moving.push(id);
            from.push(seq);
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
    let ended = super::run::follow(&engine, &moving, &from, &mut notices, true, data).await?;
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
