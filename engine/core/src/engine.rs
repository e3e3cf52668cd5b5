//! The engine's state and lifecycle: what it holds in memory, how its tasks
//! are spawned and counted, how it stops. Applying events is `apply`,
//! carrying out invocations `dispatch`, timers `timers`, the operations
//! users call `operate`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, broadcast, watch};
use weft_model::{Instance, InstanceId, Process, Record, Span, Status, Timer};
use weft_store::{Deployment, Store};

use crate::guard::Guard;
use crate::ids::IdSource;
use crate::writer::{Stats, Writer};
use crate::{Clock, Invoker, Result};

/// How long a stop waits for the writer to land what it was handed.
const DRAIN_PATIENCE: Span = Span(10_000);

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
    /// What such an engine commits (with the bindings of each instance's
    /// version, read from the store like any engine's) waits in the outbox
    /// and the timer table for the next engine that runs.
    pub offline: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            notice_buffer: 4096,
            offline: false,
        }
    }
}

#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) invoker: Arc<dyn Invoker>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) writer: Writer,
    pub(crate) processes: Mutex<HashMap<(String, u32), Arc<Process>>>,
    /// The newest bindings revision of each process version seen so far;
    /// a deploy through this engine replaces its entry, and a read never
    /// replaces a newer revision with an older one.
    pub(crate) deployments: Mutex<HashMap<(String, u32), Arc<Deployment>>>,
    /// Deployment revisions whose plugins the invoker has made ready.
    pub(crate) prepared: Mutex<HashSet<(String, u32, u32)>>,
    /// One prepare at a time: loading a plugin twice at once is waste.
    pub(crate) preparing: tokio::sync::Mutex<()>,
    /// Woken by every deploy, so queued work for it moves at once.
    pub(crate) deployed: Notify,
    /// Swaps, rollbacks and canary decisions, one at a time.
    pub(crate) swapping: tokio::sync::Mutex<()>,
    /// The running tally of each canary in force, by target and the
    /// component on trial.
    pub(crate) trials: Mutex<HashMap<(weft_store::Target, String), crate::swap::Trial>>,
    /// One lock per instance with an event in progress: events for one
    /// instance apply strictly one after another.
    pub(crate) locks: Mutex<HashMap<InstanceId, Arc<tokio::sync::Mutex<()>>>>,
    /// Latest snapshots of instances with an invocation in flight, so the
    /// outcome need not read and decode them again. Only touched under the
    /// instance's lock; dropped when the instance stops running, so idle
    /// instances cost no memory.
    pub(crate) active: Mutex<HashMap<InstanceId, Instance>>,
    pub(crate) notices: broadcast::Sender<Notice>,
    /// The store's latest failure while the engine works on its own
    /// (`None` once a later write succeeded), for callers that wait.
    pub(crate) trouble: watch::Sender<Option<String>>,
    pub(crate) ids: IdSource,
    /// Invocations in flight, by step key, so a step that is abandoned (its
    /// deadline passed, the instance was cancelled) can stop its invocation.
    pub(crate) running: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    /// Woken when a commit opens completion tokens: a completion that came
    /// before its token was committed waits for it.
    pub(crate) tokens_opened: Notify,
    /// Invocations between dispatch and the commit of their outcome.
    pub(crate) invoking: AtomicUsize,
    pub(crate) guards: Mutex<HashMap<(String, u32, String), Arc<Guard>>>,
    /// Tasks doing work right now (not waiting on the clock); `settle` waits
    /// for none.
    working: AtomicUsize,
    pub(crate) timer_wake: Notify,
    pub(crate) firing: Mutex<HashSet<Timer>>,
    /// Timers whose delivery failed: when to try each again, and its backoff.
    pub(crate) timer_retry: Mutex<HashMap<Timer, (weft_model::Millis, crate::backoff::Backoff)>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    pub(crate) offline: bool,
    /// Set by `drain`: no invocation starts any more; new ones stay in
    /// the outbox for the next start.
    pub(crate) draining: std::sync::atomic::AtomicBool,
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
                deployments: Mutex::new(HashMap::new()),
                prepared: Mutex::new(HashSet::new()),
                preparing: tokio::sync::Mutex::new(()),
                deployed: Notify::new(),
                swapping: tokio::sync::Mutex::new(()),
                trials: Mutex::new(HashMap::new()),
                locks: Mutex::new(HashMap::new()),
                active: Mutex::new(HashMap::new()),
                notices,
                trouble: watch::Sender::new(None),
                ids: IdSource::default(),
                running: Mutex::new(HashMap::new()),
                tokens_opened: Notify::new(),
                invoking: AtomicUsize::new(0),
                guards: Mutex::new(HashMap::new()),
                working: AtomicUsize::new(0),
                timer_wake: Notify::new(),
                firing: Mutex::new(HashSet::new()),
                timer_retry: Mutex::new(HashMap::new()),
                tasks: Mutex::new(Vec::new()),
                offline: options.offline,
                draining: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        if !options.offline {
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

    /// The store's latest failure while the engine carried out work on its
    /// own (an outcome it could not commit, a timer it could not fire):
    /// `Some` until a later commit succeeds. The work is retried meanwhile.
    pub fn trouble(&self) -> watch::Receiver<Option<String>> {
        self.inner.trouble.subscribe()
    }

    pub(crate) fn report_trouble(&self, what: String) {
        tracing::error!("{what}");
        self.inner.trouble.send_replace(Some(what));
    }

    pub(crate) fn clear_trouble(&self) {
        if self.inner.trouble.borrow().is_some() {
            self.inner.trouble.send_replace(None);
        }
    }

    /// Stops starting invocations (those the engine would start next stay
    /// in the outbox, durable, for the next start) and waits up to `grace`
    /// for the ones under way to finish and their outcomes to commit, so a
    /// planned stop re-runs nothing. Returns how many were still under way.
    pub async fn drain(&self, grace: Span) -> usize {
        self.inner.draining.store(true, Ordering::SeqCst);
        let clock = self.inner.clock.clone();
        let until = clock.now().plus(grace);
        loop {
            let left = self.inner.invoking.load(Ordering::SeqCst);
            if left == 0 || clock.now() >= until {
                return left;
            }
            clock
                .sleep_until(clock.now().plus(Span::from_millis(20)))
                .await;
        }
    }

    /// Stops every task of this engine, as a crash would, then waits until
    /// the commits it had already handed to its writer have landed (as those
    /// flushed before a crash would have). A writer that takes longer than
    /// ten seconds is reported, not waited for.
    pub async fn shutdown(&self) {
        for t in lock(&self.inner.tasks).drain(..) {
            t.abort();
        }
        for (_, t) in lock(&self.inner.running).drain() {
            t.abort();
        }
        let clock = self.inner.clock.clone();
        let until = clock.now().plus(DRAIN_PATIENCE);
        tokio::select! {
            drained = self.inner.writer.drained() => {
                if let Err(e) = drained {
                    tracing::error!("stopping: {e}");
                }
            }
            () = clock.sleep_until(until) => {
                tracing::error!(
                    "stopping: the writer did not land its queued commits within {DRAIN_PATIENCE}; \
                     what it did not write is carried out again on the next start"
                );
            }
        }
    }

    /// Stops the engine and returns once it holds nothing of the store any
    /// more — its tasks dropped, its writer thread ended — so the store can
    /// be closed and opened again (a reboot in the same process).
    pub async fn close(self) {
        self.shutdown().await;
        let ended = self.inner.writer.ended();
        let inner = Arc::downgrade(&self.inner);
        drop(self);
        // Aborted tasks drop their handles when the runtime next gets to
        // them; the writer's channel closes with the last one.
        for _ in 0..100_000 {
            if inner.strong_count() == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        if inner.strong_count() != 0 {
            tracing::error!("closing: engine tasks still hold the store");
            return;
        }
        if let Some(ended) = ended {
            let _ = ended.await;
        }
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

    /// Sleeps `pause` on the engine's clock, not counting as working.
    pub(crate) async fn pause(&self, pause: Span) {
        let clock = self.inner.clock.clone();
        let until = clock.now().plus(pause);
        self.doze(clock.sleep_until(until)).await;
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

    /// Runs a blocking store read on tokio's blocking pool, never on an
    /// async worker thread.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> weft_store::Result<T> + Send + 'static,
    {
        let store = self.inner.store.clone();
        Ok(self.blocking(move || f(&*store)).await??)
    }

    /// Waits until the engine has nothing to do but wait for the clock or
    /// the outside world (for tests on a simulated clock).
    pub async fn settle(&self) {
        let mut quiet = 0;
        for _ in 0..1_000_000 {
            let now = self.inner.clock.now();
            let due = self.has_due_timer(now);
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
}
