//! weft-store-sled: the embedded default store. One sled database per data
//! directory; definitions in trees of their own, every journal table in one
//! tree (see `weft_store::keys`), so a batch of commits is one atomic
//! `apply_batch`, then one flush.
//!
//! Depends on `weft-store` (the contract it fulfils), `weft-model` and sled;
//! nothing of tokio or wasmtime.

mod journal;
mod registry;

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;
use weft_model::{Instance, InstanceId, Invoke, Millis, Record, Status, Timer};

use weft_store::keys;
use weft_store::{
    Conflict, Definitions, Deploy, Deployed, Deployment, Error, Instances, PluginEntry,
    ProcessRecord, Result, StepResult, TokenRecord,
};

#[derive(Clone)]
pub struct SledStore {
    dir: std::path::PathBuf,
    db: sled::Db,
    processes: sled::Tree,
    deployments: sled::Tree,
    plugins: sled::Tree,
    /// The plugin registry: entries by name and version.
    registry: sled::Tree,
    schedules: sled::Tree,
    /// The swap log.
    swaps: sled::Tree,
    /// Instances, status index, history, outbox, results, timers and tokens,
    /// each under its key prefix (see `keys`): one tree, so one batch.
    journal: sled::Tree,
    /// Journal commits run one at a time: their checks read outside the
    /// batch and rely on no other commit writing meanwhile.
    commit_lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

/// A sled failure of `op` on `what` (the ids involved).
fn sled_err(op: &'static str, what: impl std::fmt::Display) -> impl FnOnce(sled::Error) -> Error {
    move |source| Error::backend(op, what.to_string(), source)
}

fn decode<T: DeserializeOwned>(what: impl FnOnce() -> String, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Corrupt {
        what: what(),
        source,
    })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("invariant: store types serialize to JSON")
}

/// How many times a deploy reads the newest revision again when another
/// deploy or a swap took the next one first.
const DEPLOY_TRIES: usize = 100;

impl SledStore {
    /// sled's page cache. Waiting instances live on disk; this bounds how
    /// much of the store is kept in memory however many there are.
    pub const CACHE_BYTES: u64 = 16 << 20;

    /// How long `close` waits for sled's threads to let go of the lock.
    const CLOSE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

    /// Opens (or creates) the store in `dir`. Only one process may have a
    /// store open at a time.
    pub fn open(dir: &Path) -> Result<SledStore> {
        let path = dir.display().to_string();
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(Self::CACHE_BYTES)
            .open()
            .map_err(|source| match &source {
                sled::Error::Io(e) if e.to_string().contains("could not acquire lock") => {
                    Error::Locked { path: path.clone() }
                }
                _ => Error::Open {
                    path: path.clone(),
                    source: source.into(),
                },
            })?;
        let tree = |name: &str| db.open_tree(name).map_err(sled_err("open tree", name));
        Ok(SledStore {
            processes: tree(keys::PROCESSES)?,
            deployments: tree(keys::DEPLOYMENTS)?,
            plugins: tree(keys::PLUGINS)?,
            registry: tree(keys::REGISTRY)?,
            schedules: tree(keys::SCHEDULES)?,
            swaps: tree(keys::SWAPS)?,
            journal: tree(keys::JOURNAL)?,
            commit_lock: Arc::new(Mutex::new(())),
            dir: dir.to_owned(),
            db,
        })
    }

