//! Time as an input. Everything in the driver that needs "now" or a sleep
//! goes through [`Clock`]: [`SystemClock`] in production, [`SimClock`] in
//! tests, where `advance` moves time and wakes exactly the sleepers due.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;
use weft_model::{Millis, Span};

pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Millis;
    /// Completes once `now() >= at`.
    fn sleep_until(&self, at: Millis) -> Sleep;
}

/// Real time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place real time is read
    fn now(&self) -> Millis {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Millis(since.as_millis() as u64)
    }

    #[allow(clippy::disallowed_methods)] // the one place real time is slept
    fn sleep_until(&self, at: Millis) -> Sleep {
        let wait = at.since(self.now()).as_std();
        Box::pin(tokio::time::sleep(wait))
    }
}

/// Simulated time: it only moves when told to.
#[derive(Debug, Default)]
pub struct SimClock {
    now: AtomicU64,
    sleepers: Mutex<BTreeMap<(Millis, u64), oneshot::Sender<()>>>,
    next: AtomicU64,
}

impl SimClock {
    pub fn new(start: Millis) -> Self {
        SimClock {
            now: AtomicU64::new(start.0),
            ..Default::default()
        }
    }

    /// Moves time forward by `d` and wakes every sleeper now due.
    pub fn advance(&self, d: Span) {
        let now = Millis(self.now.fetch_add(d.0, Ordering::SeqCst) + d.0);
        let due: Vec<oneshot::Sender<()>> = {
            let mut sleepers = self.sleepers.lock().unwrap_or_else(|p| p.into_inner());
            let later = sleepers.split_off(&(Millis(now.0.saturating_add(1)), 0));
            std::mem::replace(&mut *sleepers, later)
                .into_values()
                .collect()
        };
        for tx in due {
            let _ = tx.send(());
        }
    }

    /// Number of sleepers not yet due.
    pub fn sleepers(&self) -> usize {
        self.sleepers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// The earliest time a sleeper waits for.
    pub fn next_wake(&self) -> Option<Millis> {
        let sleepers = self.sleepers.lock().unwrap_or_else(|p| p.into_inner());
        sleepers.keys().next().map(|(at, _)| *at)
    }
}

impl Clock for SimClock {
    fn now(&self) -> Millis {
        Millis(self.now.load(Ordering::SeqCst))
    }

    fn sleep_until(&self, at: Millis) -> Sleep {
        if at <= self.now() {
            return Box::pin(std::future::ready(()));
        }
        let (tx, rx) = oneshot::channel();
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.sleepers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((at, n), tx);
        // A dropped clock also ends the sleep, rather than hanging forever.
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sim_clock_wakes_only_sleepers_that_are_due() {
        let clock = SimClock::new(Millis(1_000));
        let early = clock.sleep_until(Millis(1_100));
        let late = clock.sleep_until(Millis(1_500));
        assert_eq!(clock.sleepers(), 2);
        clock.advance(Span(100));
        early.await;
        assert_eq!(clock.sleepers(), 1);
        assert_eq!(clock.next_wake(), Some(Millis(1_500)));
        clock.advance(Span(400));
        late.await;
        assert_eq!(clock.now(), Millis(1_500));
    }

    #[tokio::test]
    async fn sim_clock_past_deadlines_are_ready_at_once() {
        let clock = SimClock::new(Millis(10));
        clock.sleep_until(Millis(5)).await;
        assert_eq!(clock.sleepers(), 0);
    }
}
