//! The engine: starts instances, applies events one at a time per instance,
//! commits what the interpreter produced, then carries out the commands.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::{Notify, broadcast};
use weft_model::interpret::{self, Applied};
use weft_model::{
    Command, Event, Instance, InstanceId, Invoke, Process, Record, Status, StepOutcome,
};
use weft_store::{Commit, StepResult, Store};

use crate::ids::IdSource;
use crate::writer::{Stats, Writer};
use crate::{Clock, Error, HeartbeatSink, Invoker, Result};

/// What the engine tells observers after each committed change.
#[derive(Debug, Clone)]
pub struct Notice {
    pub instance: InstanceId,
    pub status: Status,
    pub records: Vec<Record>,
}

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How many notices an observer may fall behind before it misses some.
    pub notice_buffer: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            notice_buffer: 4096,
        }
    }
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    invoker: Arc<dyn Invoker>,
    clock: Arc<dyn Clock>,
    writer: Writer,
    processes: Mutex<HashMap<(String, u32), Arc<Process>>>,
    /// One lock per instance with an event in progress: events for one
    /// instance apply strictly one after another.
    locks: Mutex<HashMap<InstanceId, Arc<tokio::sync::Mutex<()>>>>,
    /// Latest snapshots of instances with an invocation in flight, so the
    /// outcome need not read and decode them again. Only touched under the
    /// instance's lock; dropped when the instance stops running, so idle
    /// instances cost no memory.
    active: Mutex<HashMap<InstanceId, Instance>>,
    notices: broadcast::Sender<Notice>,
    ids: IdSource,
    in_flight: AtomicUsize,
    idle: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        invoker: Arc<dyn Invoker>,
        clock: Arc<dyn Clock>,
        options: EngineOptions,
    ) -> Engine {
        let writer = Writer::start(store.clone());
        let (notices, _) = broadcast::channel(options.notice_buffer.max(16));
        Engine {
            inner: Arc::new(Inner {
                store,
                invoker,
                clock,
                writer,
                processes: Mutex::new(HashMap::new()),
                locks: Mutex::new(HashMap::new()),
                active: Mutex::new(HashMap::new()),
                notices,
                ids: IdSource::default(),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Commits written and write batches so far.
    pub fn writer_stats(&self) -> &Stats {
        self.inner.writer.stats()
    }

    /// Notices of every committed change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.inner.notices.subscribe()
    }

    /// A deployed process version, validated once and cached.
    pub fn process(&self, name: &str, version: u32) -> Result<Arc<Process>> {
        let key = (name.to_owned(), version);
        if let Some(p) = lock(&self.inner.processes).get(&key) {
            return Ok(p.clone());
        }
        let record = self
            .inner
            .store
            .process(name, version)?
            .ok_or_else(|| Error::NoVersion {
                name: name.to_owned(),
                version,
            })?;
        let doc =
            weft_model::Document::from_value(&format!("{name} v{version}"), record.definition);
        let process = weft_model::validate::process(&doc).map_err(|d| Error::BadStoredProcess {
            name: name.to_owned(),
            version,
            why: d.to_string(),
        })?;
        let process = Arc::new(process);
        lock(&self.inner.processes).insert(key, process.clone());
        Ok(process)
    }

    /// The newest deployed version of a process.
    pub fn latest(&self, name: &str) -> Result<Arc<Process>> {
        let record = self
            .inner
            .store
            .latest_process(name)?
            .ok_or_else(|| Error::NoProcess(name.to_owned()))?;
        self.process(name, record.version)
    }

    /// Starts an instance of a deployed process (the newest version unless
    /// one is given) and returns once its start is durable.
    pub async fn start(
        &self,
        name: &str,
        version: Option<u32>,
        input: Value,
    ) -> Result<InstanceId> {
        if !input.is_object() {
            return Err(Error::InputNotObject);
        }
        let process = match version {
            Some(v) => self.process(name, v)?,
            None => self.latest(name)?,
        };
        let now = self.inner.clock.now();
        let id = self.inner.ids.next(now);
        let applied = interpret::start(&process, id.clone(), input, now);
        self.commit(None, applied, None).await?;
        Ok(id)
    }

    /// Picks up every unfinished piece of work in the store after a restart:
    /// each outbox command is carried out again (unless its outcome was
    /// already recorded). Returns the instances it concerned.
    pub fn resume(&self) -> Result<Vec<InstanceId>> {
        let commands = self.inner.store.outbox()?;
        let mut ids: Vec<InstanceId> = commands.iter().map(|c| instance_of(c).clone()).collect();
        ids.dedup();
        self.dispatch(commands, true);
        Ok(ids)
    }

    /// Waits until the instance is no longer running, and returns it.
    pub async fn wait(&self, id: &InstanceId) -> Result<Instance> {
        let mut rx = self.subscribe();
        loop {
            let inst = self
                .inner
                .store
                .instance(id)?
                .ok_or_else(|| Error::NoInstance(id.clone()))?;
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

    /// Waits until no invocation is in flight.
    pub async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            if self.inner.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Applies an event to an instance. Events that do not apply (late or
    /// repeated outcomes) are dropped.
    pub async fn deliver(
        &self,
        id: &InstanceId,
        event: Event,
        result: Option<StepResult>,
    ) -> Result<()> {
        let slot = self.slot(id);
        let guard = slot.lock().await;
        let dispatched: Result<Option<Vec<Command>>> = async {
            let cached = lock(&self.inner.active).remove(id);
            let inst = match cached {
                Some(i) => i,
                None => self
                    .inner
                    .store
                    .instance(id)?
                    .ok_or_else(|| Error::NoInstance(id.clone()))?,
            };
            let process = self.process(&inst.process, inst.version)?;
            let now = self.inner.clock.now();
            match interpret::apply(&process, &inst, &event, now) {
                Ok(applied) => {
                    let results = result.map(|r| vec![(event.key().to_owned(), r)]);
                    let commands = self
                        .write(Some(inst.status), applied, results.unwrap_or_default())
                        .await?;
                    Ok(Some(commands))
                }
                Err(why) => {
                    tracing::debug!(instance = %id, "dropped an event: {why}");
                    lock(&self.inner.active).insert(id.clone(), inst);
                    Ok(None)
                }
            }
        }
        .await;
        drop(guard);
        self.release(id, slot);
        if let Some(commands) = dispatched? {
            self.dispatch(commands, false);
        }
        Ok(())
    }

    async fn commit(
        &self,
        previous: Option<Status>,
        applied: Applied,
        results: Option<Vec<(String, StepResult)>>,
    ) -> Result<()> {
        let commands = self
            .write(previous, applied, results.unwrap_or_default())
            .await?;
        self.dispatch(commands, false);
        Ok(())
    }

    /// Commits what the interpreter produced, tells observers, and returns
    /// the commands to carry out. The caller holds the instance's lock (or
    /// creates the instance).
    async fn write(
        &self,
        previous: Option<Status>,
        applied: Applied,
        results: Vec<(String, StepResult)>,
    ) -> Result<Vec<Command>> {
        let id = applied.instance.id.clone();
        let status = applied.instance.status;
        let keep = (status == Status::Running && !applied.commands.is_empty())
            .then(|| applied.instance.clone());
        let notice_records =
            (self.inner.notices.receiver_count() > 0).then(|| applied.records.clone());
        let commit = Commit {
            instance: applied.instance,
            previous,
            records: applied.records,
            commands: applied.commands.clone(),
            settled: applied.settled,
            results,
        };
        self.inner
            .writer
            .commit(commit)
            .await?
            .map_err(Error::Conflict)?;
        if let Some(inst) = keep {
            lock(&self.inner.active).insert(id.clone(), inst);
        }
        if let Some(records) = notice_records {
            let _ = self.inner.notices.send(Notice {
                instance: id,
                status,
                records,
            });
        }
        Ok(applied.commands)
    }

    fn slot(&self, id: &InstanceId) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.inner.locks)
            .entry(id.clone())
            .or_default()
            .clone()
    }

    fn release(&self, id: &InstanceId, slot: Arc<tokio::sync::Mutex<()>>) {
        let mut locks = lock(&self.inner.locks);
        // Handles are only cloned under this lock: two means the map and us.
        if Arc::strong_count(&slot) == 2 {
            locks.remove(id);
        }
    }

    /// Carries out commands. `recovered` ones come from the outbox after a
    /// restart and may already have a recorded outcome; fresh ones were just
    /// committed by this engine and cannot.
    fn dispatch(&self, commands: Vec<Command>, recovered: bool) {
        for command in commands {
            match command {
                Command::Invoke(inv) => {
                    self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
                    let engine = self.clone();
                    tokio::spawn(async move {
                        engine.run_invoke(inv, recovered).await;
                        if engine.inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                            engine.inner.idle.notify_waiters();
                        }
                    });
                }
            }
        }
    }

    async fn run_invoke(&self, inv: Invoke, recovered: bool) {
        // An outcome recorded before a restart is used, never invoked again.
        let recorded = match recovered
            .then(|| self.inner.store.result(&inv.key))
            .transpose()
        {
            Ok(r) => r.flatten(),
            Err(e) => {
                tracing::error!(instance = %inv.instance, key = %inv.key, "cannot read the step's recorded result: {e}");
                return;
            }
        };
        let (event, result) = match recorded {
            Some(r) => (event_of(&inv.key, &r), None),
            None => {
                let beat: HeartbeatSink = Arc::new(|_details| {});
                let outcome = self.inner.invoker.invoke(&inv, beat).await;
                let result = match outcome {
                    StepOutcome::Done { output } => StepResult::Done { output },
                    StepOutcome::Failed { failure } => StepResult::Failed { failure },
                    StepOutcome::Pending { token } => StepResult::Failed {
                        failure: weft_model::Failure::new(
                            "adapter",
                            format!(
                                "answered pending ({token}), which this engine does not accept yet"
                            ),
                        ),
                    },
                };
                (event_of(&inv.key, &result), Some(result))
            }
        };
        if let Err(e) = self.deliver(&inv.instance, event, result).await {
            tracing::error!(instance = %inv.instance, key = %inv.key, "cannot apply the step's outcome: {e}");
        }
    }
}

fn event_of(key: &str, r: &StepResult) -> Event {
    match r {
        StepResult::Done { output } => Event::StepDone {
            key: key.to_owned(),
            output: output.clone(),
        },
        StepResult::Failed { failure } => Event::StepFailed {
            key: key.to_owned(),
            failure: failure.clone(),
        },
    }
}

fn instance_of(c: &Command) -> &InstanceId {
    match c {
        Command::Invoke(i) => &i.instance,
    }
}