    /// Flushes, closes the database and returns once its lock on the
    /// directory is released, so it can be opened again at once — by this
    /// process or another. (sled lets go of the lock when its last internal
    /// handle drops, which its I/O threads may do a moment after ours.)
    pub fn close(self) -> Result<()> {
        self.flush()?;
        let lock_file = self.dir.join("db");
        let path = self.dir.display().to_string();
        drop(self);
        // Counted in pauses, not read off a clock: this crate takes no time
        // source, and a pause is a lower bound of the time waited.
        let pause = std::time::Duration::from_millis(2);
        let mut waited = std::time::Duration::ZERO;
        loop {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&lock_file)
                .map_err(|e| Error::backend("close", path.clone(), e))?;
            match file.try_lock() {
                Ok(()) => return Ok(()),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::backend("close", path, e));
                }
            }
            if waited > Self::CLOSE_PATIENCE {
                return Err(Error::Locked { path });
            }
            std::thread::sleep(pause);
            waited += pause;
        }
    }

    /// Opens the store, waiting up to `patience` while another process has
    /// it open (a short command finishing), instead of failing at once.
    pub fn open_patiently(dir: &Path, patience: std::time::Duration) -> Result<SledStore> {
        let mut pause = std::time::Duration::from_millis(5);
        let mut waited = std::time::Duration::ZERO;
        loop {
            match Self::open(dir) {
                Err(Error::Locked { .. }) if waited < patience => {
                    std::thread::sleep(pause);
                    waited += pause;
                    pause = (pause * 2).min(std::time::Duration::from_millis(200));
                }
                other => return other,
            }
        }
    }

    fn scan<T: DeserializeOwned>(&self, prefix: &[u8], what: &str) -> Result<Vec<T>> {
        self.journal
            .scan_prefix(prefix)
            .map(|kv| {
                let (_, v) = kv.map_err(sled_err("read", what))?;
                decode(|| what.to_owned(), &v)
            })
            .collect()
    }

    /// Every entry under a one-byte-table `prefix`, with its key after the
    /// table byte.
    fn keyed<T: DeserializeOwned>(&self, prefix: &[u8], what: &str) -> Result<Vec<(String, T)>> {
        self.journal
            .scan_prefix(prefix)
            .map(|kv| {
                let (k, v) = kv.map_err(sled_err("read", what))?;
                let key = String::from_utf8_lossy(&k[1..]).into_owned();
                let t = decode(|| format!("{what}: {key}"), &v)?;
                Ok((key, t))
            })
            .collect()
    }

    fn get<T: DeserializeOwned>(
        &self,
        key: &[u8],
        what: impl FnOnce() -> String,
    ) -> Result<Option<T>> {
        match self.journal.get(key) {
            Ok(v) => v.map(|v| decode(what, &v)).transpose(),
            Err(e) => Err(sled_err("read", what())(e)),
        }
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<()> {
        self.db
            .flush()
            .map(|_| ())
            .map_err(sled_err("flush", "the database"))
    }
}

impl Definitions for SledStore {
    fn put_process(&self, p: &ProcessRecord) -> Result<Result<(), Conflict>> {
        let key = keys::process(&p.name, p.version);
        let what = || format!("process {} v{}", p.name, p.version);
        let new = encode(p);
        loop {
            let old = self.processes.get(&key).map_err(sled_err("read", what()))?;
            if let Some(old) = &old {
                let stored: ProcessRecord = decode(what, old)?;
                return Ok(if stored.definition == p.definition {
                    Ok(())
                } else {
                    Err(Conflict::ProcessVersion {
                        name: p.name.clone(),
                        version: p.version,
                    })
                });
            }
            let swapped = self
                .processes
                .compare_and_swap(&key, None::<&[u8]>, Some(new.as_slice()))
                .map_err(sled_err("write", what()))?;
            if swapped.is_ok() {
                self.flush()?;
                return Ok(Ok(()));
            }
        }
    }

    fn process(&self, name: &str, version: u32) -> Result<Option<ProcessRecord>> {
        let what = || format!("process {name} v{version}");
        self.processes
            .get(keys::process(name, version))
            .map_err(sled_err("read", what()))?
            .map(|v| decode(what, &v))
            .transpose()
    }

    fn latest_process(&self, name: &str) -> Result<Option<ProcessRecord>> {
        let what = || format!("process {name}");
        self.processes
            .scan_prefix(keys::process_prefix(name))
            .next_back()
            .transpose()
            .map_err(sled_err("read", what()))?
            .map(|(_, v)| decode(what, &v))
            .transpose()
    }

