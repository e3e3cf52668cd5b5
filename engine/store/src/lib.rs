//! weft-store: the contract of every place weft keeps what it knows.
//!
//! Narrow traits per table ([`Definitions`], [`Instances`], [`Journal`]), the
//! key layout ([`keys`]) that ordered key-value backends share, an in-memory
//! implementation for tests ([`MemStore`]), and the conformance suite
//! ([`testkit`]) that every backend's crate runs against itself (sled lives in
//! `weft-store-sled`). A [`Commit`] — history append, instance snapshot,
//! outbox changes, recorded step results — is applied atomically and is
//! durable when [`Journal::commit`] returns; a batch of commits shares one
//! atomic write and one flush (group commit). A [`Deploy`] — process version,
//! bindings and plugin components — is one atomic write too.
//!
//! Depends on `weft-model` only: no tokio, no wasmtime, no database.

pub mod keys;
mod mem;
mod swap;
pub mod testkit;
pub mod transfer;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_model::{
    Bindings, Failure, Instance, InstanceId, Invoke, Manifest, Millis, Record, Slot, Status, Timer,
};

pub use mem::MemStore;
pub use swap::{
    Canary, CanaryPolicy, Route, SwapChange, SwapKind, SwapRecord, SwapWrite, Target, of_target,
};

/// A backend's own error, kept as the source of ours.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the store at {path}: {source}")]
    Open { path: String, source: BackendError },
    #[error("the store at {path} is in use by another weft process")]
    Locked { path: String },
    /// An operation failed in the backend; `what` names the ids involved.
    #[error("store: cannot {op} {what}: {source}")]
    Backend {
        op: &'static str,
        what: String,
        source: BackendError,
    },
    #[error("stored {what} is unreadable: {source}")]
    Corrupt {
        what: String,
        source: serde_json::Error,
    },
}

impl Error {
    /// A backend failure of `op` on `what` (ids, keys).
    pub fn backend(
        op: &'static str,
        what: impl Into<String>,
        source: impl Into<BackendError>,
    ) -> Error {
        Error::Backend {
            op,
            what: what.into(),
            source: source.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A write that does not fit what is stored: returned as a value, since the
/// caller decides what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// A process with this name and version exists with another definition.
    ProcessVersion { name: String, version: u32 },
    /// The instance already exists.
    InstanceExists(InstanceId),
    /// The instance does not exist.
    NoInstance(InstanceId),
    /// Another instance of the process was started with this business key.
    KeyTaken {
        process: String,
        key: String,
        instance: InstanceId,
    },
    /// History would not continue gap-free from what is stored.
    HistoryGap {
        instance: InstanceId,
        expected: u64,
        got: u64,
    },
    /// A step tried to open a completion token another step holds (or held).
    TokenTaken { token: String, key: String },
    /// What a swap was computed from changed meanwhile (a deploy or another
    /// swap wrote this bindings revision first).
    Stale { process: String, version: u32 },
    /// The instance's partition is held by another node now (or this
    /// node's lease on it ran out): this node may not write to it.
    Fenced {
        instance: InstanceId,
        partition: u32,
    },
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Conflict::ProcessVersion { name, version } => write!(
                f,
                "process '{name}' version {version} is already deployed with a different definition"
            ),
            Conflict::InstanceExists(id) => write!(f, "instance {id} already exists"),
            Conflict::NoInstance(id) => write!(f, "instance {id} does not exist"),
            Conflict::KeyTaken {
                process,
                key,
                instance,
            } => write!(
                f,
                "instance {instance} of '{process}' was already started with the key '{key}'"
            ),
            Conflict::HistoryGap {
                instance,
                expected,
                got,
            } => write!(
                f,
                "history of {instance} would continue at {got}, but the next number is {expected}"
            ),
            Conflict::TokenTaken { token, key } => write!(
                f,
                "completion token '{token}' is already in use by step {key}"
            ),
            Conflict::Stale { process, version } => write!(
                f,
                "the bindings of process '{process}' v{version} changed meanwhile"
            ),
            Conflict::Fenced {
                instance,
                partition,
            } => write!(
                f,
                "instance {instance} is in partition {partition}, which this node no longer holds"
            ),
        }
    }
}

/// A deployed process version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub name: String,
    pub version: u32,
    /// The definition as written, as JSON.
    pub definition: Value,
    pub deployed_at: Millis,
}

