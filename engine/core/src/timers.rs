//! Durable timers: found by due time from the store's timer index (never by
//! scanning instances), each delivered as an event under its instance's
//! lock. A timer whose delivery fails is tried again with backoff while the
//! other due timers keep firing: the service neither spins nor starves.

use weft_model::{Event, Millis, Timer};

use crate::backoff::Backoff;
use crate::engine::lock;
use crate::{Delivered, Engine, Error};

/// Timers read from the store per round, beyond those waiting to retry.
const PAGE: usize = 512;

impl Engine {
    /// Fires stored timers when due. Sleeps until the next one is due, a
    /// failed one may be tried again, or a commit arms a new one.
    pub(crate) async fn run_timers(&self) {
        let mut backoff = Backoff::new();
        loop {
            let now = self.inner.clock.now();
            let wake = match self.fire_due(now).await {
                Ok(wake) => {
                    backoff = Backoff::new();
                    wake
                }
                Err(e) => {
                    self.report_trouble(format!("cannot read due timers: {e}; trying again"));
                    Some(now.plus(backoff.pause()))
                }
            };
            let notified = self.inner.timer_wake.notified();
            let clock = self.inner.clock.clone();
            match wake {
                Some(at) if at <= now => tokio::task::yield_now().await,
                Some(at) => {
                    self.doze(async {
                        tokio::select! {
                            () = clock.sleep_until(at) => {}
                            () = notified => {}
                        }
                    })
                    .await;
                }
                None => self.doze(notified).await,
            }
        }
    }

    /// Starts delivering every due timer not already on its way or waiting
    /// to retry; returns when to look again (`None`: when woken).
    async fn fire_due(&self, now: Millis) -> crate::Result<Option<Millis>> {
        let skip = lock(&self.inner.firing).len() + lock(&self.inner.timer_retry).len();
        let limit = PAGE + skip;
        let due = self.read(move |s| s.due_timers(now, limit)).await?;
        let full = due.len() == limit;
        let due_now: std::collections::HashSet<Timer> = due.iter().cloned().collect();
        let mut started = 0;
        for timer in due {
            if let Some((at, _)) = lock(&self.inner.timer_retry).get(&timer)
                && *at > now
            {
                continue;
            }
            if !lock(&self.inner.firing).insert(timer.clone()) {
                continue; // already on its way
            }
            started += 1;
            let engine = self.clone();
            self.spawn(async move {
                let event = Event::Timer {
                    kind: timer.kind,
                    key: timer.key.clone(),
                    at: timer.at,
                };
                let outcome = match engine.deliver(&timer.instance, event, None).await {
                    Ok(Delivered::Applied | Delivered::Repeated) => {
                        crate::metrics::timer_fired(timer.kind);
                        Ok(())
                    }
                    Ok(Delivered::Rejected(_)) | Err(Error::NoInstance(_)) => {
                        // Its instance moved on: the timer is spent.
                        let spent = timer.clone();
                        engine
                            .read(move |s| s.remove_timer(&spent))
                            .await
                            .map_err(|e| format!("cannot remove a spent timer: {e}"))
                    }
                    // Another node holds its partition now: it fires it.
                    Err(
                        Error::Elsewhere(_) | Error::Conflict(weft_store::Conflict::Fenced { .. }),
                    ) => Ok(()),
                    Err(e) => Err(e.to_string()),
                };
                let now = engine.inner.clock.now();
                match outcome {
                    Ok(()) => {
                        lock(&engine.inner.timer_retry).remove(&timer);
                    }
                    Err(why) => {
                        let mut retry = lock(&engine.inner.timer_retry);
                        let entry = retry.entry(timer.clone()).or_insert((now, Backoff::new()));
                        let pause = entry.1.pause();
                        entry.0 = now.plus(pause);
                        drop(retry);
                        engine.report_trouble(format!(
                            "the {} timer of instance {} failed: {why}; trying again in {pause}",
                            timer.kind.as_str(),
                            timer.instance
                        ));
                    }
                }
                lock(&engine.inner.firing).remove(&timer);
                engine.inner.timer_wake.notify_one();
            });
        }
        if full && started > 0 {
            // More are due than one round reads: look again at once.
            return Ok(Some(now));
        }
        let retry_at = {
            let mut retry = lock(&self.inner.timer_retry);
            if !full {
                // Every timer that failed was due when it failed, so one not
                // among the due ones now went with a commit (its step moved
                // on): forget it, or its retry time would wake us for ever.
                retry.retain(|t, _| due_now.contains(t));
            }
            let firing = lock(&self.inner.firing);
            retry
                .iter()
                .filter(|(t, _)| !firing.contains(*t))
                .map(|(_, (at, _))| *at)
                .min()
        };
        let next = self.read(move |s| s.next_timer_after(now)).await?;
        Ok(match (retry_at, next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Whether a timer is due that is not waiting to be tried again.
    pub(crate) fn has_due_timer(&self, now: Millis) -> bool {
        let Ok(due) = self.inner.store.due_timers(now, PAGE) else {
            return false;
        };
        let retry = lock(&self.inner.timer_retry);
        due.iter()
            .any(|t| retry.get(t).is_none_or(|(at, _)| *at <= now))
    }
}
