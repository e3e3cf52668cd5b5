//! Following a store several nodes share: what this node drives moves
//! (`rebalance`), and what other nodes deploy or swap reaches it
//! (`refresh_bindings`). On a store one engine has to itself neither is
//! called.

use weft_model::InstanceId;

use crate::engine::lock;
use crate::{Engine, Result};

impl Engine {
    /// After this node's share of a shared store changed: lets go of the
    /// instances it no longer drives (their invocations under way, whose
    /// outcomes it could not commit), forgets every cached snapshot (one of
    /// a partition held before, lost and taken back may be stale), and
    /// takes up the work of the instances `gained` says it now drives —
    /// their outbox invocations not already running here, and their timers
    /// (the timer loop is woken). Returns how many invocations it took up.
    pub async fn rebalance(&self, gained: &(dyn Fn(&InstanceId) -> bool + Sync)) -> Result<usize> {
        let store = self.inner.store.clone();
        lock(&self.inner.active).clear();
        {
            let mut running = lock(&self.inner.running);
            running.retain(|key, task| {
                let id = key.split('/').next().unwrap_or_default();
                let held = store.holds(&InstanceId(id.to_owned()));
                if !held {
                    task.abort();
                }
                held
            });
        }
        let entries = self.read(|s| s.outbox()).await?;
        let invokes: Vec<weft_model::Invoke> = {
            let running = lock(&self.inner.running);
            entries
                .into_iter()
                .filter_map(|e| e.ok())
                .filter(|inv| gained(&inv.instance) && !running.contains_key(&inv.key))
                .collect()
        };
        let n = invokes.len();
        self.dispatch_recovered(invokes);
        self.inner.timer_wake.notify_one();
        Ok(n)
    }

    /// Reads the newest bindings revision of every process version whose
    /// bindings this engine has cached, and uses any newer one from the next
    /// attempt on (its components are loaded from the store first, as after
    /// a restart). On a store several nodes share, a deploy, swap, rollback
    /// or canary decision made through another node reaches this one so.
    /// Returns how many versions changed.
    pub async fn refresh_bindings(&self) -> Result<usize> {
        let cached: Vec<(String, u32, u32)> = lock(&self.inner.deployments)
            .iter()
            .map(|((p, v), d)| (p.clone(), *v, d.revision))
            .collect();
        let mut changed = 0;
        for (process, version, revision) in cached {
            let fresh = self.read(move |s| s.deployment(&process, version)).await?;
            if let Some(d) = fresh.filter(|d| d.revision > revision) {
                self.remember_deployment(std::sync::Arc::new(d));
                changed += 1;
            }
        }
        if changed > 0 {
            self.inner.deployed.notify_waiters();
        }
        Ok(changed)
    }
}