    fn processes(&self) -> Result<Vec<ProcessRecord>> {
        self.processes
            .iter()
            .map(|kv| {
                let (_, v) = kv.map_err(sled_err("list", "processes"))?;
                decode(|| "process".to_owned(), &v)
            })
            .collect()
    }

    fn deploy(&self, d: &Deploy) -> Result<Result<Deployed, Conflict>> {
        let p = &d.process;
        // The newest revision is read before the transaction, which checks
        // the next one is still free: a deploy or swap that took it first
        // makes this one read again and take the one after (a bounded
        // number of times; they are rare).
        for _ in 0..DEPLOY_TRIES {
            match self.try_deploy(d)? {
                Err(Conflict::Stale { .. }) => continue,
                done => return Ok(done),
            }
        }
        Ok(Err(Conflict::Stale {
            process: p.name.clone(),
            version: p.version,
        }))
    }

    fn deployment(&self, process: &str, version: u32) -> Result<Option<Deployment>> {
        let what = || format!("the bindings of process {process} v{version}");
        let newest = self
            .deployments
            .scan_prefix(keys::deployment_prefix(process, version))
            .next_back()
            .transpose()
            .map_err(sled_err("read", what()))?;
        match newest {
            Some((_, v)) => decode(what, &v).map(Some),
            None => self.legacy_deployment(process, version),
        }
    }

    fn deployment_revision(
        &self,
        process: &str,
        version: u32,
        revision: u32,
    ) -> Result<Option<Deployment>> {
        let what = || format!("bindings revision {revision} of process {process} v{version}");
        self.deployments
            .get(keys::deployment(process, version, revision))
            .map_err(sled_err("read", what()))?
            .map(|v| decode(what, &v))
            .transpose()
    }

    fn plugin(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .plugins
            .get(sha256.as_bytes())
            .map_err(sled_err("read", format!("plugin {sha256}")))?
            .map(|v| v.to_vec()))
    }

    fn register_plugin(&self, entry: &PluginEntry, bytes: &[u8]) -> Result<(PluginEntry, bool)> {
        registry::register(self, entry, bytes)
    }

    fn registry(&self) -> Result<Vec<PluginEntry>> {
        registry::list(self)
    }

    fn swap(&self, w: &weft_store::SwapWrite) -> Result<Result<weft_store::SwapRecord, Conflict>> {
        registry::swap(self, w)
    }

    fn swaps(&self) -> Result<Vec<weft_store::SwapRecord>> {
        registry::swaps(self)
    }

    fn schedule_mark(&self, process: &str, index: u32) -> Result<Option<Millis>> {
        let what = || format!("the mark of schedule {index} of {process}");
        self.schedules
            .get(keys::schedule(process, index))
            .map_err(sled_err("read", what()))?
            .map(|v| decode(what, &v))
            .transpose()
    }

    fn put_schedule_mark(&self, process: &str, index: u32, at: Millis) -> Result<()> {
        self.schedules
            .insert(keys::schedule(process, index), encode(&at))
            .map_err(sled_err(
                "write",
                format!("the mark of schedule {index} of {process}"),
            ))?;
        self.flush()
    }

    fn put_deployment(&self, d: &Deployment) -> Result<Result<(), Conflict>> {
        registry::put_deployment(self, d)
    }

    fn put_plugin(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        self.plugins
            .insert(sha256.as_bytes(), bytes)
            .map_err(sled_err("write", format!("plugin {sha256}")))?;
        self.flush()
    }

    fn put_swap(&self, record: &weft_store::SwapRecord) -> Result<()> {
        registry::put_swap(self, record)
    }
}