/// The bindings one process version's actions run with, and the exact
/// plugin components (by sha256) they name. Each re-deploy of bindings for a
/// version makes a new revision; instances use the newest from their next
/// attempt on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub process: String,
    /// The process version these bindings belong to.
    #[serde(default)]
    pub version: u32,
    /// 1 for the first bindings of the version, then one more per change.
    #[serde(default)]
    pub revision: u32,
    pub bindings: Bindings,
    /// Plugin name to the sha256 of its component bytes.
    pub plugins: IndexMap<String, String>,
    pub deployed_at: Millis,
    /// Actions swapped one by one: action to the sha256 of the component
    /// that carries it out instead of its plugin's.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub pinned: IndexMap<String, String>,
    /// Components on trial for a share of attempts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canaries: Vec<Canary>,
}

/// A component in the plugin registry: one version of a named plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginEntry {
    pub name: String,
    /// 1, 2, ...: a new one each time other bytes are added under the name.
    pub version: u32,
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    pub added_at: Millis,
    /// What the component says about itself.
    pub manifest: Manifest,
}

/// A plugin component to store with a deploy.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginBlob {
    pub name: String,
    pub sha256: String,
    pub bytes: std::sync::Arc<[u8]>,
}

/// Everything one deploy writes — the process version, its bindings and
/// the plugin components they name — written as one atomic change.
#[derive(Debug, Clone, PartialEq)]
pub struct Deploy {
    pub process: ProcessRecord,
    pub bindings: Bindings,
    pub plugins: Vec<PluginBlob>,
}

impl Deploy {
    /// The deployment record this deploy makes, as revision `revision`.
    pub fn deployment(&self, revision: u32) -> Deployment {
        Deployment {
            process: self.process.name.clone(),
            version: self.process.version,
            revision,
            bindings: self.bindings.clone(),
            plugins: self
                .plugins
                .iter()
                .map(|p| (p.name.clone(), p.sha256.clone()))
                .collect(),
            deployed_at: self.process.deployed_at,
            pinned: IndexMap::new(),
            canaries: Vec::new(),
        }
    }

    /// Whether `d` already holds exactly these bindings and plugins.
    pub fn same_as(&self, d: &Deployment) -> bool {
        let fresh = self.deployment(d.revision);
        d.bindings == fresh.bindings
            && d.plugins == fresh.plugins
            && d.pinned.is_empty()
            && d.canaries.is_empty()
    }
}

/// What a deploy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployed {
    /// The bindings revision in force for the version now.
    pub revision: u32,
    /// The process version was new.
    pub new_version: bool,
    /// A new bindings revision was written (false when nothing changed).
    pub new_revision: bool,
}

/// The recorded outcome of a step, filed under its idempotency key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepResult {
    Done { output: Value },
    Failed { failure: Failure },
}

/// A completion token handed out by an adapter that answered `pending`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub instance: InstanceId,
    /// The step it completes.
    pub key: String,
    pub opened_at: Millis,
    /// When the step stopped waiting on it; completing it again is refused.
    pub closed_at: Option<Millis>,
}

/// One atomic change to one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// The instance after the change.
    pub instance: Instance,
    /// Its status before the change; `None` when the commit creates it.
    pub previous: Option<Status>,
    /// History to append, numbered from where the stored history ends.
    pub records: Vec<Record>,
    /// Invocations to add to the outbox.
    pub outbox: Vec<Invoke>,
    /// Outbox invocations (by step key) this change settles.
    pub settled: Vec<String>,
    /// Step outcomes to record under their idempotency keys.
    pub results: Vec<(String, StepResult)>,
    pub timers_armed: Vec<Timer>,
    pub timers_cancelled: Vec<Timer>,
    /// Tokens opened or closed by this change.
    pub tokens: Vec<(String, TokenRecord)>,
    /// The slots of the instance's fan this change touched, by index
    /// ([`Fan::take_changes`](weft_model::Fan::take_changes)). A store that
    /// keeps slots apart from the snapshot writes only these, so a map's
    /// branch event costs the same at 10 items as at 10,000.
    pub branches: Vec<(usize, Slot)>,
    /// Fans (by key) this change ended: their slots can go.
    pub closed_fans: Vec<String>,
    /// The instance data is the same as the stored data (the engine
    /// compared them): a store that keeps the data apart from the snapshot
    /// need not write it again. A map's items, or any large payload, are
    /// then not rewritten by every event.
    pub data_unchanged: bool,
}

impl Commit {
    /// A commit that only stores the instance; fill in the rest.
    pub fn new(instance: Instance, previous: Option<Status>) -> Self {
        Commit {
            instance,
            previous,
            records: Vec::new(),
            outbox: Vec::new(),
            settled: Vec::new(),
            results: Vec::new(),
            timers_armed: Vec::new(),
            timers_cancelled: Vec::new(),
            tokens: Vec::new(),
            branches: Vec::new(),
            closed_fans: Vec::new(),
            data_unchanged: false,
        }
    }
}

