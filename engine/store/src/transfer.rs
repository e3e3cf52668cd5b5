//! Moving everything a store holds to another store — another backend
//! (`weft store copy`: an embedded deployment to PostgreSQL, and back) —
//! through the store traits alone, so any two backends can exchange.
//!
//! Definitions go first, as they were: process versions, every bindings
//! revision, plugin components, the registry (in version order, so the
//! versions come out the same), the swap log and schedule marks. Then each
//! instance, as one commit creating it whole: snapshot and data, branch
//! slots, history, outbox, recorded results, timers, tokens and its
//! business key — the same checks as any commit, one instance at a time, so
//! memory holds one instance, not the store.

use std::collections::{BTreeMap, BTreeSet};

use weft_model::{Instance, InstanceId, Invoke, Millis, Record, Status, Timer};

use crate::{
    Commit, Deployment, Error, PluginEntry, ProcessRecord, Result, StepResult, Store, SwapRecord,
    TokenRecord,
};

/// One unit of what a store holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    Process(ProcessRecord),
    Deployment(Deployment),
    Plugin {
        sha256: String,
        bytes: Vec<u8>,
    },
    Registered {
        entry: PluginEntry,
        bytes: Vec<u8>,
    },
    Swap(SwapRecord),
    ScheduleMark {
        process: String,
        index: u32,
        at: Millis,
    },
    Instance(Box<InstanceRows>),
}

/// An instance with everything filed under it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRows {
    pub instance: Instance,
    pub history: Vec<Record>,
    pub outbox: Vec<Invoke>,
    pub results: Vec<(String, StepResult)>,
    pub timers: Vec<Timer>,
    pub tokens: Vec<(String, TokenRecord)>,
}

/// What a copy moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    pub processes: usize,
    pub revisions: usize,
    pub plugins: usize,
    pub instances: usize,
    pub records: usize,
}

fn missing(what: String) -> Error {
    Error::backend("copy", what, "it vanished while it was read")
}

/// Calls `each` with every row of `store`: definitions first, then the
/// instances, by status and id.
pub fn for_each_row(store: &dyn Store, each: &mut dyn FnMut(Row) -> Result<()>) -> Result<()> {
    let processes = store.processes()?;
    let mut components = BTreeSet::new();
    for p in &processes {
        each(Row::Process(p.clone()))?;
    }
    let versions: BTreeSet<(String, u32)> = processes
        .iter()
        .map(|p| (p.name.clone(), p.version))
        .collect();
    let mut revisions = Vec::new();
    for (name, version) in &versions {
        let mut revision = 1;
        while let Some(d) = store.deployment_revision(name, *version, revision)? {
            components.extend(d.plugins.values().cloned());
            components.extend(d.pinned.values().cloned());
            components.extend(d.canaries.iter().map(|c| c.sha256.clone()));
            revisions.push(d);
            revision += 1;
        }
    }
    let registry = store.registry()?;
    for sha256 in components {
        if registry.iter().any(|e| e.sha256 == sha256) {
            continue;
        }
        let bytes = store
            .plugin(&sha256)?
            .ok_or_else(|| missing(format!("plugin {sha256}")))?;
        each(Row::Plugin { sha256, bytes })?;
    }
    for entry in registry {
        let bytes = store
            .plugin(&entry.sha256)?
            .ok_or_else(|| missing(format!("plugin {}", entry.sha256)))?;
        each(Row::Registered { entry, bytes })?;
    }
    for d in revisions {
        each(Row::Deployment(d))?;
    }
    for s in store.swaps()? {
        each(Row::Swap(s))?;
    }
    let mut schedules: BTreeMap<String, u32> = BTreeMap::new();
    for p in &processes {
        let n = p.definition["schedules"].as_array().map_or(0, Vec::len) as u32;
        let most = schedules.entry(p.name.clone()).or_default();
        *most = (*most).max(n);
    }
    for (process, n) in schedules {
        for index in 0..n {
            if let Some(at) = store.schedule_mark(&process, index)? {
                each(Row::ScheduleMark {
                    process: process.clone(),
                    index,
                    at,
                })?;
            }
        }
    }
    let mut timers: BTreeMap<InstanceId, Vec<Timer>> = BTreeMap::new();
    for t in store.due_timers(Millis(u64::MAX), usize::MAX)? {
        timers.entry(t.instance.clone()).or_default().push(t);
    }
    let mut tokens: BTreeMap<InstanceId, Vec<(String, TokenRecord)>> = BTreeMap::new();
    for (token, record) in store.tokens()? {
        tokens
            .entry(record.instance.clone())
            .or_default()
            .push((token, record));
    }
    for status in Status::ALL {
        for id in store.ids_with_status(status)? {
            let instance = store
                .instance(&id)?
                .ok_or_else(|| missing(format!("instance {id}")))?;
            each(Row::Instance(Box::new(InstanceRows {
                history: store.history(&id, 0)?,
                outbox: store.outbox_of(&id)?,
                results: store.results_of(&id)?,
                timers: timers.remove(&id).unwrap_or_default(),
                tokens: tokens.remove(&id).unwrap_or_default(),
                instance,
            })))?;
        }
    }
    Ok(())
}

