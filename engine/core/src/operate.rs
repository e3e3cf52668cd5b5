//! The operations users call — deploy, start, signal, complete, heartbeat,
//! redrive, cancel, migrate, resolve, status, history, list, resume — taking
//! and returning plain types. The CLI and the server parse, call these and
//! render; they do no engine work of their own.

use serde_json::Value;
use weft_model::interpret;
use weft_model::{Bindings, Event, Failure, Instance, InstanceId, Process, Record, Span, Status};
use weft_store::{Deploy, PluginBlob, PluginEntry, TokenRecord};

use crate::apply::defaults_of;
use crate::{Delivered, Engine, Error, Result};

pub use weft_store::{Deployed, ProcessRecord};

/// How long a completion waits for its token when the step that hands it
/// out is still being committed (the adapter gave the token to someone who
/// was quicker than the engine's commit).
const EARLY_TOKEN_PATIENCE: Span = Span(10_000);

/// What `start_keyed` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub id: InstanceId,
    /// An instance with the business key already existed; nothing started.
    pub existing: bool,
}

/// How an outside party completes a pending step.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    Done(Value),
    Failed(Failure),
}

/// A checked process version with its checked bindings and the plugin
/// components they name: what `deploy` stores, all at once.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub process: Process,
    pub bindings: Bindings,
    pub plugins: Vec<PluginBlob>,
}

/// Which instances `list` returns: filters, then a page after a cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageQuery {
    pub process: Option<String>,
    pub status: Option<Status>,
    pub state: Option<String>,
    /// Only unfinished instances past an SLA (their process's or their
    /// current state's).
    pub stuck: bool,
    /// Only instances after this id (ids sort by creation time).
    pub after: Option<InstanceId>,
    pub limit: usize,
    /// Stop after reading this many instances, with a shorter page and a
    /// `next` to go on from: a filter that matches few of many does not
    /// read them all in one request. `None`: read until the page is full.
    pub max_read: Option<usize>,
}

/// One line of a listing (as the API and `weft list --json` show it).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    pub id: InstanceId,
    pub process: String,
    pub version: u32,
    pub key: Option<String>,
    pub status: Status,
    pub state: String,
    pub updated_at: weft_model::Millis,
    /// The SLAs it has run past.
    pub overdue: Vec<weft_model::Overdue>,
}

/// Point-in-time figures read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gauges {
    pub by_status: Vec<(Status, usize)>,
    /// Invocations committed and not yet settled.
    pub outbox: usize,
    /// Durable timers armed.
    pub timers: usize,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Page {
    pub items: Vec<Summary>,
    /// The cursor for the next page, when there may be more.
    pub next: Option<InstanceId>,
}

impl Engine {
    /// Stores a process version with its bindings and plugins, atomically.
    /// Running instances of that version use the new bindings from their
    /// next attempt; other versions keep theirs. Refused when an action of
    /// the process has no binding or a binding names a plugin not given.
    pub async fn deploy(&self, req: DeployRequest) -> Result<Deployed> {
        let p = &req.process;
        let refuse = Error::DeployRefused;
        for action in p.actions() {
            let Some(binding) = req.bindings.actions.get(action) else {
                return Err(refuse(format!(
                    "process '{}' v{} uses action '{action}', which the bindings do not bind",
                    p.name, p.version
                )));
            };
            if !req.plugins.iter().any(|b| b.name == binding.plugin) {
                return Err(refuse(format!(
                    "action '{action}' is bound to plugin '{}', which the deploy does not carry",
                    binding.plugin
                )));
            }
        }
        let deploy = Deploy {
            process: ProcessRecord {
                name: p.name.clone(),
                version: p.version,
                definition: p.definition.clone(),
                deployed_at: self.inner.clock.now(),
            },
            bindings: req.bindings.clone(),
            plugins: req.plugins.clone(),
        };
        let fresh = deploy.clone();
        let key = (p.name.clone(), p.version);
        let deployed = match self.read(move |s| s.deploy(&deploy)).await {
            Ok(d) => d.map_err(Error::Conflict)?,
            Err(e) => {
                // It may have been written and not flushed: this engine
                // reads the bindings from the store again.
                crate::engine::lock(&self.inner.deployments).remove(&key);
                return Err(e);
            }
        };
        if deployed.new_revision {
            // This engine uses the new revision from the next attempt on.
            self.remember_deployment(std::sync::Arc::new(fresh.deployment(deployed.revision)));
        }
        self.inner.deployed.notify_waiters();
        Ok(deployed)
    }