impl SledStore {
    /// One attempt at `deploy`: `Stale` when the next revision was taken
    /// after it was read.
    fn try_deploy(&self, d: &Deploy) -> Result<Result<Deployed, Conflict>> {
        use sled::Transactional;
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let p = &d.process;
        let what = format!("the deploy of process {} v{}", p.name, p.version);
        let pkey = keys::process(&p.name, p.version);
        let latest = self.deployment(&p.name, p.version)?;
        if let Some(old) = &latest
            && d.same_as(old)
        {
            let stored = self.process(&p.name, p.version)?;
            if stored
                .as_ref()
                .is_some_and(|s| s.definition == p.definition)
            {
                return Ok(Ok(Deployed {
                    revision: old.revision,
                    new_version: false,
                    new_revision: false,
                }));
            }
        }
        let revision = latest.as_ref().map_or(1, |old| old.revision + 1);
        let dkey = keys::deployment(&p.name, p.version, revision);
        let record = encode(&d.deployment(revision));
        let process = encode(p);
        let outcome = (&self.processes, &self.deployments, &self.plugins).transaction(
            |(processes, deployments, plugins)| {
                if deployments.get(&dkey)?.is_some() {
                    // Another deploy or a swap took this revision first:
                    // nothing is written, and the caller reads again.
                    return Ok(Err(Conflict::Stale {
                        process: p.name.clone(),
                        version: p.version,
                    }));
                }
                let new_version = match processes.get(&pkey)? {
                    Some(old) => {
                        let stored: ProcessRecord = serde_json::from_slice(&old)
                            .map_err(ConflictableTransactionError::Abort)?;
                        if stored.definition != p.definition {
                            return Ok(Err(Conflict::ProcessVersion {
                                name: p.name.clone(),
                                version: p.version,
                            }));
                        }
                        false
                    }
                    None => {
                        processes.insert(pkey.as_slice(), process.as_slice())?;
                        true
                    }
                };
                deployments.insert(dkey.as_slice(), record.as_slice())?;
                for blob in &d.plugins {
                    if plugins.get(blob.sha256.as_bytes())?.is_none() {
                        plugins.insert(blob.sha256.as_bytes(), &*blob.bytes)?;
                    }
                }
                Ok(Ok(new_version))
            },
        );
        let new_version = match outcome {
            Ok(Ok(v)) => v,
            Ok(Err(conflict)) => return Ok(Err(conflict)),
            Err(TransactionError::Abort(source)) => {
                return Err(Error::Corrupt {
                    what: format!("process {} v{}", p.name, p.version),
                    source,
                });
            }
            Err(TransactionError::Storage(e)) => return Err(sled_err("write", what)(e)),
        };
        self.flush()?;
        Ok(Ok(Deployed {
            revision,
            new_version,
            new_revision: true,
        }))
    }

    /// Data directories written before bindings belonged to a version kept
    /// one deployment per process name: it applies to every version, as
    /// revision 0.
    fn legacy_deployment(&self, process: &str, version: u32) -> Result<Option<Deployment>> {
        let what = || format!("the bindings of process {process}");
        let Some(v) = self
            .deployments
            .get(process.as_bytes())
            .map_err(sled_err("read", what()))?
        else {
            return Ok(None);
        };
        let mut d: Deployment = decode(what, &v)?;
        d.version = version;
        d.revision = 0;
        Ok(Some(d))
    }
}

impl Instances for SledStore {
    fn instance(&self, id: &InstanceId) -> Result<Option<Instance>> {
        let Some(head) = self.get(&keys::instance(id), || format!("instance {id}"))? else {
            return Ok(None);
        };
        let data = self.get(&keys::data(id), || format!("the data of {id}"))?;
        weft_store::with_parts(head, data, |fan| {
            self.scan(&keys::branches(id, fan), &format!("a branch of {fan}"))
        })
        .map(Some)
    }

    fn history(&self, id: &InstanceId, from: u64) -> Result<Vec<Record>> {
        self.journal
            .range(keys::history(id, from)..keys::history(id, u64::MAX))
            .map(|kv| {
                let (_, v) = kv.map_err(sled_err("read", format!("the history of {id}")))?;
                decode(|| format!("history of {id}"), &v)
            })
            .collect()
    }

    fn ids_with_status(&self, status: Status) -> Result<Vec<InstanceId>> {
        self.journal
            .scan_prefix([keys::STATUS, keys::status_byte(status)])
            .map(|kv| {
                let (k, _) = kv.map_err(sled_err("read", format!("the {status} index")))?;
                Ok(InstanceId(String::from_utf8_lossy(&k[2..]).into_owned()))
            })
            .collect()
    }

