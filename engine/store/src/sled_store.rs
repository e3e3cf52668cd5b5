//! The sled store: one database per engine, one tree per table (see `keys`).
//! A batch of commits is one multi-tree transaction followed by one flush.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;
use sled::transaction::ConflictableTransactionError;
use weft_model::{Instance, InstanceId, Invoke, Millis, Record, Status, Timer};

use crate::keys;
use crate::{
    Commit, Conflict, Definitions, Deployment, Error, Instances, Journal, ProcessRecord, Result,
    StepResult, TokenRecord, check_shape,
};

#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    processes: sled::Tree,
    deployments: sled::Tree,
    plugins: sled::Tree,
    instances: sled::Tree,
    status: sled::Tree,
    history: sled::Tree,
    outbox: sled::Tree,
    results: sled::Tree,
    timers: sled::Tree,
    tokens: sled::Tree,
    /// Journal commits run one at a time: their checks read outside the
    /// transaction and rely on no other commit writing meanwhile.
    commit_lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

fn sled_err(op: &'static str) -> impl FnOnce(sled::Error) -> Error {
    move |source| Error::Sled { op, source }
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

impl SledStore {
    /// Opens (or creates) the store in `dir`. Only one process may have a
    /// store open at a time.
    pub fn open(dir: &Path) -> Result<SledStore> {
        let path = dir.display().to_string();
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|source| match &source {
                sled::Error::Io(e) if e.to_string().contains("could not acquire lock") => {
                    Error::Locked { path: path.clone() }
                }
                _ => Error::Open {
                    path: path.clone(),
                    source,
                },
            })?;
        let tree = |name: &str| db.open_tree(name).map_err(sled_err("open tree"));
        Ok(SledStore {
            processes: tree(keys::PROCESSES)?,
            deployments: tree(keys::DEPLOYMENTS)?,
            plugins: tree(keys::PLUGINS)?,
            instances: tree(keys::INSTANCES)?,
            status: tree(keys::STATUS)?,
            history: tree(keys::HISTORY)?,
            outbox: tree(keys::OUTBOX)?,
            results: tree(keys::RESULTS)?,
            timers: tree(keys::TIMERS)?,
            tokens: tree(keys::TOKENS)?,
            commit_lock: Arc::new(Mutex::new(())),
            db,
        })
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(sled_err("flush"))
    }
}

impl Definitions for SledStore {
    fn put_process(&self, p: &ProcessRecord) -> Result<Result<(), Conflict>> {
        let key = keys::process(&p.name, p.version);
        let new = encode(p);
        loop {
            let old = self.processes.get(&key).map_err(sled_err("read process"))?;
            if let Some(old) = &old {
                let stored: ProcessRecord = decode(|| format!("process {}", p.name), old)?;
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
                .map_err(sled_err("write process"))?;
            if swapped.is_ok() {
                self.flush()?;
                return Ok(Ok(()));
            }
        }
    }

    fn process(&self, name: &str, version: u32) -> Result<Option<ProcessRecord>> {
        self.processes
            .get(keys::process(name, version))
            .map_err(sled_err("read process"))?
            .map(|v| decode(|| format!("process {name} v{version}"), &v))
            .transpose()
    }

    fn latest_process(&self, name: &str) -> Result<Option<ProcessRecord>> {
        self.processes
            .scan_prefix(keys::process_prefix(name))
            .next_back()
            .transpose()
            .map_err(sled_err("read process"))?
            .map(|(_, v)| decode(|| format!("process {name}"), &v))
            .transpose()
    }

    fn processes(&self) -> Result<Vec<ProcessRecord>> {
        self.processes
            .iter()
            .map(|kv| {
                let (_, v) = kv.map_err(sled_err("list processes"))?;
                decode(|| "process".to_owned(), &v)
            })
            .collect()
    }

    fn put_deployment(&self, d: &Deployment) -> Result<()> {
        self.deployments
            .insert(d.process.as_bytes(), encode(d))
            .map_err(sled_err("write deployment"))?;
        self.flush()
    }

    fn deployment(&self, process: &str) -> Result<Option<Deployment>> {
        self.deployments
            .get(process.as_bytes())
            .map_err(sled_err("read deployment"))?
            .map(|v| decode(|| format!("deployment of {process}"), &v))
            .transpose()
    }

    fn put_plugin(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        if !self
            .plugins
            .contains_key(sha256)
            .map_err(sled_err("read plugin"))?
        {
            self.plugins
                .insert(sha256.as_bytes(), bytes)
                .map_err(sled_err("write plugin"))?;
            self.flush()?;
        }
        Ok(())
    }

    fn plugin(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .plugins
            .get(sha256.as_bytes())
            .map_err(sled_err("read plugin"))?
            .map(|v| v.to_vec()))
    }
}