    /// Starts an instance of a deployed process (the newest version unless
    /// one is given) and returns once its start is durable.
    pub async fn start(
        &self,
        name: &str,
        version: Option<u32>,
        input: Value,
    ) -> Result<InstanceId> {
        Ok(self.start_keyed(name, version, input, None).await?.id)
    }

    /// Starts an instance with a business key, unique per process: when one
    /// was already started with the key, returns it instead of starting a
    /// duplicate (checked in the same commit, so racing starts make one).
    pub async fn start_keyed(
        &self,
        name: &str,
        version: Option<u32>,
        input: Value,
        key: Option<String>,
    ) -> Result<Started> {
        if let Some(k) = &key
            && let Some(id) = self.by_key(name, k).await?
        {
            return Ok(Started { id, existing: true });
        }
        if !input.is_object() {
            return Err(Error::InputNotObject);
        }
        weft_model::limits::check(&input).map_err(|why| Error::TooLarge {
            what: "the instance input".into(),
            why: why.to_string(),
        })?;
        let _work = self.work();
        let process = match version {
            Some(v) => self.process(name, v).await?,
            None => self.latest(name).await?,
        };
        let deployment = self.deployment(name, process.version).await?;
        let now = self.inner.clock.now();
        let id = self.place(now)?;
        let first = id.clone();
        let mut applied = self
            .blocking(move || {
                let defaults = defaults_of(deployment.as_deref());
                interpret::start(&process, defaults, first, input, now)
            })
            .await?;
        applied.instance.key = key;
        match self.write(None, applied, None, false).await {
            Ok(invokes) => {
                self.dispatch(invokes, false);
                Ok(Started {
                    id,
                    existing: false,
                })
            }
            Err(Error::Conflict(weft_store::Conflict::KeyTaken { instance, .. })) => Ok(Started {
                id: instance,
                existing: true,
            }),
            Err(e) => Err(e),
        }
    }

    /// A fresh id for a new instance, in a partition this node holds (on a
    /// shared store: each node starts instances it drives itself, so a
    /// start never waits on another node).
    fn place(&self, now: weft_model::Millis) -> Result<InstanceId> {
        // With one partition of 64 held, one try in 64 lands: 4,096 tries
        // miss it about once in 10^28.
        for _ in 0..4_096 {
            let id = self.inner.ids.next(now);
            if self.inner.store.holds(&id) {
                return Ok(id);
            }
        }
        Err(Error::NoPartition)
    }

    /// Adds a component to the plugin registry under `name`: a new version
    /// of the name (`true`), unless its newest version has these very bytes
    /// (`false`). The caller has loaded the component and read its manifest.
    pub async fn register_plugin(
        &self,
        name: &str,
        bytes: std::sync::Arc<[u8]>,
        sha256: String,
        manifest: weft_model::Manifest,
    ) -> Result<(PluginEntry, bool)> {
        if !weft_model::validate::valid_name(name) {
            return Err(Error::DeployRefused(format!(
                "'{name}' is not a plugin name: use letters, digits, '-', '_' and '.'"
            )));
        }
        let entry = PluginEntry {
            name: name.to_owned(),
            version: 0,
            sha256,
            size: bytes.len() as u64,
            added_at: self.inner.clock.now(),
            manifest,
        };
        self.read(move |s| s.register_plugin(&entry, &bytes)).await
    }

    /// The plugin registry: every version of every plugin, by name.
    pub async fn plugins(&self) -> Result<Vec<PluginEntry>> {
        self.read(|s| s.registry()).await
    }