/// Every row of `store`, in memory: for comparing two stores.
pub fn dump(store: &dyn Store) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for_each_row(store, &mut |r| {
        rows.push(r);
        Ok(())
    })?;
    Ok(rows)
}

/// Whether `store` holds nothing at all.
pub fn is_empty(store: &dyn Store) -> Result<bool> {
    if !store.processes()?.is_empty() || !store.registry()?.is_empty() {
        return Ok(false);
    }
    for status in Status::ALL {
        if !store.ids_with_status_after(status, None, 1)?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

fn refused(what: String, why: impl std::fmt::Display) -> Error {
    Error::backend("copy", what, why.to_string())
}

/// Writes one row into `to`.
pub fn write_row(to: &dyn Store, row: Row, copied: &mut Copied) -> Result<()> {
    match row {
        Row::Process(p) => {
            let what = format!("process {} v{}", p.name, p.version);
            to.put_process(&p)?.map_err(|c| refused(what, c))?;
            copied.processes += 1;
        }
        Row::Deployment(d) => {
            let what = format!(
                "bindings revision {} of process {} v{}",
                d.revision, d.process, d.version
            );
            to.put_deployment(&d)?.map_err(|c| refused(what, c))?;
            copied.revisions += 1;
        }
        Row::Plugin { sha256, bytes } => {
            to.put_plugin(&sha256, &bytes)?;
            copied.plugins += 1;
        }
        Row::Registered { entry, bytes } => {
            let (added, _) = to.register_plugin(&entry, &bytes)?;
            if added.version != entry.version {
                return Err(refused(
                    format!("plugin {} in the registry", entry.name),
                    format!(
                        "it became version {} instead of {}",
                        added.version, entry.version
                    ),
                ));
            }
            copied.plugins += 1;
        }
        Row::Swap(s) => to.put_swap(&s)?,
        Row::ScheduleMark { process, index, at } => to.put_schedule_mark(&process, index, at)?,
        Row::Instance(rows) => {
            let InstanceRows {
                mut instance,
                history,
                outbox,
                results,
                timers,
                tokens,
            } = *rows;
            let id = instance.id.clone();
            let branches = match instance.fan.as_mut() {
                Some(fan) => {
                    fan.mark_all_changed();
                    fan.take_changes()
                }
                None => Vec::new(),
            };
            copied.records += history.len();
            let mut c = Commit::new(instance, None);
            c.records = history;
            c.outbox = outbox;
            c.results = results;
            c.timers_armed = timers;
            c.tokens = tokens;
            c.branches = branches;
            let outcome = to.commit(&[c])?.pop().unwrap_or(Ok(()));
            outcome.map_err(|c| refused(format!("instance {id}"), c))?;
            copied.instances += 1;
        }
    }
    Ok(())
}

/// Copies everything in `from` into `to`, which must be empty.
pub fn copy(from: &dyn Store, to: &dyn Store) -> Result<Copied> {
    if !is_empty(to)? {
        return Err(refused(
            "into the target".into(),
            "it is not empty: copy into a new data directory or an empty database",
        ));
    }
    let mut copied = Copied::default();
    for_each_row(from, &mut |row| write_row(to, row, &mut copied))?;
    Ok(copied)
}
