//! The in-memory store: the same contract as sled, for unit tests and
//! simulations. Everything lives behind one lock, so a batch is atomic.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;
use weft_model::{Instance, InstanceId, Invoke, Millis, Record, Slot, Status, Timer};

use crate::{
    Commit, Conflict, Definitions, Deploy, Deployed, Deployment, Instances, Journal, ProcessRecord,
    Result, StepResult, TokenRecord, check_shape,
};

#[derive(Debug, Default)]
pub struct MemStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default, Clone)]
struct Inner {
    processes: BTreeMap<(String, u32), ProcessRecord>,
    deployments: BTreeMap<(String, u32, u32), Deployment>,
    plugins: BTreeMap<String, Vec<u8>>,
    registry: BTreeMap<(String, u32), crate::PluginEntry>,
    instances: BTreeMap<InstanceId, Instance>,
    /// Branch slots, by instance, fan key and index, kept apart from the
    /// snapshots as a disk store keeps them.
    branches: BTreeMap<(InstanceId, String, usize), Slot>,
    /// Instance data, kept apart from the snapshots likewise.
    data: BTreeMap<InstanceId, std::sync::Arc<Value>>,
    history: BTreeMap<(InstanceId, u64), Record>,
    outbox: BTreeMap<(InstanceId, String), Invoke>,
    results: BTreeMap<String, StepResult>,
    /// Keyed like sled's: due time first.
    timers: BTreeMap<Vec<u8>, Timer>,
    tokens: BTreeMap<String, TokenRecord>,
    keys: BTreeMap<(String, String), InstanceId>,
    schedules: BTreeMap<(String, u32), Millis>,
    swaps: Vec<crate::SwapRecord>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock only happens in a failing test; the
        // data is still consistent because every write completes under it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn latest_deployment<'a>(g: &'a Inner, process: &str, version: u32) -> Option<&'a Deployment> {
    g.deployments
        .range((process.to_owned(), version, 0)..=(process.to_owned(), version, u32::MAX))
        .next_back()
        .map(|(_, d)| d)
}

fn register_in(
    g: &mut Inner,
    entry: &crate::PluginEntry,
    bytes: &[u8],
) -> (crate::PluginEntry, bool) {
    let newest = g
        .registry
        .range((entry.name.clone(), 0)..=(entry.name.clone(), u32::MAX))
        .next_back()
        .map(|(_, e)| e.clone());
    if let Some(n) = newest.as_ref().filter(|n| n.sha256 == entry.sha256) {
        return (n.clone(), false);
    }
    let added = crate::PluginEntry {
        version: newest.map_or(1, |n| n.version + 1),
        ..entry.clone()
    };
    g.plugins.insert(entry.sha256.clone(), bytes.to_vec());
    g.registry
        .insert((added.name.clone(), added.version), added.clone());
    (added, true)
}

impl Definitions for MemStore {
    fn put_process(&self, p: &ProcessRecord) -> Result<Result<(), Conflict>> {
        let mut g = self.lock();
        let key = (p.name.clone(), p.version);
        match g.processes.get(&key) {
            Some(old) if old.definition == p.definition => Ok(Ok(())),
            Some(_) => Ok(Err(Conflict::ProcessVersion {
                name: p.name.clone(),
                version: p.version,
            })),
            None => {
                g.processes.insert(key, p.clone());
                Ok(Ok(()))
            }
        }
    }

    fn process(&self, name: &str, version: u32) -> Result<Option<ProcessRecord>> {
        Ok(self
            .lock()
            .processes
            .get(&(name.to_owned(), version))
            .cloned())
    }

    fn latest_process(&self, name: &str) -> Result<Option<ProcessRecord>> {
        Ok(self
            .lock()
            .processes
            .range((name.to_owned(), 0)..=(name.to_owned(), u32::MAX))
            .next_back()
            .map(|(_, p)| p.clone()))
    }