    /// A registered plugin, named as `name` (every version), `name@version`
    /// or by its sha256 digest, with the deployed process versions whose
    /// newest bindings use those bytes.
    pub async fn plugin(&self, what: &str) -> Result<PluginInfo> {
        let all = self.plugins().await?;
        let (name, version) = match what.split_once('@') {
            Some((n, v)) => (n, Some(v.parse::<u32>().ok())),
            None => (what, None),
        };
        let versions: Vec<PluginEntry> = all
            .into_iter()
            .filter(|e| match version {
                None => e.name == name || e.sha256 == what,
                Some(v) => e.name == name && Some(e.version) == v,
            })
            .collect();
        if versions.is_empty() {
            return Err(Error::NoPlugin(what.to_owned()));
        }
        let digests: Vec<String> = versions.iter().map(|e| e.sha256.clone()).collect();
        let used_by = self
            .read(move |s| {
                let mut uses = Vec::new();
                for p in s.processes()? {
                    let Some(d) = s.deployment(&p.name, p.version)? else {
                        continue;
                    };
                    // Each action runs its plugin's component, a swapped
                    // action its own, and a canary's on trial.
                    let mut by_sha: std::collections::BTreeMap<&str, Vec<String>> =
                        Default::default();
                    for action in d.bindings.actions.keys() {
                        let trial = d.canary_for(action).map(|c| c.sha256.as_str());
                        for sha in d.digest_of(action).into_iter().chain(trial) {
                            by_sha.entry(sha).or_default().push(action.clone());
                        }
                    }
                    for (sha, actions) in by_sha {
                        if !digests.iter().any(|d| d == sha) {
                            continue;
                        }
                        uses.push(PluginUse {
                            process: p.name.clone(),
                            version: p.version,
                            revision: d.revision,
                            sha256: sha.to_owned(),
                            actions,
                        });
                    }
                }
                Ok(uses)
            })
            .await?;
        Ok(PluginInfo { versions, used_by })
    }

    /// The bytes of a registered plugin (the newest version when `what`
    /// names several), with its entry.
    pub async fn plugin_component(&self, what: &str) -> Result<(PluginEntry, Vec<u8>)> {
        let info = self.plugin(what).await?;
        let entry = info
            .versions
            .last()
            .cloned()
            .ok_or_else(|| Error::NoPlugin(what.to_owned()))?;
        let sha = entry.sha256.clone();
        let bytes = self
            .read(move |s| s.plugin(&sha))
            .await?
            .ok_or_else(|| Error::NoPlugin(what.to_owned()))?;
        Ok((entry, bytes))
    }

    /// Every deployed process version, by name then version.
    pub async fn processes(&self) -> Result<Vec<ProcessRecord>> {
        self.read(|s| s.processes()).await
    }

    /// One deployed process version as stored (the newest when `version`
    /// is `None`).
    pub async fn process_record(&self, name: &str, version: Option<u32>) -> Result<ProcessRecord> {
        let owned = name.to_owned();
        let found = self
            .read(move |s| match version {
                Some(v) => s.process(&owned, v),
                None => s.latest_process(&owned),
            })
            .await?;
        found.ok_or_else(|| match version {
            Some(version) => Error::NoVersion {
                name: name.to_owned(),
                version,
            },
            None => Error::NoProcess(name.to_owned()),
        })
    }

    /// What `/metrics` reports as gauges, read from the store: instances by
    /// status, invocations in the outbox, armed timers.
    pub async fn gauges(&self) -> Result<Gauges> {
        self.read(|s| {
            let mut by_status = Vec::new();
            for status in Status::ALL {
                by_status.push((status, s.ids_with_status(status)?.len()));
            }
            let outbox = s.outbox()?.len();
            let timers = s
                .due_timers(weft_model::Millis(u64::MAX), usize::MAX)?
                .len();
            Ok(Gauges {
                by_status,
                outbox,
                timers,
            })
        })
        .await
    }

    /// The instance of `process` started with a business key.
    pub async fn by_key(&self, process: &str, key: &str) -> Result<Option<InstanceId>> {
        let (p, k) = (process.to_owned(), key.to_owned());
        self.read(move |s| s.by_key(&p, &k)).await
    }

