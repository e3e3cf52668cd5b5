//! `weft run`: deploy a process, start one instance, print its id and each
//! transition as it commits, then the end state and output.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;
use weft_core::Engine;
use weft_model::{InstanceId, Status};

use super::open_store;
use crate::args::Definition;
use crate::{exit, load, render};

pub async fn run(
    def: &Definition,
    input: &str,
    key: Option<String>,
    data: &Path,
) -> anyhow::Result<u8> {
    let input = parse_input(input)?;
    let runtime = super::runtime(Some(data))?;
    let loaded = match load::definition(
        &runtime,
        &def.process,
        &def.bindings,
        Some(&super::plugin::DataRegistry(data)),
    )
    .await
    {
        Ok(l) => l,
        Err(diags) => {
            for d in diags.iter() {
                eprintln!("{d}");
            }
            return Ok(exit::ERROR);
        }
    };
    let store = open_store(data, true)?;
    let (engine, invoker) = super::engine_with(store, runtime)?;
    // Other commands (complete, signal, status, ...) reach this engine here.
    let _api = crate::api::Bound::loopback()
        .await?
        .serve(&engine, &invoker, data)?;
    load::deploy(&engine, &invoker, &loaded).await?;
    let (name, version) = (loaded.process.name.clone(), loaded.process.version);
    start_and_follow(&engine, &name, Some(version), input, key, data).await
}

/// Starts an instance (or finds the one with the business key), prints its
/// id, then follows it until it ends or waits; the exit code says how.
pub async fn start_and_follow(
    engine: &Engine,
    name: &str,
    version: Option<u32>,
    input: Value,
    key: Option<String>,
    data: &Path,
) -> anyhow::Result<u8> {
    let mut notices = engine.subscribe();
    let started = engine
        .start_keyed(name, version, input, key.clone())
        .await?;
    let id = started.id;
    render::say(format_args!("{id}"));
    if started.existing {
        render::say(format_args!(
            "an instance of '{name}' was already started with the key '{}': following it",
            key.unwrap_or_default()
        ));
        // Its pending work, if any, belongs to this engine now.
        engine.resume().await?;
    }
    let ended = follow(
        engine,
        std::slice::from_ref(&id),
        &[0],
        &mut notices,
        false,
        data,
    )
    .await?;
    let inst = ended.into_iter().next().context("the instance vanished")?;
    render::say(format_args!("{}", render::outcome(&inst, data)));
    Ok(exit_code(inst.status))
}

pub fn exit_code(status: Status) -> u8 {
    match status {
        Status::Succeeded => exit::OK,
        Status::Failed | Status::Cancelled => exit::FAILED,
        Status::Parked | Status::Running => exit::PARKED,
        Status::Waiting => exit::WAITING,
    }
}

pub fn parse_input(text: &str) -> anyhow::Result<Value> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        anyhow::anyhow!("--input is not valid JSON: {e} (quote it for the shell: --input '{{\"order\": {{\"qty\": 1}}}}')")
    })?;
    if !v.is_object() {
        bail!("--input must be a JSON object, not {v}");
    }
    Ok(v)
}

/// Prints each instance's transitions from history number `from[i]` on, as
/// they commit (prefixed with the id when there are several), until none is
/// running (each has ended, is parked or waits); returns them as they are.
pub async fn follow(
    engine: &Engine,
    ids: &[InstanceId],
    from: &[u64],
    notices: &mut tokio::sync::broadcast::Receiver<weft_core::Notice>,
    prefix: bool,
    data: &Path,
) -> anyhow::Result<Vec<weft_model::Instance>> {
    let mut trouble = engine.trouble();
    let mut printed = from.to_vec();
    let mut ended: Vec<Option<weft_model::Instance>> = vec![None; ids.len()];
    let mut dirty: Vec<usize> = (0..ids.len()).collect();
    loop {
        for i in dirty.drain(..) {
            let id = &ids[i];
            // Snapshot first, history second: a commit writes both at once,
            // so the history read afterwards holds every record up to it.
            let inst = engine
                .status(id)
                .await
                .with_context(|| format!("cannot read instance {id}"))?;
            for r in engine.history(id, printed[i]).await? {
                if let Some(line) = render::progress(&r) {
                    if prefix {
                        render::say(format_args!("{id}  {line}"));
                    } else {
                        render::say(format_args!("{line}"));
                    }
                }
                printed[i] = r.seq + 1;
            }
            if inst.status != Status::Running {
                ended[i] = Some(inst);
            }
        }
        if ended.iter().all(Option::is_some) {
            return Ok(ended.into_iter().flatten().collect());
        }
        tokio::select! {
            n = notices.recv() => match n {
                Ok(n) => {
                    if let Some(i) = ids.iter().position(|id| *id == n.instance) {
                        dirty.push(i);
                    }
                }
                // Fell behind: look at every instance again.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    dirty.extend(0..ids.len())
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    bail!("the engine stopped")
                }
            },
            changed = trouble.changed() => {
                let problem = trouble.borrow_and_update().clone();
                if let (Ok(()), Some(problem)) = (changed, problem) {
                    bail!(
                        "{problem}\nthe instance stays where it was; when the store works again, \
                         `weft resume --data {}` carries on",
                        data.display()
                    );
                }
            }
        }
    }
}