impl Instances for SledStore {
    fn instance(&self, id: &InstanceId) -> Result<Option<Instance>> {
        self.instances
            .get(id.as_str())
            .map_err(sled_err("read instance"))?
            .map(|v| decode(|| format!("instance {id}"), &v))
            .transpose()
    }

    fn history(&self, id: &InstanceId, from: u64) -> Result<Vec<Record>> {
        self.history
            .range(keys::history(id, from)..keys::history(id, u64::MAX))
            .map(|kv| {
                let (_, v) = kv.map_err(sled_err("read history"))?;
                decode(|| format!("history of {id}"), &v)
            })
            .collect()
    }

    fn ids_with_status(&self, status: Status) -> Result<Vec<InstanceId>> {
        self.status
            .scan_prefix([keys::status_byte(status)])
            .map(|kv| {
                let (k, _) = kv.map_err(sled_err("read status index"))?;
                Ok(InstanceId(String::from_utf8_lossy(&k[1..]).into_owned()))
            })
            .collect()
    }

    fn outbox(&self) -> Result<Vec<Invoke>> {
        self.outbox
            .iter()
            .map(|kv| {
                let (_, v) = kv.map_err(sled_err("read outbox"))?;
                decode(|| "outbox entry".to_owned(), &v)
            })
            .collect()
    }

    fn outbox_of(&self, id: &InstanceId) -> Result<Vec<Invoke>> {
        self.outbox
            .scan_prefix(keys::instance_prefix(id))
            .map(|kv| {
                let (_, v) = kv.map_err(sled_err("read outbox"))?;
                decode(|| format!("outbox of {id}"), &v)
            })
            .collect()
    }

    fn result(&self, key: &str) -> Result<Option<StepResult>> {
        self.results
            .get(key.as_bytes())
            .map_err(sled_err("read result"))?
            .map(|v| decode(|| format!("result {key}"), &v))
            .transpose()
    }

    fn next_timer(&self) -> Result<Option<Millis>> {
        let first = self.timers.first().map_err(sled_err("read timers"))?;
        Ok(first.and_then(|(k, _)| {
            let due: [u8; 8] = k.get(..8)?.try_into().ok()?;
            Some(Millis(u64::from_be_bytes(due)))
        }))
    }

    fn due_timers(&self, until: Millis, limit: usize) -> Result<Vec<Timer>> {
        let end = until.0.saturating_add(1).to_be_bytes();
        self.timers
            .range(..end.as_slice())
            .take(limit)
            .map(|kv| {
                let (_, v) = kv.map_err(sled_err("read timers"))?;
                decode(|| "timer".to_owned(), &v)
            })
            .collect()
    }

    fn token(&self, token: &str) -> Result<Option<TokenRecord>> {
        self.tokens
            .get(token.as_bytes())
            .map_err(sled_err("read token"))?
            .map(|v| decode(|| format!("token {token}"), &v))
            .transpose()
    }
}

/// A commit with its values already encoded, so the transaction closure
/// (which sled may run more than once) only moves bytes.
struct Encoded<'c> {
    commit: &'c Commit,
    instance: Vec<u8>,
    records: Vec<(Vec<u8>, Vec<u8>)>,
    outbox: Vec<(Vec<u8>, Vec<u8>)>,
    results: Vec<(Vec<u8>, Vec<u8>)>,
    timers: Vec<(Vec<u8>, Vec<u8>)>,
    tokens: Vec<(Vec<u8>, Vec<u8>)>,
}

fn encode_commit(c: &Commit) -> Encoded<'_> {
    let id = &c.instance.id;
    Encoded {
        commit: c,
        instance: encode(&c.instance),
        records: c
            .records
            .iter()
            .map(|r| (keys::history(id, r.seq), encode(r)))
            .collect(),
        outbox: c
            .outbox
            .iter()
            .map(|inv| (keys::outbox(id, &inv.key), encode(inv)))
            .collect(),
        timers: c
            .timers_armed
            .iter()
            .map(|t| (keys::timer(t), encode(t)))
            .collect(),
        tokens: c
            .tokens
            .iter()
            .map(|(t, r)| (t.as_bytes().to_vec(), encode(r)))
            .collect(),
        results: c
            .results
            .iter()
            .map(|(k, r)| (k.as_bytes().to_vec(), encode(r)))
            .collect(),
    }
}