    fn processes(&self) -> Result<Vec<ProcessRecord>> {
        Ok(self.lock().processes.values().cloned().collect())
    }

    fn deploy(&self, d: &Deploy) -> Result<Result<Deployed, Conflict>> {
        let mut g = self.lock();
        let p = &d.process;
        let new_version = match g.processes.get(&(p.name.clone(), p.version)) {
            Some(old) if old.definition != p.definition => {
                return Ok(Err(Conflict::ProcessVersion {
                    name: p.name.clone(),
                    version: p.version,
                }));
            }
            Some(_) => false,
            None => true,
        };
        let latest = latest_deployment(&g, &p.name, p.version);
        if let Some(old) = latest.filter(|old| d.same_as(old)) {
            return Ok(Ok(Deployed {
                revision: old.revision,
                new_version,
                new_revision: false,
            }));
        }
        let revision = latest.map_or(1, |old| old.revision + 1);
        g.processes.insert((p.name.clone(), p.version), p.clone());
        for blob in &d.plugins {
            g.plugins
                .entry(blob.sha256.clone())
                .or_insert_with(|| blob.bytes.to_vec());
        }
        g.deployments.insert(
            (p.name.clone(), p.version, revision),
            d.deployment(revision),
        );
        Ok(Ok(Deployed {
            revision,
            new_version,
            new_revision: true,
        }))
    }

    fn deployment(&self, process: &str, version: u32) -> Result<Option<Deployment>> {
        Ok(latest_deployment(&self.lock(), process, version).cloned())
    }

    fn deployment_revision(
        &self,
        process: &str,
        version: u32,
        revision: u32,
    ) -> Result<Option<Deployment>> {
        Ok(self
            .lock()
            .deployments
            .get(&(process.to_owned(), version, revision))
            .cloned())
    }

    fn plugin(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().plugins.get(sha256).cloned())
    }

    fn register_plugin(
        &self,
        entry: &crate::PluginEntry,
        bytes: &[u8],
    ) -> Result<(crate::PluginEntry, bool)> {
        Ok(register_in(&mut self.lock(), entry, bytes))
    }

    fn registry(&self) -> Result<Vec<crate::PluginEntry>> {
        Ok(self.lock().registry.values().cloned().collect())
    }

    fn swap(&self, w: &crate::SwapWrite) -> Result<Result<crate::SwapRecord, Conflict>> {
        let mut g = self.lock();
        let g = &mut *g;
        for d in &w.deployments {
            let newest = latest_deployment(g, &d.process, d.version).map_or(0, |n| n.revision);
            if newest + 1 != d.revision {
                return Ok(Err(Conflict::Stale {
                    process: d.process.clone(),
                    version: d.version,
                }));
            }
        }
        let mut record = w.record.clone();
        if let Some((entry, bytes)) = &w.register {
            let (added, _) = register_in(g, entry, bytes);
            record.plugin = Some(format!("{}@{}", added.name, added.version));
        }
        for d in &w.deployments {
            g.deployments
                .insert((d.process.clone(), d.version, d.revision), d.clone());
        }
        record.seq = g.swaps.last().map_or(1, |r| r.seq + 1);
        g.swaps.push(record.clone());
        Ok(Ok(record))
    }

    fn swaps(&self) -> Result<Vec<crate::SwapRecord>> {
        Ok(self.lock().swaps.clone())
    }

    fn schedule_mark(&self, process: &str, index: u32) -> Result<Option<Millis>> {
        Ok(self
            .lock()
            .schedules
            .get(&(process.to_owned(), index))
            .copied())
    }

    fn put_schedule_mark(&self, process: &str, index: u32, at: Millis) -> Result<()> {
        self.lock()
            .schedules
            .insert((process.to_owned(), index), at);
        Ok(())
    }

    fn put_deployment(&self, d: &Deployment) -> Result<Result<(), Conflict>> {
        let mut g = self.lock();
        let newest = latest_deployment(&g, &d.process, d.version).map_or(0, |n| n.revision);
        if newest + 1 != d.revision {
            return Ok(Err(Conflict::Stale {
                process: d.process.clone(),
                version: d.version,
            }));
        }
        g.deployments
            .insert((d.process.clone(), d.version, d.revision), d.clone());
        Ok(Ok(()))
    }

    fn put_plugin(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        self.lock()
            .plugins
            .entry(sha256.to_owned())
            .or_insert_with(|| bytes.to_vec());
        Ok(())
    }

    fn put_swap(&self, record: &crate::SwapRecord) -> Result<()> {
        let mut g = self.lock();
        g.swaps.push(record.clone());
        g.swaps.sort_by_key(|r| r.seq);
        Ok(())
    }
}