    fn ids_with_status_after(
        &self,
        status: Status,
        after: Option<&InstanceId>,
        limit: usize,
    ) -> Result<Vec<InstanceId>> {
        use std::ops::Bound;
        let prefix = [keys::STATUS, keys::status_byte(status)];
        let from = match after {
            Some(a) => Bound::Excluded(keys::status(status, a)),
            None => Bound::Included(prefix.to_vec()),
        };
        let mut ids = Vec::new();
        for kv in self.journal.range::<Vec<u8>, _>((from, Bound::Unbounded)) {
            let (k, _) = kv.map_err(sled_err("read", format!("the {status} index")))?;
            if !k.starts_with(&prefix) || ids.len() >= limit {
                break;
            }
            ids.push(InstanceId(String::from_utf8_lossy(&k[2..]).into_owned()));
        }
        Ok(ids)
    }

    fn outbox(&self) -> Result<Vec<Result<Invoke>>> {
        self.journal
            .scan_prefix([keys::OUTBOX])
            .map(|kv| {
                let (k, v) = kv.map_err(sled_err("read", "the outbox"))?;
                Ok(decode(
                    || format!("outbox entry {}", String::from_utf8_lossy(&k[1..])),
                    &v,
                ))
            })
            .collect()
    }

    fn outbox_of(&self, id: &InstanceId) -> Result<Vec<Invoke>> {
        self.scan(&keys::of_instance(keys::OUTBOX, id), "outbox entry")
    }

    fn result(&self, key: &str) -> Result<Option<StepResult>> {
        self.get(&keys::result(key), || format!("result {key}"))
    }

    fn by_key(&self, process: &str, key: &str) -> Result<Option<InstanceId>> {
        self.get(&keys::business_key(process, key), || {
            format!("business key {key} of {process}")
        })
    }

    fn next_timer(&self) -> Result<Option<Millis>> {
        let first = self
            .journal
            .scan_prefix([keys::TIMER])
            .next()
            .transpose()
            .map_err(sled_err("read", "the next timer"))?;
        Ok(first.and_then(|(k, _)| {
            let due: [u8; 8] = k.get(1..9)?.try_into().ok()?;
            Some(Millis(u64::from_be_bytes(due)))
        }))
    }

    fn next_timer_after(&self, after: Millis) -> Result<Option<Millis>> {
        let from = keys::timers_until(after.0.saturating_add(1));
        let first = self
            .journal
            .range(from..)
            .next()
            .transpose()
            .map_err(sled_err("read", "the next timer"))?;
        Ok(first.and_then(|(k, _)| {
            if k.first() != Some(&keys::TIMER) {
                return None;
            }
            let due: [u8; 8] = k.get(1..9)?.try_into().ok()?;
            Some(Millis(u64::from_be_bytes(due)))
        }))
    }

    fn due_timers(&self, until: Millis, limit: usize) -> Result<Vec<Timer>> {
        // Read from the keys, which hold every field: a damaged value does
        // not stop the timers behind it.
        let end = keys::timers_until(until.0.saturating_add(1));
        let mut due = Vec::new();
        for kv in self.journal.range(vec![keys::TIMER]..end) {
            let (k, _) = kv.map_err(sled_err("read", "due timers"))?;
            if let Some(t) = keys::parse_timer(&k) {
                due.push(t);
                if due.len() == limit {
                    break;
                }
            }
        }
        Ok(due)
    }

    fn token(&self, token: &str) -> Result<Option<TokenRecord>> {
        self.get(&keys::token(token), || format!("token {token}"))
    }

    fn results_of(&self, id: &InstanceId) -> Result<Vec<(String, StepResult)>> {
        self.keyed(
            &keys::result(&format!("{id}/")),
            &format!("the results of {id}"),
        )
    }

    fn tokens(&self) -> Result<Vec<(String, TokenRecord)>> {
        self.keyed(&[keys::TOKEN], "the tokens")
    }
}
