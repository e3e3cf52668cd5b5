//! The engine: starts instances, applies events one at a time per instance,
//! commits what the interpreter produced, then carries out the commands.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::{Notify, broadcast};
use weft_model::interpret::{self, Applied, Rejected};
use weft_model::{
    ActionDefaults, Bindings, Command, Event, Failure, Instance, InstanceId, Invoke, Millis,
    NoDefaults, Process, Record, Span, Status, StepOutcome, Timer,
};
use weft_store::{Commit, StepResult, Store, TokenRecord};

use crate::guard::Guard;
use crate::ids::IdSource;
use crate::writer::{Stats, Writer};
use crate::{Clock, Error, HeartbeatSink, Invoker, Result};

/// How long after an attempt's timeout the engine stops waiting for it,
/// leaving the runtime's own (tick-precise) deadline to answer first.
const TIMEOUT_GRACE: Span = Span(50);

/// Recovered invocations carried out at once after a restart.
const RESUME_IN_FLIGHT: usize = 256;

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
    /// Commit changes but carry nothing out: no invocations, no timers.
    /// What such an engine commits waits in the outbox and the timer table
    /// for the next active engine (`weft resume`).
    pub passive: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            notice_buffer: 4096,
            passive: false,
        }
    }
}

/// What `start_keyed` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub id: InstanceId,
    /// An instance with the business key already existed; nothing started.
    pub existing: bool,
}

/// Whether an event moved the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    Applied,
    Rejected(Rejected),
}

/// How an outside party completes a pending step.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    Done(Value),
    Failed(Failure),
}

#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    invoker: Arc<dyn Invoker>,
    pub(crate) clock: Arc<dyn Clock>,
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
    /// Invocations in flight, by step key, so a step that is abandoned (its
    /// deadline passed, the instance was cancelled) can stop its invocation.
    running: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    guards: Mutex<HashMap<(String, String), Arc<Guard>>>,
    /// Tasks doing work right now (not waiting on the clock); `settle` waits
    /// for none.
    working: AtomicUsize,
    pub(crate) timer_wake: Notify,
    pub(crate) firing: Mutex<HashSet<Timer>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    passive: bool,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts a task as working while alive.
pub(crate) struct Work(Arc<Inner>);

impl Drop for Work {
    fn drop(&mut self) {
        self.0.working.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Engine {
    /// Builds an engine and starts its timer service. Must be called inside
    /// a tokio runtime.
    pub fn new(
        store: Arc<dyn Store>,
        invoker: Arc<dyn Invoker>,
        clock: Arc<dyn Clock>,
        options: EngineOptions,
    ) -> Engine {
        let writer = Writer::start(store.clone());
        let (notices, _) = broadcast::channel(options.notice_buffer.max(16));
        let engine = Engine {
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
                running: Mutex::new(HashMap::new()),
                guards: Mutex::new(HashMap::new()),
                working: AtomicUsize::new(0),
                timer_wake: Notify::new(),
                firing: Mutex::new(HashSet::new()),
                tasks: Mutex::new(Vec::new()),
                passive: options.passive,
            }),
        };
        if !options.passive {
            let timers = engine.clone();
            engine.spawn(async move { timers.run_timers().await });
        }
        engine
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

    /// Stops every task of this engine, as a crash would, then waits until
    /// the commits it had already handed to its writer have landed (as those
    /// flushed before a crash would have). Simulations use it to reboot onto
    /// the same store.
    pub async fn shutdown(&self) {
        for t in lock(&self.inner.tasks).drain(..) {
            t.abort();
        }
        for (_, t) in lock(&self.inner.running).drain() {
            t.abort();
        }
        for _ in 0..1_000_000 {
            tokio::task::yield_now().await;
            if self.inner.writer.stats().queued.load(Ordering::SeqCst) == 0 {
                return;
            }
        }
        panic!("the writer did not drain");
    }

    pub(crate) fn work(&self) -> Work {
        self.inner.working.fetch_add(1, Ordering::SeqCst);
        Work(self.inner.clone())
    }

    /// Runs `f` (a wait on the clock or on the outside world) without
    /// counting as working. Abort-safe: the count is restored on drop.
    pub(crate) async fn doze<F: std::future::Future>(&self, f: F) -> F::Output {
        struct Dozing(Arc<Inner>);
        impl Drop for Dozing {
            fn drop(&mut self) {
                self.0.working.fetch_add(1, Ordering::SeqCst);
            }
        }
        self.inner.working.fetch_sub(1, Ordering::SeqCst);
        let _back = Dozing(self.inner.clone());
        f.await
    }

    pub(crate) fn spawn<F>(&self, f: F) -> tokio::task::AbortHandle
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let work = self.work();
        let handle = tokio::spawn(async move {
            let _work = work;
            f.await;
        })
        .abort_handle();
        let mut tasks = lock(&self.inner.tasks);
        // Sweep finished handles only when the list would grow: amortized
        // O(1) per spawn, however many tasks run (a resume dispatches one
        // per unfinished step).
        if tasks.len() == tasks.capacity() {
            tasks.retain(|t| !t.is_finished());
            let len = tasks.len();
            tasks.reserve(len.max(16));
        }
        tasks.push(handle.clone());
        handle
    }

