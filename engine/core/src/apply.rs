//! Applying events: one at a time per instance, through the pure
//! interpreter with the bindings of the instance's process version, then
//! one commit of everything the interpreter produced.

use std::sync::Arc;

use weft_model::interpret::{self, Applied, Rejected};
use weft_model::{
    ActionDefaults, Command, Event, Instance, InstanceId, Invoke, NoDefaults, Process, Status,
    Timer,
};
use weft_store::{Commit, Conflict, Deployment, StepResult, TokenRecord};

use crate::engine::lock;
use crate::{Engine, Error, Notice, Result};

/// Whether an event moved the instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    Applied,
    Rejected(Rejected),
    /// An operator request whose idempotency key the instance holds: it
    /// was applied before, and nothing changed now.
    Repeated,
}

/// What ran a step's attempt, stamped on the history records its outcome
/// makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ran {
    pub(crate) revision: u32,
    /// The sha256 of the component that ran it.
    pub(crate) plugin: Option<String>,
}

impl Engine {
    /// A deployed process version, validated once and cached.
    pub async fn process(&self, name: &str, version: u32) -> Result<Arc<Process>> {
        let key = (name.to_owned(), version);
        if let Some(p) = lock(&self.inner.processes).get(&key) {
            return Ok(p.clone());
        }
        let owned = name.to_owned();
        let record = self
            .read(move |s| s.process(&owned, version))
            .await?
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
    pub async fn latest(&self, name: &str) -> Result<Arc<Process>> {
        let owned = name.to_owned();
        let record = self
            .read(move |s| s.latest_process(&owned))
            .await?
            .ok_or_else(|| Error::NoProcess(name.to_owned()))?;
        self.process(name, record.version).await
    }

    /// The bindings in force for a process version (its newest revision),
    /// or `None` when none were deployed for it.
    pub async fn deployment(&self, name: &str, version: u32) -> Result<Option<Arc<Deployment>>> {
        let key = (name.to_owned(), version);
        if let Some(d) = lock(&self.inner.deployments).get(&key) {
            return Ok(Some(d.clone()));
        }
        let owned = name.to_owned();
        let Some(d) = self.read(move |s| s.deployment(&owned, version)).await? else {
            return Ok(None);
        };
        Ok(Some(self.remember_deployment(Arc::new(d))))
    }

    /// Caches a deployment unless a newer revision of its version is cached
    /// already (a read that raced a deploy); returns the one in force.
    pub(crate) fn remember_deployment(&self, d: Arc<Deployment>) -> Arc<Deployment> {
        let mut cache = lock(&self.inner.deployments);
        let entry = cache
            .entry((d.process.clone(), d.version))
            .or_insert_with(|| d.clone());
        if entry.revision < d.revision {
            *entry = d;
        }
        entry.clone()
    }

    /// Runs `f` on tokio's blocking pool: the interpreter (whose expressions
    /// may spend their whole budget, a fraction of a second) and store reads
    /// must not hold up an async worker and every instance queued behind it.
    pub(crate) async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        match tokio::task::spawn_blocking(f).await {
            Ok(t) => Ok(t),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Error::Stopped),
        }
    }

    /// Applies an event to an instance. Events that do not apply (late or
    /// repeated outcomes, stale timers) are rejected, not errors.
    pub async fn deliver(
        &self,
        id: &InstanceId,
        event: Event,
        result: Option<StepResult>,
    ) -> Result<Delivered> {
        self.deliver_ran(id, event, result, None).await
    }

    pub(crate) async fn deliver_ran(
        &self,
        id: &InstanceId,
        event: Event,
        result: Option<StepResult>,
        ran: Option<Ran>,
    ) -> Result<Delivered> {
        self.deliver_request(id, event, result, ran, None).await
    }

    /// Applies an event; with `request` (an operator request's idempotency
    /// key, scoped by its operation) applies it only if the instance has not
    /// applied that request before, and remembers it in the same commit.
    pub(crate) async fn deliver_request(
        &self,
        id: &InstanceId,
        event: Event,
        result: Option<StepResult>,
        ran: Option<Ran>,
        request: Option<String>,
    ) -> Result<Delivered> {
        let _work = self.work();
        if !self.inner.store.holds(id) {
            return Err(Error::Elsewhere(id.clone()));
        }
        let span = tracing::debug_span!(
            "transition",
            instance = %id,
            event = event_name(&event),
            key = event.key().unwrap_or_default(),
        );
        let applying = self.exclusive(id, async {
            let inst = self.take_current(id).await?;
            if request.as_ref().is_some_and(|r| inst.handled(r)) {
                self.put_back(inst);
                return Ok(Delivered::Repeated);
            }
            let prepared = async {
                let process = self.process(&inst.process, inst.version).await?;
                let deployment = self.deployment(&inst.process, inst.version).await?;
                Ok::<_, Error>((process, deployment))
            };
            let (process, deployment) = match prepared.await {
                Ok(p) => p,
                Err(e) => {
                    self.put_back(inst);
                    return Err(e);
                }
            };
            let now = self.inner.clock.now();
            let (inst, event, applied, same_data) = self
                .blocking(move || {
                    let defaults = defaults_of(deployment.as_deref());
                    let applied = interpret::apply(&process, defaults, &inst, &event, now);
                    // Most events leave the data as it was (a map's branch
                    // events always do): then it need not be written again.
                    let same = applied.as_ref().is_ok_and(|a| {
                        Arc::ptr_eq(&a.instance.data, &inst.data) || a.instance.data == inst.data
                    });
                    (inst, event, applied, same)
                })
                .await?;
            match applied {
                Ok(mut applied) => {
                    if let Some(r) = request {
                        applied.instance.remember(r);
                    }
                    // A step's outcome is recorded once the step is over;
                    // a failed attempt that will be retried records nothing.
                    let key = event.key().unwrap_or_default();
                    if let Some(ran) = ran {
                        stamp(&mut applied, key, ran);
                    }
                    let concluded = !applied.instance.has_step(key);
                    // A compensation that failed for good is tried again,
                    // under the same key, when an operator redrives or
                    // cancels with compensation: its failure is not filed
                    // as the key's outcome, or a restart would replay it
                    // instead of undoing.
                    let final_failure = matches!(result, Some(StepResult::Failed { .. }))
                        && weft_model::StepKey::is_undo(key);
                    let results = result
                        .filter(|_| concluded && !final_failure)
                        .map(|r| vec![(key.to_owned(), r)]);
                    let previous = inst.status;
                    let moved = tracing::enabled!(tracing::Level::DEBUG)
                        .then(|| (applied.instance.status, applied.instance.state.clone()));
                    match self
                        .write(Some(previous), applied, results, same_data)
                        .await
                    {
                        Ok(invokes) => {
                            if let Some((status, state)) = moved {
                                tracing::debug!(%status, %state, "committed");
                            }
                            // Registered while the instance is still
                            // locked: a cancel right after finds them.
                            self.dispatch(invokes, false);
                            Ok(Delivered::Applied)
                        }
                        Err(e) => {
                            if keeps_snapshot(&e) {
                                self.put_back(inst);
                            }
                            Err(e)
                        }
                    }
                }
                Err(why) => {
                    tracing::debug!(instance = %id, "dropped an event: {why}");
                    self.put_back(inst);
                    Ok(Delivered::Rejected(why))
                }
            }
        });
        tracing::Instrument::instrument(applying, span).await
    }

    /// Commits what the interpreter produced, tells observers, and returns
    /// the invocations to carry out. `data_unchanged` says the instance data
    /// is what the store holds (compared, never assumed). The caller holds the instance's lock
    /// (or creates the instance).
    pub(crate) async fn write(
        &self,
        previous: Option<Status>,
        mut applied: Applied,
        results: Option<Vec<(String, StepResult)>>,
        data_unchanged: bool,
    ) -> Result<Vec<Invoke>> {
        // Taken before the snapshot is cached: the next change starts with
        // none noted.
        let branches = applied
            .instance
            .fan
            .as_mut()
            .map(|f| f.take_changes())
            .unwrap_or_default();
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
        let opens_tokens = tokens.iter().any(|(_, t)| t.closed_at.is_none());

        // Kept in memory while it has work in flight; a fan's instance is
        // kept while its branches run, so a map's next event does not read
        // every slot back from the store.
        let busy = !invokes.is_empty() || applied.instance.fan.is_some();
        let keep = (status == Status::Running && busy).then(|| applied.instance.clone());
        let notice_records =
            (self.inner.notices.receiver_count() > 0).then(|| applied.records.clone());
        let settled = applied.settled.clone();
        let process = applied.instance.process.clone();
        let tally = crate::metrics::tally(&applied.records);
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
            branches,
            closed_fans: applied.closed_fans,
            data_unchanged,
        };
        self.inner
            .writer
            .commit(commit)
            .await?
            .map_err(Error::Conflict)?;
        crate::metrics::committed(&process, previous, status, tally);
        self.clear_trouble();
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
        if opens_tokens {
            self.inner.tokens_opened.notify_waiters();
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

    /// Runs `work` holding the instance's lock: changes to one instance
    /// apply strictly one after another.
    pub(crate) async fn exclusive<T>(
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
    pub(crate) async fn take_current(&self, id: &InstanceId) -> Result<Instance> {
        let cached = lock(&self.inner.active).remove(id);
        match cached {
            Some(i) => Ok(i),
            None => {
                let owned = id.clone();
                self.read(move |s| s.instance(&owned))
                    .await?
                    .ok_or_else(|| Error::NoInstance(id.clone()))
            }
        }
    }

    /// Returns an unchanged snapshot to the cache, while it still runs.
    /// Puts a snapshot taken for a change back into the cache (a running
    /// instance only).
    pub(crate) fn put_back(&self, inst: Instance) {
        if inst.status == Status::Running {
            lock(&self.inner.active).insert(inst.id.clone(), inst);
        }
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
}

/// What an event is, for logs.
fn event_name(e: &Event) -> &'static str {
    match e {
        Event::StepDone { .. } => "step_done",
        Event::StepFailed { .. } => "step_failed",
        Event::StepPending { .. } => "step_pending",
        Event::Heartbeat { .. } => "heartbeat",
        Event::Timer { .. } => "timer",
        Event::Redrive => "redrive",
        Event::Cancel { .. } => "cancel",
        Event::Signal { .. } => "signal",
    }
}

/// The retry and timeout defaults the interpreter takes from bindings.
pub(crate) fn defaults_of(deployment: Option<&Deployment>) -> &dyn ActionDefaults {
    match deployment {
        Some(d) => &d.bindings,
        None => &NoDefaults,
    }
}

/// Marks the records an outcome made with the bindings revision its attempt
/// ran with: the transition out of the step, or the failed attempt, or the
/// pending answer.
fn stamp(applied: &mut Applied, key: &str, ran: Ran) {
    use weft_model::RecordKind;
    let target = applied.records.iter_mut().find(|r| match &r.kind {
        RecordKind::Transition { key: Some(k), .. } => k == key,
        RecordKind::AttemptFailed { .. } | RecordKind::Pending { .. } => true,
        _ => false,
    });
    if let Some(r) = target {
        r.bindings = Some(ran.revision);
        r.plugin = ran.plugin;
    }
}

/// A commit that failed because the adapter's completion token is taken.
pub(crate) fn token_taken(e: &Error) -> Option<&str> {
    match e {
        Error::Conflict(Conflict::TokenTaken { token, .. }) => Some(token),
        _ => None,
    }
}

/// Whether the snapshot a failed write was computed from still matches the
/// store. A conflict wrote nothing, so it does — except one that says the
/// store moved on without this engine (another node holds the instance's
/// partition now, or its history has grown elsewhere): that snapshot is
/// stale, and the next change reads the store afresh. After any other
/// failure the store may hold more, so it is read afresh too.
pub(crate) fn keeps_snapshot(e: &Error) -> bool {
    matches!(
        e,
        Error::Conflict(c) if !matches!(
            c,
            Conflict::Fenced { .. } | Conflict::HistoryGap { .. } | Conflict::NoInstance(_)
        )
    )
}