impl Instances for MemStore {
    fn instance(&self, id: &InstanceId) -> Result<Option<Instance>> {
        let g = self.lock();
        let Some(head) = g.instances.get(id).cloned() else {
            return Ok(None);
        };
        let data = g.data.get(id).map(|d| Value::clone(d));
        crate::with_parts(head, data, |fan| {
            let from = (id.clone(), fan.to_owned(), 0);
            let to = (id.clone(), fan.to_owned(), usize::MAX);
            Ok(g.branches
                .range(from..=to)
                .map(|(_, s)| s.clone())
                .collect())
        })
        .map(Some)
    }

    fn history(&self, id: &InstanceId, from: u64) -> Result<Vec<Record>> {
        Ok(self
            .lock()
            .history
            .range((id.clone(), from)..=(id.clone(), u64::MAX))
            .map(|(_, r)| r.clone())
            .collect())
    }

    fn ids_with_status(&self, status: Status) -> Result<Vec<InstanceId>> {
        Ok(self
            .lock()
            .instances
            .values()
            .filter(|i| i.status == status)
            .map(|i| i.id.clone())
            .collect())
    }

    fn ids_with_status_after(
        &self,
        status: Status,
        after: Option<&InstanceId>,
        limit: usize,
    ) -> Result<Vec<InstanceId>> {
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.clone()));
        Ok(self
            .lock()
            .instances
            .range((from, Bound::Unbounded))
            .filter(|(_, i)| i.status == status)
            .take(limit)
            .map(|(id, _)| id.clone())
            .collect())
    }

    fn outbox(&self) -> Result<Vec<Result<Invoke>>> {
        Ok(self.lock().outbox.values().cloned().map(Ok).collect())
    }

    fn outbox_of(&self, id: &InstanceId) -> Result<Vec<Invoke>> {
        Ok(self
            .lock()
            .outbox
            .iter()
            .filter(|((i, _), _)| i == id)
            .map(|(_, c)| c.clone())
            .collect())
    }

    fn result(&self, key: &str) -> Result<Option<StepResult>> {
        Ok(self.lock().results.get(key).cloned())
    }

    fn by_key(&self, process: &str, key: &str) -> Result<Option<InstanceId>> {
        Ok(self
            .lock()
            .keys
            .get(&(process.to_owned(), key.to_owned()))
            .cloned())
    }

    fn next_timer(&self) -> Result<Option<Millis>> {
        Ok(self.lock().timers.values().next().map(|t| t.at))
    }

    fn next_timer_after(&self, after: Millis) -> Result<Option<Millis>> {
        let from = crate::keys::timers_until(after.0.saturating_add(1));
        Ok(self.lock().timers.range(from..).next().map(|(_, t)| t.at))
    }

    fn due_timers(&self, until: Millis, limit: usize) -> Result<Vec<Timer>> {
        Ok(self
            .lock()
            .timers
            .values()
            .take_while(|t| t.at <= until)
            .take(limit)
            .cloned()
            .collect())
    }

    fn token(&self, token: &str) -> Result<Option<TokenRecord>> {
        Ok(self.lock().tokens.get(token).cloned())
    }

    fn results_of(&self, id: &InstanceId) -> Result<Vec<(String, StepResult)>> {
        let prefix = format!("{id}/");
        Ok(self
            .lock()
            .results
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect())
    }

    fn tokens(&self) -> Result<Vec<(String, TokenRecord)>> {
        Ok(self
            .lock()
            .tokens
            .iter()
            .map(|(t, r)| (t.clone(), r.clone()))
            .collect())
    }
}