    /// Waits until the engine has nothing to do but wait for the clock or
    /// the outside world (for tests on a simulated clock).
    pub async fn settle(&self) {
        let mut quiet = 0;
        for _ in 0..1_000_000 {
            let now = self.inner.clock.now();
            let due = matches!(self.inner.store.next_timer(), Ok(Some(at)) if at <= now);
            if self.inner.working.load(Ordering::SeqCst) == 0 && !due {
                quiet += 1;
                if quiet > 30 {
                    return;
                }
            } else {
                quiet = 0;
            }
            tokio::task::yield_now().await;
        }
        panic!("the engine did not settle");
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

    fn bindings(&self, process: &str) -> Option<Arc<Bindings>> {
        self.inner.invoker.bindings(process)
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
            && let Some(id) = self.inner.store.by_key(name, k)?
        {
            return Ok(Started { id, existing: true });
        }
        if !input.is_object() {
            return Err(Error::InputNotObject);
        }
        let _work = self.work();
        let process = match version {
            Some(v) => self.process(name, v)?,
            None => self.latest(name)?,
        };
        let now = self.inner.clock.now();
        let id = self.inner.ids.next(now);
        let bindings = self.bindings(name);
        let defaults: &dyn ActionDefaults = match &bindings {
            Some(b) => b.as_ref(),
            None => &NoDefaults,
        };
        let mut applied = interpret::start(&process, defaults, id.clone(), input, now);
        applied.instance.key = key;
        match self.write(None, applied, None).await {
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

    /// The instance of `process` started with a business key.
    pub fn by_key(&self, process: &str, key: &str) -> Result<Option<InstanceId>> {
        Ok(self.inner.store.by_key(process, key)?)
    }

    /// Delivers an external event to a waiting instance. Refused, with the
    /// events the instance does accept, when its state does not accept it.
    pub async fn signal(&self, id: &InstanceId, name: &str, data: Value) -> Result<()> {
        let event = Event::Signal {
            name: name.to_owned(),
            data,
        };
        match self.deliver(id, event, None).await? {
            Delivered::Applied => Ok(()),
            Delivered::Rejected(why) => Err(Error::Refused(id.clone(), why.to_string())),
        }
    }

    /// Moves an instance to another deployed version of its process, or
    /// refuses when its state or data does not fit that version.
    pub async fn migrate(&self, id: &InstanceId, version: u32) -> Result<()> {
        let _work = self.work();
        self.exclusive(id, async {
            let inst = self.take_current(id)?;
            let applied = self.process(&inst.process, version).and_then(|to| {
                interpret::migrate(&to, &inst, self.inner.clock.now())
                    .map_err(|why| Error::Refused(id.clone(), why))
            });
            match applied {
                Ok(applied) => self.write(Some(inst.status), applied, None).await.map(drop),
                Err(e) => {
                    self.put_back(inst);
                    Err(e)
                }
            }
        })
        .await
    }

    /// Runs `work` holding the instance's lock: changes to one instance
    /// apply strictly one after another.
    async fn exclusive<T>(
        &self,
        id: &InstanceId,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let slot = self.slot(id);
        let guard = slot.lock().await;
        let outcome = work.await;
        drop(guard);
        self.release(id, slot);
        outcome
    }

    /// The instance's latest snapshot, taken out of the in-flight cache (or
    /// read from the store). The caller writes a new one or puts it back.
    fn take_current(&self, id: &InstanceId) -> Result<Instance> {
        let cached = lock(&self.inner.active).remove(id);
        match cached {
            Some(i) => Ok(i),
            None => self
                .inner
                .store
                .instance(id)?
                .ok_or_else(|| Error::NoInstance(id.clone())),
        }
    }

    /// Returns an unchanged snapshot to the cache, while it still runs.
    fn put_back(&self, inst: Instance) {
        if inst.status == Status::Running {
            lock(&self.inner.active).insert(inst.id.clone(), inst);
        }
    }

    /// Picks up every unfinished piece of work in the store after a restart:
    /// each outbox invocation is carried out again (unless its outcome was
    /// already recorded); stored timers fire when due. Returns the instances
    /// with invocations to carry out.
    pub fn resume(&self) -> Result<Vec<InstanceId>> {
        let invokes = self.inner.store.outbox()?;
        let mut ids: Vec<InstanceId> = invokes.iter().map(|i| i.instance.clone()).collect();
        ids.sort();
        ids.dedup();
        self.dispatch_recovered(invokes);
        self.inner.timer_wake.notify_one();
        Ok(ids)
    }

    /// Carries out recovered invocations, at most `RESUME_IN_FLIGHT` at a
    /// time: with a hundred thousand of them, the first step completes (and
    /// commits) right away instead of after every invocation has started.
    fn dispatch_recovered(&self, invokes: Vec<Invoke>) {
        if self.inner.passive || invokes.is_empty() {
            return;
        }
        let engine = self.clone();
        self.spawn(async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(RESUME_IN_FLIGHT));
            for inv in invokes {
                let Ok(permit) = engine.doze(permits.clone().acquire_owned()).await else {
                    return;
                };
                let runner = engine.clone();
                let key = inv.key.clone();
                let mut running = lock(&engine.inner.running);
                let task = engine.spawn(async move {
                    let _permit = permit;
                    runner.run_invoke(inv, true).await;
                });
                running.insert(key, task);
            }
        });
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

    // ---- operators ----------------------------------------------------------------

    /// Completes a step that waits on `token`. A token completes once.
    pub async fn complete(&self, token: &str, completion: Completion) -> Result<InstanceId> {
        let record = self.token(token)?;
        let event = match completion {
            Completion::Done(output) => Event::StepDone {
                key: record.key.clone(),
                output,
            },
            Completion::Failed(failure) => Event::StepFailed {
                key: record.key.clone(),
                failure,
                heartbeat: None,
            },
        };
        match self.deliver(&record.instance, event, None).await? {
            Delivered::Applied => Ok(record.instance),
            Delivered::Rejected(_) => Err(Error::TokenUsed(token.to_owned())),
        }
    }

    /// Reports progress of a step that waits on `token`.
    pub async fn heartbeat(&self, token: &str, details: String) -> Result<InstanceId> {
        let record = self.token(token)?;
        let event = Event::Heartbeat {
            key: record.key.clone(),
            details,
        };
        match self.deliver(&record.instance, event, None).await? {
            Delivered::Applied => Ok(record.instance),
            Delivered::Rejected(_) => Err(Error::TokenUsed(token.to_owned())),
        }
    }

    fn token(&self, token: &str) -> Result<TokenRecord> {
        let record = self
            .inner
            .store
            .token(token)?
            .ok_or_else(|| Error::NoToken(token.to_owned()))?;
        if record.closed_at.is_some() {
            return Err(Error::TokenUsed(token.to_owned()));
        }
        Ok(record)
    }

    /// Retries a parked instance from the step it stopped at.
    pub async fn redrive(&self, id: &InstanceId) -> Result<()> {
        match self.deliver(id, Event::Redrive, None).await? {
            Delivered::Applied => Ok(()),
            Delivered::Rejected(why) => Err(Error::Refused(id.clone(), why.to_string())),
        }
    }

    /// Ends an instance, undoing its completed steps first when asked.
    pub async fn cancel(&self, id: &InstanceId, compensate: bool) -> Result<()> {
        match self.deliver(id, Event::Cancel { compensate }, None).await? {
            Delivered::Applied => Ok(()),
            Delivered::Rejected(why) => Err(Error::Refused(id.clone(), why.to_string())),
        }
    }

    // ---- applying events --------------------------------------------------------------

    /// Applies an event to an instance. Events that do not apply (late or
    /// repeated outcomes, stale timers) are rejected, not errors.
    pub async fn deliver(
        &self,
        id: &InstanceId,
        event: Event,
        result: Option<StepResult>,
    ) -> Result<Delivered> {
        let _work = self.work();
        let outcome = self
            .exclusive(id, async {
                let inst = self.take_current(id)?;
                let process = self.process(&inst.process, inst.version)?;
                let bindings = self.bindings(&inst.process);
                let defaults: &dyn ActionDefaults = match &bindings {
                    Some(b) => b.as_ref(),
                    None => &NoDefaults,
                };
                let now = self.inner.clock.now();
                match interpret::apply(&process, defaults, &inst, &event, now) {
                    Ok(applied) => {
                        // A step's outcome is recorded once the step is over;
                        // a failed attempt that will be retried records nothing.
                        let key = event.key().unwrap_or_default();
                        let concluded = !applied.instance.has_step(key);
                        let results = result
                            .filter(|_| concluded)
                            .map(|r| vec![(key.to_owned(), r)]);
                        let invokes = self.write(Some(inst.status), applied, results).await?;
                        Ok((Delivered::Applied, invokes))
                    }
                    Err(why) => {
                        tracing::debug!(instance = %id, "dropped an event: {why}");
                        self.put_back(inst);
                        Ok((Delivered::Rejected(why), Vec::new()))
                    }
                }
            })
            .await;
        let (delivered, invokes) = outcome?;
        self.dispatch(invokes, false);
        Ok(delivered)
    }

    /// Commits what the interpreter produced, tells observers, and returns
    /// the invocations to carry out. The caller holds the instance's lock
    /// (or creates the instance).
    async fn write(
        &self,
        previous: Option<Status>,
        applied: Applied,
        results: Option<Vec<(String, StepResult)>>,
    ) -> Result<Vec<Invoke>> {
        let id = applied.instance.id.clone();
        let status = applied.instance.status;
        let now = self.inner.clock.now();
        let mut invokes = Vec::new();
        let mut armed = Vec::new();
        let mut cancelled = Vec::new();
        let mut tokens = Vec::new();
        for c in applied.commands {
            match c {
                Command::Invoke(i) => invokes.push(i),
                Command::ArmTimer(t) => armed.push(t),
                Command::CancelTimer(t) => cancelled.push(t),
                Command::OpenToken { token, key } => tokens.push((
                    token,
                    TokenRecord {
                        instance: id.clone(),
                        key,
                        opened_at: now,
                        closed_at: None,
                    },
                )),
                Command::CloseToken { token, key } => tokens.push((
                    token,
                    TokenRecord {
                        instance: id.clone(),
                        key,
                        opened_at: now,
                        closed_at: Some(now),
                    },
                )),
            }
        }
        // A timer armed and cancelled by the same change never existed.
        let both: Vec<Timer> = armed
            .iter()
            .filter(|t| cancelled.contains(t))
            .cloned()
            .collect();
        armed.retain(|t| !both.contains(t));
        cancelled.retain(|t| !both.contains(t));
        let wake_timers = !armed.is_empty();

        let keep =
            (status == Status::Running && !invokes.is_empty()).then(|| applied.instance.clone());
        let notice_records =
            (self.inner.notices.receiver_count() > 0).then(|| applied.records.clone());
        let settled = applied.settled.clone();
        let commit = Commit {
            instance: applied.instance,
            previous,
            records: applied.records,
            outbox: invokes.clone(),
            settled: applied.settled,
            results: results.unwrap_or_default(),
            timers_armed: armed,
            timers_cancelled: cancelled,
            tokens,
        };
        self.inner
            .writer
            .commit(commit)
            .await?
            .map_err(Error::Conflict)?;
        if let Some(inst) = keep {
            lock(&self.inner.active).insert(id.clone(), inst);
        }
        // Invocations of steps this change abandoned are no longer wanted.
        {
            let mut running = lock(&self.inner.running);
            for key in &settled {
                if let Some(task) = running.remove(key) {
                    task.abort();
                }
            }
        }
        if wake_timers {
            self.inner.timer_wake.notify_one();
        }
        if let Some(records) = notice_records {
            let _ = self.inner.notices.send(Notice {
                instance: id,
                status,
                records,
            });
        }
        Ok(invokes)
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

    // ---- carrying out invocations -------------------------------------------------------

    /// Carries out invocations. `recovered` ones come from the outbox after a
    /// restart and may already have a recorded outcome; fresh ones were just
    /// committed by this engine and cannot.
    fn dispatch(&self, invokes: Vec<Invoke>, recovered: bool) {
        if self.inner.passive {
            return;
        }
        for inv in invokes {
            let engine = self.clone();
            let key = inv.key.clone();
            let mut running = lock(&self.inner.running);
            let task = self.spawn(async move { engine.run_invoke(inv, recovered).await });
            running.insert(key, task);
        }
    }

    fn guard(&self, inv: &Invoke) -> Option<Arc<Guard>> {
        let limits = self
            .bindings(&inv.process)?
            .actions
            .get(&inv.action)?
            .limits
            .clone();
        if limits == Default::default() {
            return None;
        }
        let mut guards = lock(&self.inner.guards);
        let key = (inv.process.clone(), inv.action.clone());
        match guards.get(&key) {
            Some(g) if *g.limits() == limits => Some(g.clone()),
            _ => {
                let g = Guard::new(limits);
                guards.insert(key, g.clone());
                Some(g)
            }
        }
    }

    async fn run_invoke(&self, inv: Invoke, recovered: bool) {
        // An outcome recorded before a restart is used, never invoked again.
        let recorded = if recovered {
            match self.inner.store.result(&inv.key) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(instance = %inv.instance, key = %inv.key, "cannot read the step's recorded result: {e}");
                    return;
                }
            }
        } else {
            None
        };
        let (event, result) = match recorded {
            Some(r) => (event_of(&inv.key, &r, None), None),
            None => {
                let (outcome, heartbeat) = self.call(&inv).await;
                match outcome {
                    StepOutcome::Pending { token } => match self.inner.store.token(&token) {
                        Ok(None) => (
                            Event::StepPending {
                                key: inv.key.clone(),
                                token,
                            },
                            None,
                        ),
                        Ok(Some(_)) => {
                            let failure = Failure::new(
                                "adapter",
                                format!(
                                    "answered pending with token '{token}', which is already in use"
                                ),
                            );
                            let r = StepResult::Failed { failure };
                            (event_of(&inv.key, &r, None), Some(r))
                        }
                        Err(e) => {
                            tracing::error!(key = %inv.key, "cannot check the completion token: {e}");
                            return;
                        }
                    },
                    StepOutcome::Done { output } => {
                        let r = StepResult::Done { output };
                        (event_of(&inv.key, &r, None), Some(r))
                    }
                    StepOutcome::Failed { failure } => {
                        let r = StepResult::Failed { failure };
                        (event_of(&inv.key, &r, heartbeat), Some(r))
                    }
                }
            }
        };
        lock(&self.inner.running).remove(&inv.key);
        if let Err(e) = self.deliver(&inv.instance, event, result).await {
            tracing::error!(instance = %inv.instance, key = %inv.key, "cannot apply the step's outcome: {e}");
        }
    }

    /// Invokes once: waits for the binding's guard, runs the call under the
    /// heartbeat watchdog, and reports the outcome and the last heartbeat.
    async fn call(&self, inv: &Invoke) -> (StepOutcome, Option<String>) {
        let clock = self.inner.clock.clone();
        let pass = match self.guard(inv) {
            Some(g) => Some(self.doze(g.enter(clock.as_ref())).await),
            None => None,
        };
        let beat = Arc::new(Mutex::new((clock.now(), None::<String>)));
        let sink: HeartbeatSink = {
            let (beat, clock) = (beat.clone(), clock.clone());
            Arc::new(move |details| {
                *lock(&beat) = (clock.now(), Some(details));
            })
        };
        let call = self.inner.invoker.invoke(inv, sink);
        // The runtime stops a guest at its timeout (an epoch deadline); the
        // engine also bounds the attempt on its own clock, a little later, so
        // no invoker can hold a step forever.
        let started = clock.now();
        let call = async {
            match inv.timeout {
                None => call.await,
                Some(t) => {
                    let backstop = started.plus(t).plus(TIMEOUT_GRACE);
                    tokio::select! {
                        outcome = call => outcome,
                        () = clock.sleep_until(backstop) => StepOutcome::Failed {
                            failure: Failure::new("timeout", format!("did not finish within {t}")),
                        },
                    }
                }
            }
        };
        let outcome = match inv.heartbeat {
            None => self.doze(call).await,
            Some(every) => {
                let watchdog = async {
                    loop {
                        let due = lock(&beat).0.plus(every);
                        clock.sleep_until(due).await;
                        if clock.now() >= lock(&beat).0.plus(every) {
                            return;
                        }
                    }
                };
                self.doze(async {
                    tokio::select! {
                        outcome = call => outcome,
                        () = watchdog => StepOutcome::Failed {
                            failure: Failure::new("heartbeat", format!("no heartbeat for {every}")),
                        },
                    }
                })
                .await
            }
        };
        let last = lock(&beat).1.clone();
        if let Some(pass) = pass {
            let kind = match &outcome {
                StepOutcome::Failed { failure } => Some(failure.kind.as_str()),
                _ => None,
            };
            pass.finish(Some(kind), clock.now());
        }
        (outcome, last)
    }

    // ---- durable timers ---------------------------------------------------------------------

    /// Fires stored timers when due. Finds the next one from the first key of
    /// the timers table; sleeps until then or until a new timer is armed.
    async fn run_timers(&self) {
        loop {
            let next = match self.inner.store.next_timer() {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!("cannot read timers: {e}");
                    None
                }
            };
            let now = self.inner.clock.now();
            match next {
                Some(at) if at <= now => self.fire_due(now),
                Some(at) => {
                    let wake = self.inner.timer_wake.notified();
                    let clock = self.inner.clock.clone();
                    self.doze(async {
                        tokio::select! {
                            () = clock.sleep_until(at) => {}
                            () = wake => {}
                        }
                    })
                    .await;
                    continue;
                }
                None => {
                    self.doze(self.inner.timer_wake.notified()).await;
                    continue;
                }
            }
            // Some are firing; each says when it is done.
            self.doze(self.inner.timer_wake.notified()).await;
        }
    }

