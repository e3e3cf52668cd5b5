//! Carrying out invocations: with the bindings deployed for the instance's
//! process version (waiting, never failing, while there are none or their
//! plugins cannot be loaded), behind the binding's guard, bounded by the
//! attempt timeout and the heartbeat watchdog; then the outcome goes back in
//! as an event, retried with backoff while the store cannot take it.

use std::sync::{Arc, Mutex};

use weft_model::{Event, Failure, Invoke, Span, StepOutcome};
use weft_store::{Deployment, StepResult};

use crate::apply::{Ran, token_taken};
use crate::backoff::Backoff;
use crate::engine::lock;
use crate::guard::Guard;
use crate::{Engine, Error, HeartbeatSink};

/// How long after an attempt's timeout the engine stops waiting for it,
/// leaving the runtime's own (tick-precise) deadline to answer first.
const TIMEOUT_GRACE: Span = Span(50);

/// Recovered invocations carried out at once after a restart.
const RESUME_IN_FLIGHT: usize = 256;

impl Engine {
    /// Carries out invocations. `recovered` ones come from the outbox after a
    /// restart and may already have a recorded outcome; fresh ones were just
    /// committed by this engine and cannot.
    pub(crate) fn dispatch(&self, invokes: Vec<Invoke>, recovered: bool) {
        if self.inner.offline || self.draining() {
            return;
        }
        for inv in invokes {
            let engine = self.clone();
            let key = inv.key.clone();
            let mut running = lock(&self.inner.running);
            let task = self.spawn(async move { engine.run_invoke_traced(inv, recovered).await });
            running.insert(key, task);
        }
    }