fn check_stored(g: &Inner, c: &Commit) -> Result<(), Conflict> {
    let id = &c.instance.id;
    let stored = g.instances.get(id);
    match (c.previous, stored) {
        (None, Some(_)) => return Err(Conflict::InstanceExists(id.clone())),
        (Some(_), None) => return Err(Conflict::NoInstance(id.clone())),
        _ => {}
    }
    if let (None, Some(key)) = (c.previous, &c.instance.key) {
        let process = &c.instance.process;
        if let Some(instance) = g.keys.get(&(process.clone(), key.clone())) {
            return Err(Conflict::KeyTaken {
                process: process.clone(),
                key: key.clone(),
                instance: instance.clone(),
            });
        }
    }
    let expected = stored.map_or(0, |i| i.seq);
    match c.records.first() {
        Some(r) if r.seq != expected => Err(Conflict::HistoryGap {
            instance: id.clone(),
            expected,
            got: r.seq,
        }),
        _ => Ok(()),
    }
}

impl Journal for MemStore {
    fn commit(&self, batch: &[Commit]) -> Result<Vec<Result<(), Conflict>>> {
        let mut g = self.lock();
        let mut out = Vec::with_capacity(batch.len());
        for c in batch {
            let mut verdict = check_shape(c).and_then(|()| check_stored(&g, c));
            if verdict.is_ok() {
                verdict = crate::check_tokens(c, |t| Ok(g.tokens.get(t).cloned()))?;
            }
            if verdict.is_ok() {
                let id = &c.instance.id;
                if let (None, Some(key)) = (c.previous, &c.instance.key) {
                    let process = c.instance.process.clone();
                    g.keys.insert((process, key.clone()), id.clone());
                }
                // Kept apart like a disk store keeps them, so the test kit
                // catches a change that forgets to list a slot it touched.
                g.instances
                    .insert(id.clone(), crate::snapshot_head(&c.instance));
                if !c.data_unchanged || !g.data.contains_key(id) {
                    g.data.insert(id.clone(), c.instance.data.clone());
                }
                for fan in &c.closed_fans {
                    g.branches.retain(|(i, f, _), _| !(i == id && f == fan));
                }
                if let Some(fan) = &c.instance.fan {
                    for (index, slot) in &c.branches {
                        g.branches
                            .insert((id.clone(), fan.key.clone(), *index), slot.clone());
                    }
                }
                for r in &c.records {
                    g.history.insert((id.clone(), r.seq), r.clone());
                }
                for key in &c.settled {
                    g.outbox.remove(&(id.clone(), key.clone()));
                }
                for inv in &c.outbox {
                    g.outbox.insert((id.clone(), inv.key.clone()), inv.clone());
                }
                for (k, r) in &c.results {
                    g.results.insert(k.clone(), r.clone());
                }
                for t in &c.timers_cancelled {
                    g.timers.remove(&crate::keys::timer(t));
                }
                for t in &c.timers_armed {
                    g.timers.insert(crate::keys::timer(t), t.clone());
                }
                for (k, r) in &c.tokens {
                    g.tokens.insert(k.clone(), r.clone());
                }
            }
            out.push(verdict);
        }
        Ok(out)
    }

    fn remove_timer(&self, timer: &Timer) -> Result<()> {
        self.lock().timers.remove(&crate::keys::timer(timer));
        Ok(())
    }
}