    /// An instance named by its id, or by the business key it was started
    /// with (looked up in every deployed process).
    pub async fn resolve(&self, text: &str) -> Result<InstanceId> {
        if let Some(id) = InstanceId::parse(text) {
            let probe = id.clone();
            if self.read(move |s| s.instance(&probe)).await?.is_some() {
                return Ok(id);
            }
        }
        let key = text.to_owned();
        let found = self
            .read(move |s| {
                let mut names: Vec<String> = s.processes()?.into_iter().map(|p| p.name).collect();
                names.dedup(); // stored by name, then version
                let mut found = Vec::new();
                for name in names {
                    if let Some(id) = s.by_key(&name, &key)? {
                        found.push((name, id));
                    }
                }
                Ok(found)
            })
            .await?;
        match found.as_slice() {
            [] if InstanceId::parse(text).is_some() => {
                Err(Error::NoInstance(InstanceId(text.to_ascii_uppercase())))
            }
            [] => Err(Error::UnknownTarget(text.to_owned())),
            [(_, id)] => Ok(id.clone()),
            _ => Err(Error::AmbiguousKey {
                key: text.to_owned(),
                found: found
                    .iter()
                    .map(|(p, id)| format!("{p}: {id}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// An instance as stored.
    pub async fn status(&self, id: &InstanceId) -> Result<Instance> {
        let owned = id.clone();
        self.read(move |s| s.instance(&owned))
            .await?
            .ok_or_else(|| Error::NoInstance(id.clone()))
    }

    /// An instance's history from record `from` on.
    pub async fn history(&self, id: &InstanceId, from: u64) -> Result<Vec<Record>> {
        let owned = id.clone();
        let (exists, records) = self
            .read(move |s| Ok((s.instance(&owned)?.is_some(), s.history(&owned, from)?)))
            .await?;
        if !exists {
            return Err(Error::NoInstance(id.clone()));
        }
        Ok(records)
    }

    /// Instances matching the query, oldest first, a page at a time.
    pub async fn list(&self, query: PageQuery) -> Result<Page> {
        let limit = query.limit.clamp(1, 1_000);
        let q = query.clone();
        self.read(move |s| {
            let statuses: Vec<Status> = Status::ALL
                .into_iter()
                .filter(|st| q.status.is_none_or(|want| want == *st))
                .filter(|st| !q.stuck || !st.is_finished())
                .collect();
            // Walks the status indexes in id order from the cursor, a batch
            // at a time: a page reads about what it shows (more when the
            // process or state filter skips many), never the whole index.
            let batch = limit + 1;
            let mut cursor = q.after.clone();
            let mut read = 0usize;
            let mut items: Vec<Summary> = Vec::new();
            loop {
                let mut ids = Vec::new();
                for st in &statuses {
                    ids.extend(s.ids_with_status_after(*st, cursor.as_ref(), batch)?);
                }
                ids.sort();
                ids.truncate(batch);
                let Some(last) = ids.last().cloned() else {
                    return Ok(Page { items, next: None });
                };
                for id in ids {
                    read += 1;
                    if q.max_read.is_some_and(|m| read > m) {
                        return Ok(Page {
                            items,
                            next: Some(cursor.clone().unwrap_or(id)),
                        });
                    }
                    cursor = Some(id.clone());
                    let Some(inst) = s.instance(&id)? else {
                        continue;
                    };
                    let wanted = q.process.as_ref().is_none_or(|p| *p == inst.process)
                        && q.state.as_ref().is_none_or(|st| *st == inst.state)
                        && (!q.stuck || !inst.overdue.is_empty());
                    if !wanted {
                        continue;
                    }
                    if items.len() == limit {
                        let next = items.last().map(|i| i.id.clone());
                        return Ok(Page { items, next });
                    }
                    items.push(Summary {
                        id: inst.id,
                        process: inst.process,
                        version: inst.version,
                        key: inst.key,
                        status: inst.status,
                        state: inst.state,
                        updated_at: inst.updated_at,
                        overdue: inst.overdue,
                    });
                }
                cursor = Some(last);
            }
        })
        .await
    }

    /// Delivers an external event to a waiting instance. Refused, with the
    /// events the instance does accept, when its state does not accept it.
    pub async fn signal(&self, id: &InstanceId, name: &str, data: Value) -> Result<()> {
        let op = Operation::Signal {
            name: name.to_owned(),
            data,
        };
        self.operate(id, op, None).await.map(drop)
    }

    /// Carries out an operator's request on an instance. With an
    /// idempotency key, a request the instance applied before (the same
    /// operation with the same key, among its last [`Instance::REQUESTS`])
    /// changes nothing and answers [`Done::Repeated`]; the key is kept in
    /// the commit that applies the request, so a retry racing the first
    /// attempt or following a crash finds it.
    pub async fn operate(
        &self,
        id: &InstanceId,
        op: Operation,
        idempotency_key: Option<&str>,
    ) -> Result<Done> {
        let request = idempotency_key.map(|k| format!("{}:{k}", op.scope()));
        let event = match op {
            Operation::Signal { name, data } => {
                weft_model::limits::check(&data).map_err(|why| Error::TooLarge {
                    what: format!("the payload of signal '{name}'"),
                    why: why.to_string(),
                })?;
                Event::Signal { name, data }
            }
            Operation::Cancel { compensate } => Event::Cancel { compensate },
            Operation::Redrive => Event::Redrive,
            Operation::Migrate { version } => return self.migrate_to(id, version, request).await,
        };
        match self.deliver_request(id, event, None, None, request).await? {
            Delivered::Applied => Ok(Done::Applied),
            Delivered::Repeated => Ok(Done::Repeated),
            Delivered::Rejected(why) => Err(Error::Refused(id.clone(), why.to_string())),
        }
    }

    /// Moves an instance to another deployed version of its process, or
    /// refuses when its state or data does not fit that version.
    pub async fn migrate(&self, id: &InstanceId, version: u32) -> Result<()> {
        self.migrate_to(id, version, None).await.map(drop)
    }

    async fn migrate_to(
        &self,
        id: &InstanceId,
        version: u32,
        request: Option<String>,
    ) -> Result<Done> {
        let _work = self.work();
        if !self.inner.store.holds(id) {
            return Err(Error::Elsewhere(id.clone()));
        }
        self.exclusive(id, async {
            let inst = self.take_current(id).await?;
            if request.as_ref().is_some_and(|r| inst.handled(r)) {
                self.put_back(inst);
                return Ok(Done::Repeated);
            }
            let now = self.inner.clock.now();
            let (inst, applied) = match self.process(&inst.process, version).await {
                Ok(to) => {
                    let (inst, applied) = self
                        .blocking(move || {
                            let applied = interpret::migrate(&to, &inst, now);
                            (inst, applied)
                        })
                        .await?;
                    (
                        inst,
                        applied.map_err(|why| Error::Refused(id.clone(), why.0)),
                    )
                }
                Err(e) => (inst, Err(e)),
            };
            match applied {
                Ok(mut applied) => {
                    if let Some(r) = request {
                        applied.instance.remember(r);
                    }
                    let previous = inst.status;
                    let written = self.write(Some(previous), applied, None, false).await;
                    if written.as_ref().is_err_and(crate::apply::keeps_snapshot) {
                        self.put_back(inst);
                    }
                    written.map(|_| Done::Applied)
                }
                Err(e) => {
                    self.put_back(inst);
                    Err(e)
                }
            }
        })
        .await
    }

    /// Picks up every unfinished piece of work in the store after a restart:
    /// each outbox invocation is carried out again (unless its outcome was
    /// already recorded); stored timers fire when due. Returns the instances
    /// with invocations to carry out.
    pub async fn resume(&self) -> Result<Vec<InstanceId>> {
        let entries = self.read(|s| s.outbox()).await?;
        let mut invokes = Vec::with_capacity(entries.len());
        for entry in entries {
            match entry {
                Ok(inv) => invokes.push(inv),
                // Left where it is, said once; every other one resumes.
                Err(e) => self.report_trouble(format!("left alone: {e}")),
            }
        }
        let mut ids: Vec<InstanceId> = invokes.iter().map(|i| i.instance.clone()).collect();
        ids.sort();
        ids.dedup();
        self.dispatch_recovered(invokes);
        self.inner.timer_wake.notify_one();
        Ok(ids)
    }

    /// Waits until the instance is no longer running, and returns it.
    pub async fn wait(&self, id: &InstanceId) -> Result<Instance> {
        let mut rx = self.subscribe();
        loop {
            let inst = self.status(id).await?;
            if inst.status != Status::Running {
                return Ok(inst);
            }
            loop {
                match rx.recv().await {
                    Ok(n) if &n.instance == id && n.status != Status::Running => break,
                    Ok(_) => continue,
                    // Missed some notices, or the engine is gone: look again.
                    Err(_) => break,
                }
            }
        }
    }

    /// Completes a step that waits on `token`. A token completes once.
    pub async fn complete(&self, token: &str, completion: Completion) -> Result<InstanceId> {
        let record = self.open_token(token).await?;
        let event = match completion {
            Completion::Done(output) => {
                weft_model::limits::check(&output).map_err(|why| Error::TooLarge {
                    what: format!("the output completing token '{token}'"),
                    why: why.to_string(),
                })?;
                Event::StepDone {
                    key: record.key.clone(),
                    output,
                }
            }
            Completion::Failed(failure) => Event::StepFailed {
                key: record.key.clone(),
                failure,
                heartbeat: None,
            },
        };
        match self.deliver(&record.instance, event, None).await? {
            Delivered::Applied | Delivered::Repeated => Ok(record.instance),
            Delivered::Rejected(_) => Err(Error::TokenUsed(token.to_owned())),
        }
    }

    /// Reports progress of a step that waits on `token`.
    pub async fn heartbeat(&self, token: &str, details: String) -> Result<InstanceId> {
        let record = self.open_token(token).await?;
        let event = Event::Heartbeat {
            key: record.key.clone(),
            details,
        };
        match self.deliver(&record.instance, event, None).await? {
            Delivered::Applied | Delivered::Repeated => Ok(record.instance),
            Delivered::Rejected(_) => Err(Error::TokenUsed(token.to_owned())),
        }
    }

    /// The open token's record. A token not (yet) stored while this engine
    /// has invocations in flight may be one an adapter handed out before the
    /// engine committed its `pending` answer: wait for that commit, a while.
    async fn open_token(&self, token: &str) -> Result<TokenRecord> {
        let clock = self.inner.clock.clone();
        let give_up = clock.now().plus(EARLY_TOKEN_PATIENCE);
        loop {
            let opened = self.inner.tokens_opened.notified();
            // Sampled before the read: an invocation that commits its token
            // between the read and a later look would otherwise be missed
            // (the read saw no token, the look sees nothing in flight).
            let in_flight = self
                .inner
                .invoking
                .load(std::sync::atomic::Ordering::SeqCst)
                > 0;
            let t = token.to_owned();
            if let Some(record) = self.read(move |s| s.token(&t)).await? {
                if record.closed_at.is_some() {
                    return Err(Error::TokenUsed(token.to_owned()));
                }
                return Ok(record);
            }
            if !in_flight || clock.now() >= give_up {
                return Err(Error::NoToken(token.to_owned()));
            }
            tokio::select! {
                () = opened => {}
                () = clock.sleep_until(give_up) => {}
            }
        }
    }

    /// Retries a parked instance from the step it stopped at.
    pub async fn redrive(&self, id: &InstanceId) -> Result<()> {
        self.operate(id, Operation::Redrive, None).await.map(drop)
    }

    /// Ends an instance, undoing its completed steps first when asked.
    pub async fn cancel(&self, id: &InstanceId, compensate: bool) -> Result<()> {
        self.operate(id, Operation::Cancel { compensate }, None)
            .await
            .map(drop)
    }
}

/// A registered plugin ([`Engine::plugin`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PluginInfo {
    /// The versions asked for, oldest first.
    pub versions: Vec<PluginEntry>,
    /// Deployed process versions whose newest bindings use those bytes.
    pub used_by: Vec<PluginUse>,
}

/// Where a deployed process version uses a registered component.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PluginUse {
    pub process: String,
    pub version: u32,
    /// Its bindings revision.
    pub revision: u32,
    pub sha256: String,
    /// The actions bound to it.
    pub actions: Vec<String>,
}

/// An operator's request on one instance ([`Engine::operate`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    Signal { name: String, data: Value },
    Cancel { compensate: bool },
    Redrive,
    Migrate { version: u32 },
}

impl Operation {
    /// What an idempotency key is scoped by: the same key on another
    /// operation (or another signal) is another request.
    fn scope(&self) -> String {
        match self {
            Operation::Signal { name, .. } => format!("signal/{name}"),
            Operation::Cancel { compensate } => format!("cancel/{compensate}"),
            Operation::Redrive => "redrive".to_owned(),
            Operation::Migrate { version } => format!("migrate/{version}"),
        }
    }
}

/// How an operator's request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Applied,
    /// Applied before, under the same idempotency key: nothing changed.
    Repeated,
}