    /// Carries out recovered invocations, at most `RESUME_IN_FLIGHT` at a
    /// time: with a hundred thousand of them, the first step completes (and
    /// commits) right away instead of after every invocation has started.
    pub(crate) fn dispatch_recovered(&self, invokes: Vec<Invoke>) {
        if self.inner.offline || invokes.is_empty() {
            return;
        }
        let engine = self.clone();
        self.spawn(async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(RESUME_IN_FLIGHT));
            for inv in invokes {
                let Ok(permit) = engine.doze(permits.clone().acquire_owned()).await else {
                    return;
                };
                if engine.draining() {
                    return;
                }
                let runner = engine.clone();
                let key = inv.key.clone();
                let mut running = lock(&engine.inner.running);
                let task = engine.spawn(async move {
                    let _permit = permit;
                    runner.run_invoke_traced(inv, true).await;
                });
                running.insert(key, task);
            }
        });
    }

    fn draining(&self) -> bool {
        self.inner
            .draining
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn guard(&self, deployment: &Deployment, inv: &Invoke) -> Option<Arc<Guard>> {
        let limits = deployment.bindings.actions.get(&inv.action)?.limits.clone();
        if limits == Default::default() {
            return None;
        }
        let mut guards = lock(&self.inner.guards);
        // Per version: two versions' bindings may limit the same action
        // differently, and each must keep its own breaker and slots.
        let key = (inv.process.clone(), inv.version, inv.action.clone());
        match guards.get(&key) {
            Some(g) if *g.limits() == limits => Some(g.clone()),
            _ => {
                let g = Guard::new(limits);
                guards.insert(key, g.clone());
                Some(g)
            }
        }
    }

    /// The deployment an invocation runs with, its plugins made ready.
    /// Waits (with backoff, or until the next deploy) while the instance's
    /// process version has no bindings or its plugins cannot be loaded: the
    /// invocation stays in the outbox meanwhile, and nothing is failed.
    async fn ready_deployment(&self, inv: &Invoke) -> Arc<Deployment> {
        let mut backoff = Backoff::new();
        loop {
            // Registered before the read: a deploy that lands after it
            // still wakes this wait.
            let deployed = self.inner.deployed.notified();
            tokio::pin!(deployed);
            deployed.as_mut().enable();
            let problem = match self.deployment(&inv.process, inv.version).await {
                Ok(Some(d)) => match self.prepare(&d).await {
                    Ok(()) => return d,
                    Err(why) => format!(
                        "cannot load the plugins of process '{}' v{} (bindings revision {}): {why}",
                        inv.process, inv.version, d.revision
                    ),
                },
                Ok(None) => format!(
                    "no bindings are deployed for process '{}' v{}: step {} waits for a deploy",
                    inv.process, inv.version, inv.key
                ),
                Err(e) => format!("cannot read the bindings for step {}: {e}", inv.key),
            };
            tracing::warn!(instance = %inv.instance, "{problem}");
            let until = self.inner.clock.now().plus(backoff.pause());
            let clock = self.inner.clock.clone();
            self.doze(async {
                tokio::select! {
                    () = clock.sleep_until(until) => {}
                    () = deployed => {}
                }
            })
            .await;
        }
    }

    pub(crate) async fn prepare(&self, d: &Deployment) -> Result<(), String> {
        let key = (d.process.clone(), d.version, d.revision);
        if lock(&self.inner.prepared).contains(&key) {
            return Ok(());
        }
        let _one = self.doze(self.inner.preparing.lock()).await;
        if lock(&self.inner.prepared).contains(&key) {
            return Ok(());
        }
        self.inner.invoker.prepare(d, &*self.inner.store).await?;
        lock(&self.inner.prepared).insert(key);
        Ok(())
    }

    /// Whether the step is still wanted: its outbox entry exists. Checked by
    /// recovered invocations, which may have waited for a slot while the
    /// step was cancelled or abandoned. (A fresh one is registered in
    /// `running` before it starts, so a settle aborts it.)
    async fn still_wanted(&self, inv: &Invoke) -> crate::Result<bool> {
        let (id, key) = (inv.instance.clone(), inv.key.clone());
        self.read(move |s| Ok(s.outbox_of(&id)?.iter().any(|i| i.key == key)))
            .await
    }

    /// `run_invoke` in a span naming the invocation: instance, process
    /// version, state, action, idempotency key and attempt (the plugin
    /// digest is added once the deployment is known).
    async fn run_invoke_traced(&self, inv: Invoke, recovered: bool) {
        let span = tracing::debug_span!(
            "invoke",
            instance = %inv.instance,
            process = %inv.process,
            version = inv.version,
            state = %inv.state,
            action = %inv.action,
            key = %inv.key,
            attempt = inv.attempt,
            plugin = tracing::field::Empty,
        );
        tracing::Instrument::instrument(self.run_invoke(inv, recovered), span).await
    }

    pub(crate) async fn run_invoke(&self, inv: Invoke, recovered: bool) {
        /// Counts the invocation until its outcome is committed (or it is
        /// dropped): a completion for a token not stored yet waits while any
        /// is counted.
        struct Invoking<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Invoking<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        self.inner
            .invoking
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _invoking = Invoking(&self.inner.invoking);
        let mut backoff = Backoff::new();
        // An outcome recorded before a restart is used, never invoked again.
        let recorded = loop {
            if !recovered {
                break None;
            }
            let key = inv.key.clone();
            match self.read(move |s| s.result(&key)).await {
                Ok(r) => break r,
                Err(e) => {
                    self.report_trouble(format!(
                        "cannot read the recorded result of step {}: {e}; trying again",
                        inv.key
                    ));
                    self.pause(backoff.pause()).await;
                }
            }
        };
        let (event, result, ran) = match recorded {
            Some(r) => (event_of(&inv.key, &r, None), None, None),
            None => {
                let deployment = self.ready_deployment(&inv).await;
                if recovered {
                    match self.still_wanted(&inv).await {
                        Ok(true) => {}
                        Ok(false) => {
                            lock(&self.inner.running).remove(&inv.key);
                            return;
                        }
                        Err(e) => tracing::warn!(key = %inv.key, "cannot check the outbox: {e}"),
                    }
                }
                // A stop under way: it stays in the outbox for the next start.
                if self.draining() {
                    lock(&self.inner.running).remove(&inv.key);
                    return;
                }
                let plugin = deployment
                    .bindings
                    .actions
                    .get(&inv.action)
                    .map(|b| b.plugin.as_str())
                    .unwrap_or_default();
                let route = deployment.route(&inv.action, &inv.key, inv.attempt);
                let component = route.map(|r| r.sha256).unwrap_or_default();
                tracing::Span::current().record("plugin", component);
                tracing::debug!("invoking");
                let watch = crate::metrics::Stopwatch::start();
                let (outcome, heartbeat) = self.call(&deployment, &inv, component).await;
                crate::metrics::attempt(&inv.action, plugin, &outcome, watch.seconds());
                let canary = route
                    .and_then(|r| r.canary)
                    .map(|(c, trial)| (c.clone(), trial));
                let ran = Some(Ran {
                    revision: deployment.revision,
                    plugin: (!component.is_empty()).then(|| component.to_owned()),
                });
                let concluded = match outcome {
                    StepOutcome::Pending { token } => (
                        Event::StepPending {
                            key: inv.key.clone(),
                            token,
                        },
                        None,
                        ran,
                    ),
                    StepOutcome::Done { output } => {
                        let r = match weft_model::limits::check(&output) {
                            Ok(()) => StepResult::Done { output },
                            Err(why) => StepResult::Failed {
                                failure: Failure::new(
                                    "adapter",
                                    format!("the adapter's output {why}"),
                                ),
                            },
                        };
                        (event_of(&inv.key, &r, None), Some(r), ran)
                    }
                    StepOutcome::Failed { failure } => {
                        let r = StepResult::Failed { failure };
                        (event_of(&inv.key, &r, heartbeat), Some(r), ran)
                    }
                };
                // A canary is judged on what its attempts came to (a
                // `pending` answer is judged by nothing here).
                if let (Some((c, trial)), Some(r)) = (&canary, &concluded.1) {
                    self.canary_outcome(&inv, c, *trial, r);
                }
                concluded
            }
        };
        lock(&self.inner.running).remove(&inv.key);
        self.conclude(&inv, event, result, ran).await;
    }

    /// Applies an invocation's outcome; while the store fails, tries again
    /// with backoff (the invocation stays in the outbox meanwhile, so a
    /// restart would carry it out again), reporting the trouble.
    async fn conclude(
        &self,
        inv: &Invoke,
        mut event: Event,
        mut result: Option<StepResult>,
        ran: Option<Ran>,
    ) {
        let mut backoff = Backoff::new();
        loop {
            match self
                .deliver_ran(&inv.instance, event.clone(), result.clone(), ran.clone())
                .await
            {
                Ok(_) | Err(Error::NoInstance(_)) => return,
                Err(e) if token_taken(&e).is_some() => {
                    // Checked inside the commit: a token belongs to one step.
                    let token = token_taken(&e).unwrap_or_default().to_owned();
                    let failure = Failure::new(
                        "adapter",
                        format!("answered pending with token '{token}', which is already in use"),
                    );
                    let r = StepResult::Failed { failure };
                    event = event_of(&inv.key, &r, None);
                    result = Some(r);
                }
                Err(e) if e.is_unreadable() => {
                    // Trying again would read the same damaged record: the
                    // step stays in the outbox, said once, and the engine
                    // carries on with everything else.
                    self.report_trouble(format!("instance {} is left alone: {e}", inv.instance));
                    return;
                }
                Err(e @ (Error::Store(_) | Error::WriterGone)) => {
                    self.report_trouble(format!(
                        "cannot commit the outcome of step {} of instance {}: {e}; trying again",
                        inv.key, inv.instance
                    ));
                    self.pause(backoff.pause()).await;
                }
                Err(
                    e
                    @ (Error::Elsewhere(_) | Error::Conflict(weft_store::Conflict::Fenced { .. })),
                ) => {
                    // Another node took the instance's partition: it runs
                    // the step again from its outbox, under the same key.
                    tracing::info!(instance = %inv.instance, key = %inv.key, "left to another node: {e}");
                    return;
                }
                Err(e) => {
                    tracing::error!(instance = %inv.instance, key = %inv.key, "cannot apply the step's outcome: {e}");
                    return;
                }
            }
        }
    }

    /// Invokes once: waits for the binding's guard, runs the call under the
    /// heartbeat watchdog, and reports the outcome and the last heartbeat.
    async fn call(
        &self,
        deployment: &Deployment,
        inv: &Invoke,
        component: &str,
    ) -> (StepOutcome, Option<String>) {
        let clock = self.inner.clock.clone();
        let pass = match self.guard(deployment, inv) {
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
        let call = self.inner.invoker.invoke(deployment, inv, component, sink);
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
}

pub(crate) fn event_of(key: &str, r: &StepResult, heartbeat: Option<String>) -> Event {
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