/// Process definitions, deployments and plugin components.
pub trait Definitions: Send + Sync {
    /// Stores a process version. Storing the same definition again is fine;
    /// a different definition under an existing version is a conflict.
    fn put_process(&self, p: &ProcessRecord) -> Result<Result<(), Conflict>>;
    fn process(&self, name: &str, version: u32) -> Result<Option<ProcessRecord>>;
    fn latest_process(&self, name: &str) -> Result<Option<ProcessRecord>>;
    fn processes(&self) -> Result<Vec<ProcessRecord>>;
    /// Stores a process version with its bindings and plugins in one atomic
    /// write: after a crash it is whole or absent. The same definition with
    /// the same bindings again changes nothing; other bindings make a new
    /// revision; another definition under an existing version is a conflict.
    fn deploy(&self, d: &Deploy) -> Result<Result<Deployed, Conflict>>;
    /// The newest bindings revision of a process version.
    fn deployment(&self, process: &str, version: u32) -> Result<Option<Deployment>>;
    /// One bindings revision of a process version.
    fn deployment_revision(
        &self,
        process: &str,
        version: u32,
        revision: u32,
    ) -> Result<Option<Deployment>>;
    fn plugin(&self, sha256: &str) -> Result<Option<Vec<u8>>>;
    /// Adds a component to the registry under `entry.name`, with the next
    /// version of that name, and its bytes by digest, in one atomic write.
    /// When the newest version of the name has the same digest, nothing
    /// changes and that entry comes back, with `false`. `entry.version` is
    /// ignored.
    fn register_plugin(&self, entry: &PluginEntry, bytes: &[u8]) -> Result<(PluginEntry, bool)>;
    /// Every registry entry, by name, then version.
    fn registry(&self) -> Result<Vec<PluginEntry>>;
    /// Writes a swap in one atomic change: its bindings revisions, its
    /// component (registered when `register` says), its log record with the
    /// next sequence number, which comes back.
    fn swap(&self, w: &SwapWrite) -> Result<Result<SwapRecord, Conflict>>;
    /// The swap log, oldest first.
    fn swaps(&self) -> Result<Vec<SwapRecord>>;
    /// When schedule `index` of a process last fired (or was last
    /// considered, when missed firings were skipped).
    fn schedule_mark(&self, process: &str, index: u32) -> Result<Option<Millis>>;
    /// Durable when it returns.
    fn put_schedule_mark(&self, process: &str, index: u32, at: Millis) -> Result<()>;
    /// Writes one bindings revision as it is (copying a store): `Stale`
    /// when the revision is taken, or is not the next of its version.
    fn put_deployment(&self, d: &Deployment) -> Result<Result<(), Conflict>>;
    /// Stores a component's bytes under their digest (copying a store).
    fn put_plugin(&self, sha256: &str, bytes: &[u8]) -> Result<()>;
    /// Appends a record to the swap log as it is, with its sequence number
    /// (copying a store).
    fn put_swap(&self, record: &SwapRecord) -> Result<()>;
}

/// Reading instances and their history, outbox and results.
pub trait Instances: Send + Sync {
    fn instance(&self, id: &InstanceId) -> Result<Option<Instance>>;
    /// History from `from` (inclusive), in order.
    fn history(&self, id: &InstanceId, from: u64) -> Result<Vec<Record>>;
    /// Ids of instances with this status, oldest first.
    fn ids_with_status(&self, status: Status) -> Result<Vec<InstanceId>>;
    /// At most `limit` ids of instances with this status after `after`
    /// (exclusive), oldest first: a page of the status index, read without
    /// reading the rest.
    fn ids_with_status_after(
        &self,
        status: Status,
        after: Option<&InstanceId>,
        limit: usize,
    ) -> Result<Vec<InstanceId>>;
    /// Every pending outbox invocation of every instance; an entry that
    /// cannot be read comes back as its error, so one damaged record does
    /// not hide the others.
    fn outbox(&self) -> Result<Vec<Result<Invoke>>>;
    fn outbox_of(&self, id: &InstanceId) -> Result<Vec<Invoke>>;
    fn result(&self, key: &str) -> Result<Option<StepResult>>;
    /// The instance of `process` started with this business key.
    fn by_key(&self, process: &str, key: &str) -> Result<Option<InstanceId>>;
    /// The earliest armed timer's due time, without scanning: timers are
    /// kept in due-time order.
    fn next_timer(&self) -> Result<Option<Millis>>;
    /// The due time of the earliest timer due after `after`.
    fn next_timer_after(&self, after: Millis) -> Result<Option<Millis>>;
    /// Timers due at or before `until`, earliest first, at most `limit`.
    fn due_timers(&self, until: Millis, limit: usize) -> Result<Vec<Timer>>;
    fn token(&self, token: &str) -> Result<Option<TokenRecord>>;
    /// The recorded results of an instance's steps (whose keys start with
    /// its id), by key.
    fn results_of(&self, id: &InstanceId) -> Result<Vec<(String, StepResult)>>;
    /// Every completion token, open or closed, by token.
    fn tokens(&self) -> Result<Vec<(String, TokenRecord)>>;
}