    fn fire_due(&self, now: Millis) {
        let due = match self.inner.store.due_timers(now, 512) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("cannot read due timers: {e}");
                return;
            }
        };
        for timer in due {
            if !lock(&self.inner.firing).insert(timer.clone()) {
                continue; // already on its way
            }
            let engine = self.clone();
            self.spawn(async move {
                let event = Event::Timer {
                    kind: timer.kind,
                    key: timer.key.clone(),
                    at: timer.at,
                };
                match engine.deliver(&timer.instance, event, None).await {
                    Ok(Delivered::Applied) => {}
                    Ok(Delivered::Rejected(_)) | Err(Error::NoInstance(_)) => {
                        // Its instance moved on: the timer is spent.
                        if let Err(e) = engine.inner.store.remove_timer(&timer) {
                            tracing::error!("cannot remove a spent timer: {e}");
                        }
                    }
                    Err(e) => tracing::error!(instance = %timer.instance, "timer failed: {e}"),
                }
                lock(&engine.inner.firing).remove(&timer);
                engine.inner.timer_wake.notify_one();
            });
        }
    }
}

fn event_of(key: &str, r: &StepResult, heartbeat: Option<String>) -> Event {
    match r {
        StepResult::Done { output } => Event::StepDone {
            key: key.to_owned(),
            output: output.clone(),
        },
        StepResult::Failed { failure } => Event::StepFailed {
            key: key.to_owned(),
            failure: failure.clone(),
            heartbeat,
        },
    }
}