/// Checks a commit against what is stored and what earlier commits of the
/// same batch did. Runs before the transaction: the journal has one writer
/// at a time (see `commit_lock`), so nothing changes these keys meanwhile,
/// and the transaction itself then only writes.
fn check_stored(
    store: &SledStore,
    c: &Commit,
    batch: &HashMap<InstanceId, u64>,
) -> Result<std::result::Result<(), Conflict>> {
    let id = &c.instance.id;
    let read = |e| Error::Sled {
        op: "check commit",
        source: e,
    };
    let in_batch = batch.get(id).copied();
    let exists = in_batch.is_some() || store.instances.contains_key(id.as_str()).map_err(read)?;
    match (c.previous, exists) {
        (None, true) => return Ok(Err(Conflict::InstanceExists(id.clone()))),
        (Some(_), false) => return Ok(Err(Conflict::NoInstance(id.clone()))),
        _ => {}
    }
    let Some(first) = c.records.first().map(|r| r.seq) else {
        return Ok(Ok(()));
    };
    let continues = match in_batch {
        Some(next) => first == next,
        None if first == 0 => c.previous.is_none(),
        None => {
            store
                .history
                .contains_key(keys::history(id, first - 1))
                .map_err(read)?
                && !store
                    .history
                    .contains_key(keys::history(id, first))
                    .map_err(read)?
        }
    };
    if continues {
        return Ok(Ok(()));
    }
    // Only on this (rare) path is the stored snapshot decoded.
    let expected = match in_batch {
        Some(next) => next,
        None => store.instance(id).ok().flatten().map_or(0, |i| i.seq),
    };
    Ok(Err(Conflict::HistoryGap {
        instance: id.clone(),
        expected,
        got: first,
    }))
}

impl Journal for SledStore {
    fn commit(&self, batch: &[Commit]) -> Result<Vec<std::result::Result<(), Conflict>>> {
        let _one_writer = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen: HashMap<InstanceId, u64> = HashMap::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        for c in batch {
            let verdict = match check_shape(c) {
                Ok(()) => check_stored(self, c, &seen)?,
                Err(conflict) => Err(conflict),
            };
            if verdict.is_ok() {
                seen.insert(c.instance.id.clone(), c.instance.seq);
            }
            outcomes.push(verdict);
        }
        let encoded: Vec<Encoded<'_>> = batch
            .iter()
            .zip(&outcomes)
            .filter(|(_, ok)| ok.is_ok())
            .map(|(c, _)| encode_commit(c))
            .collect();
        let trees = (
            &self.instances,
            &self.status,
            &self.history,
            &self.outbox,
            &self.results,
            &self.timers,
            &self.tokens,
        );
        trees
            .transaction(
                |(instances, status, history, outbox, results, timers, tokens)| {
                    for e in &encoded {
                        let c = e.commit;
                        let id = &c.instance.id;
                        instances.insert(id.as_str().as_bytes(), e.instance.as_slice())?;
                        if c.previous != Some(c.instance.status) {
                            if let Some(prev) = c.previous {
                                status.remove(keys::status(prev, id))?;
                            }
                            status.insert(keys::status(c.instance.status, id), &[] as &[u8])?;
                        }
                        for (k, v) in &e.records {
                            history.insert(k.as_slice(), v.as_slice())?;
                        }
                        for key in &c.settled {
                            outbox.remove(keys::outbox(id, key))?;
                        }
                        for (k, v) in &e.outbox {
                            outbox.insert(k.as_slice(), v.as_slice())?;
                        }
                        for (k, v) in &e.results {
                            results.insert(k.as_slice(), v.as_slice())?;
                        }
                        for t in &c.timers_cancelled {
                            timers.remove(keys::timer(t))?;
                        }
                        for (k, v) in &e.timers {
                            timers.insert(k.as_slice(), v.as_slice())?;
                        }
                        for (k, v) in &e.tokens {
                            tokens.insert(k.as_slice(), v.as_slice())?;
                        }
                    }
                    Ok::<(), ConflictableTransactionError<()>>(())
                },
            )
            .map_err(|e| Error::Sled {
                op: "commit",
                source: match e {
                    sled::transaction::TransactionError::Storage(s) => s,
                    // The closure never aborts; keep the type honest anyway.
                    sled::transaction::TransactionError::Abort(()) => {
                        sled::Error::Unsupported("commit aborted".into())
                    }
                },
            })?;
        self.flush()?;
        Ok(outcomes)
    }

    fn remove_timer(&self, timer: &Timer) -> Result<()> {
        self.timers
            .remove(keys::timer(timer))
            .map_err(sled_err("remove timer"))?;
        Ok(())
    }
}