/// Applying commits.
pub trait Journal: Send + Sync {
    /// Applies every commit of the batch in one atomic, durable write. A
    /// commit that conflicts with what is stored is skipped (its slot says
    /// why); the others are applied.
    fn commit(&self, batch: &[Commit]) -> Result<Vec<Result<(), Conflict>>>;
    /// Drops a timer that fired for nothing (its instance had moved on).
    fn remove_timer(&self, timer: &Timer) -> Result<()>;
    /// Whether this engine drives the instance: always, on a store one
    /// engine has to itself; on a store several nodes share, when this
    /// node holds the instance's partition. Commits to the others fail
    /// (`Conflict::Fenced`), and the outbox and timers read here leave them
    /// out.
    fn holds(&self, id: &InstanceId) -> bool {
        let _ = id;
        true
    }
}

/// Everything the engine needs from a store.
pub trait Store: Definitions + Instances + Journal {}
impl<T: Definitions + Instances + Journal> Store for T {}

/// The snapshot a store writes for an instance: without its data, kept
/// under a key of its own and written only when it changed
/// ([`Commit::data_unchanged`]), and without its fan's slots, kept one key
/// per slot and written only when touched ([`Commit::branches`]).
pub fn snapshot_head(inst: &Instance) -> Instance {
    let mut head = inst.clone_without_data();
    if let Some(fan) = head.fan.as_mut() {
        **fan = fan.without_slots();
    }
    head
}

/// Puts back what a store keeps apart into a snapshot it read: the data
/// (`None` for a snapshot written before data was kept apart, which holds
/// its own), and the slots, which `read` gives by fan key in index order.
/// A snapshot that still holds its slots is used as it is, and its slots
/// are written out by its next commit.
pub fn with_parts(
    mut head: Instance,
    data: Option<Value>,
    read: impl FnOnce(&str) -> Result<Vec<Slot>>,
) -> Result<Instance> {
    if let Some(data) = data {
        head.data = std::sync::Arc::new(data);
    }
    if let Some(fan) = head.fan.as_mut() {
        if fan.is_empty() {
            let slots = read(&fan.key)?;
            fan.fill(slots.into_iter().collect());
        } else {
            fan.mark_all_changed();
        }
    }
    Ok(head)
}

/// Checks the parts of a commit that need no stored state: history numbers
/// run without gaps and end where the snapshot says.
pub fn check_shape(c: &Commit) -> Result<(), Conflict> {
    let first = c.records.first().map(|r| r.seq);
    for (i, r) in c.records.iter().enumerate() {
        let expected = first.unwrap_or(0) + i as u64;
        if r.seq != expected {
            return Err(Conflict::HistoryGap {
                instance: c.instance.id.clone(),
                expected,
                got: r.seq,
            });
        }
    }
    let end = first.map_or(c.instance.seq, |f| f + c.records.len() as u64);
    if end != c.instance.seq {
        return Err(Conflict::HistoryGap {
            instance: c.instance.id.clone(),
            expected: end,
            got: c.instance.seq,
        });
    }
    Ok(())
}

/// Checks the tokens a commit opens against those already held: a token
/// belongs to one step, once. `held` looks a token up in what is stored (and
/// in earlier commits of the same batch).
pub fn check_tokens(
    c: &Commit,
    mut held: impl FnMut(&str) -> Result<Option<TokenRecord>>,
) -> Result<Result<(), Conflict>> {
    for (token, record) in &c.tokens {
        if record.closed_at.is_some() {
            continue;
        }
        if let Some(old) = held(token)? {
            let same_step_still_open = old.key == record.key && old.closed_at.is_none();
            if !same_step_still_open {
                return Ok(Err(Conflict::TokenTaken {
                    token: token.clone(),
                    key: old.key,
                }));
            }
        }
    }
    Ok(Ok(()))
}
