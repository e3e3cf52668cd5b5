//! Hot swaps: replacing the component behind an action (or every action of a
//! plugin) on a running engine, rolling back, and canaries judged on their
//! failure rate against the live component.
//!
//! A swap is a new bindings revision for every process version it touches,
//! written with its swap-log record (and the component, registered) in one
//! atomic write. Invocations under way keep the revision they started with;
//! the next ones use the new one. Each attempt's records carry the sha256 of
//! the component that ran it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use weft_model::{Manifest, Process};
use weft_store::{
    Canary, CanaryPolicy, Conflict, Deployment, PluginEntry, StepResult, SwapChange, SwapKind,
    SwapRecord, SwapWrite, Target,
};

use crate::engine::lock;
use crate::{Engine, Error, Result};

mod trial;

pub(crate) use trial::Trial;
pub use trial::counts_against;

/// How many times a swap is computed again when a deploy or another swap
/// wrote the same revision first.
const STALE_TRIES: usize = 5;

/// The component a swap makes live, loaded and described by the caller
/// (which has the WASM runtime).
#[derive(Debug, Clone)]
pub struct Component {
    pub sha256: String,
    pub manifest: Manifest,
    /// Its bytes and the name to register them under, when they are not in
    /// the registry already (a file, an upload).
    pub register: Option<(String, Arc<[u8]>)>,
    /// Its registry entry (`name@version`), when it came from the registry.
    pub registered: Option<String>,
}

/// A swap to make: `target` as given (`action:x`, `plugin:x`, or a bare
/// name that is one of the two), and a canary policy for a trial instead of
/// a full swap.
#[derive(Debug, Clone)]
pub struct SwapRequest {
    pub target: String,
    pub component: Component,
    pub canary: Option<CanaryPolicy>,
}

/// Which component runs one action of one deployed process version now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Live {
    pub process: String,
    pub version: u32,
    /// Its bindings revision.
    pub revision: u32,
    pub action: String,
    /// The plugin the action is bound to.
    pub plugin: String,
    pub sha256: String,
    /// A component on trial for a share of its attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<LiveCanary>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveCanary {
    pub sha256: String,
    pub policy: CanaryPolicy,
    /// Attempts it ran in this engine since it started (or since the
    /// engine started), its failures, and the live component's.
    pub tally: Option<Tally>,
}

/// The running counts a canary is judged on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tally {
    pub trial_attempts: u64,
    pub trial_failures: u64,
    pub live_attempts: u64,
    pub live_failures: u64,
}

/// A target's swap log and what runs it now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwapLog {
    /// Oldest first.
    pub records: Vec<SwapRecord>,
    pub live: Vec<Live>,
}

/// A target's part of a deployment: the plugin's component (for a plugin
/// target), each covered action's own (when swapped alone), its canaries.
/// Two revisions with the same part run the target's actions alike.
#[derive(Debug, PartialEq)]
struct Part {
    plugin: Option<String>,
    pins: Vec<(String, Option<String>)>,
    canaries: Vec<Canary>,
}

fn view(d: &Deployment, target: &Target) -> Part {
    let plugin = match target {
        Target::Plugin(p) => d.plugins.get(p).cloned(),
        Target::Action(_) => None,
    };
    let pins = d
        .actions_of(target)
        .into_iter()
        .map(|a| (a.to_owned(), d.pinned.get(a).cloned()))
        .collect();
    let canaries = d
        .canaries
        .iter()
        .filter(|c| c.target == *target)
        .cloned()
        .collect();
    Part {
        plugin,
        pins,
        canaries,
    }
}

/// Makes `sha256` live for every action `target` covers in `d`.
fn set_live(d: &mut Deployment, target: &Target, sha256: &str) {
    let covered: Vec<String> = d
        .actions_of(target)
        .into_iter()
        .map(str::to_owned)
        .collect();
    match target {
        Target::Plugin(p) => {
            d.plugins.insert(p.clone(), sha256.to_owned());
            for a in covered {
                d.pinned.shift_remove(&a);
            }
        }
        Target::Action(a) => {
            d.pinned.insert(a.clone(), sha256.to_owned());
        }
    }
    d.canaries.retain(|c| c.target != *target);
}

/// Puts back in `d` what ran `target`'s actions in `before`, without its
/// canaries.
fn restore(d: &mut Deployment, before: &Deployment, target: &Target) {
    if let Target::Plugin(p) = target
        && let Some(sha) = before.plugins.get(p)
    {
        d.plugins.insert(p.clone(), sha.clone());
    }
    let covered: Vec<String> = d
        .actions_of(target)
        .into_iter()
        .map(str::to_owned)
        .collect();
    for a in covered {
        match before.pinned.get(&a) {
            Some(sha) => d.pinned.insert(a, sha.clone()),
            None => d.pinned.shift_remove(&a),
        };
    }
    d.canaries.retain(|c| c.target != *target);
}

/// `ab12cd34ef56` for a sha256.
pub fn short(sha256: &str) -> &str {
    &sha256[..12.min(sha256.len())]
}

impl Engine {
    /// The newest bindings revision of every deployed process version.
    async fn newest_deployments(&self) -> Result<Vec<Deployment>> {
        self.read(|s| {
            let mut out = Vec::new();
            for p in s.processes()? {
                if let Some(d) = s.deployment(&p.name, p.version)? {
                    out.push(d);
                }
            }
            Ok(out)
        })
        .await
    }

    /// What `what` names: `action:<name>`, `plugin:<name>`, or a bare name
    /// that the deployed bindings use as a plugin or an action (when both,
    /// it must cover the same actions either way).
    pub async fn swap_target(&self, what: &str) -> Result<Target> {
        if what.contains(':') {
            return what.parse::<Target>().map_err(Error::SwapRefused);
        }
        let ds = self.newest_deployments().await?;
        let (plugin, action) = (Target::Plugin(what.into()), Target::Action(what.into()));
        let covered = |t: &Target| -> Vec<(String, u32, String)> {
            ds.iter()
                .flat_map(|d| {
                    d.actions_of(t)
                        .into_iter()
                        .map(|a| (d.process.clone(), d.version, a.to_owned()))
                })
                .collect()
        };
        let (by_plugin, by_action) = (covered(&plugin), covered(&action));
        match (by_plugin.is_empty(), by_action.is_empty()) {
            (true, true) => Err(Error::NoTarget(format!(
                "no deployed bindings use '{what}' as a plugin or an action: see weft plugin versions, or deploy first"
            ))),
            (false, true) => Ok(plugin),
            (true, false) => Ok(action),
            (false, false) if by_plugin == by_action => Ok(plugin),
            (false, false) => Err(Error::SwapRefused(format!(
                "'{what}' is both a plugin and an action the bindings use: write plugin:{what} or action:{what}"
            ))),
        }
    }

    /// The plugin name and memory of every binding a target covers in the
    /// newest bindings: what a component for it is registered as, and the
    /// memory its `describe` may use.
    pub async fn target_bindings(&self, target: &Target) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for d in self.newest_deployments().await? {
            for a in d.actions_of(target) {
                if let Some(b) = d.bindings.actions.get(a) {
                    out.push((b.plugin.clone(), b.memory));
                }
            }
        }
        Ok(out)
    }

    /// What a component says about itself: from the invoker that has it
    /// loaded, else from the registry.
    async fn manifest_of(&self, sha256: &str) -> Result<Option<Manifest>> {
        if let Some(m) = self.inner.invoker.manifest(sha256) {
            return Ok(Some(m));
        }
        let sha = sha256.to_owned();
        let entries = self.read(|s| s.registry()).await?;
        Ok(entries
            .into_iter()
            .find(|e| e.sha256 == sha)
            .map(|e| e.manifest))
    }

    /// Makes a component live for a target on every deployed process
    /// version that binds it — or, with a canary policy, puts it on trial
    /// for a share of attempts. Refused, with every reason, when the
    /// component cannot take over an action there (no such action, an
    /// idempotent action that no longer is, a routed error kind it never
    /// fails with), or a canary of the target is under way; then nothing
    /// is written.
    pub async fn swap(&self, req: SwapRequest) -> Result<SwapRecord> {
        let _one = self.doze(self.inner.swapping.lock()).await;
        let target = self.swap_target(&req.target).await?;
        if let Some(policy) = &req.canary {
            policy.check().map_err(Error::SwapRefused)?;
        }
        let c = &req.component;
        for _ in 0..STALE_TRIES {
            let ds = self.newest_deployments().await?;
            let affected: Vec<&Deployment> = ds
                .iter()
                .filter(|d| !d.actions_of(&target).is_empty())
                .collect();
            if affected.is_empty() {
                return Err(Error::NoTarget(format!(
                    "no deployed bindings use {target}"
                )));
            }
            let mut problems = Vec::new();
            let mut already = true;
            let mut changes = Vec::new();
            let mut fresh = Vec::new();
            let now = self.inner.clock.now();
            for d in &affected {
                let actions = d.actions_of(&target);
                if let Some(busy) = d.canaries.iter().find(|k| {
                    actions.iter().any(|a| {
                        let plugin = d.bindings.actions.get(*a).map_or("", |b| b.plugin.as_str());
                        k.target.covers(a, plugin)
                    })
                }) {
                    return Err(Error::SwapRefused(format!(
                        "a canary of {} is under way on process '{}' v{}: promote it or roll it back first (weft plugin promote|rollback {})",
                        busy.target, d.process, d.version, busy.target
                    )));
                }
                let process: Arc<Process> = self.process(&d.process, d.version).await?;
                let from = d.digest_of(actions[0]).unwrap_or_default().to_owned();
                already &= actions
                    .iter()
                    .all(|a| d.digest_of(a) == Some(c.sha256.as_str()));
                // The live components, loaded (from the store, or the
                // compile cache) so their manifests can be compared; one
                // that cannot be loaded is compared with nothing.
                if let Err(why) = self.prepare(d).await {
                    tracing::warn!(
                        "process '{}' v{}: the live components do not load ({why}): the swap is checked without them",
                        d.process,
                        d.version
                    );
                }
                for a in &actions {
                    let old = match d.digest_of(a) {
                        Some(sha) => self.manifest_of(sha).await?,
                        None => None,
                    };
                    for p in weft_model::bindings::check_swap(
                        &process,
                        &d.bindings,
                        &[a],
                        old.as_ref(),
                        &c.manifest,
                    ) {
                        problems.push(format!("process '{}' v{}: {p}", d.process, d.version));
                    }
                }
                let mut next = (*d).clone();
                next.revision += 1;
                next.deployed_at = now;
                match req.canary {
                    None => set_live(&mut next, &target, &c.sha256),
                    Some(policy) => next.canaries.push(Canary {
                        target: target.clone(),
                        sha256: c.sha256.clone(),
                        policy,
                    }),
                }
                changes.push(SwapChange {
                    process: d.process.clone(),
                    version: d.version,
                    revision: next.revision,
                    from,
                });
                fresh.push(next);
            }
            if !problems.is_empty() {
                return Err(Error::SwapRefused(format!(
                    "component {} cannot take over {target}: {}",
                    short(&c.sha256),
                    problems.join("; ")
                )));
            }
            if already {
                return Err(Error::SwapRefused(format!(
                    "component {} is already what runs {target}",
                    short(&c.sha256)
                )));
            }
            let record = SwapRecord {
                seq: 0,
                at: now,
                target: target.clone(),
                kind: if req.canary.is_some() {
                    SwapKind::Canary
                } else {
                    SwapKind::Swap
                },
                sha256: c.sha256.clone(),
                plugin: c.registered.clone(),
                changes,
                reason: None,
                settles: None,
                canary: req.canary,
            };
            let register = c.register.as_ref().map(|(name, bytes)| {
                (
                    PluginEntry {
                        name: name.clone(),
                        version: 0,
                        sha256: c.sha256.clone(),
                        size: bytes.len() as u64,
                        added_at: now,
                        manifest: c.manifest.clone(),
                    },
                    bytes.clone(),
                )
            });
            let write = SwapWrite {
                record,
                deployments: fresh,
                register,
            };
            match self.write_swap(write).await? {
                Some(done) => return Ok(done),
                None => continue,
            }
        }
        Err(Error::SwapRefused(format!(
            "the bindings using {target} kept changing while swapping: try again"
        )))
    }

    /// Writes a swap; `None` when a revision it writes was taken meanwhile
    /// (compute it again). On success this engine uses the new revisions
    /// from the next attempt on.
    async fn write_swap(&self, write: SwapWrite) -> Result<Option<SwapRecord>> {
        let fresh = write.deployments.clone();
        let written = match self.read(move |s| s.swap(&write)).await {
            Ok(w) => w,
            Err(e) => {
                // It may have been written and not flushed: this engine
                // reads the revisions from the store again.
                let mut cache = lock(&self.inner.deployments);
                for d in &fresh {
                    cache.remove(&(d.process.clone(), d.version));
                }
                return Err(e);
            }
        };
        match written {
            Ok(done) => {
                for d in fresh {
                    self.remember_deployment(Arc::new(d));
                }
                if done.kind == SwapKind::Canary {
                    // A tally left from an earlier trial of these bytes.
                    lock(&self.inner.trials).remove(&(done.target.clone(), done.sha256.clone()));
                }
                self.inner.deployed.notify_waiters();
                crate::metrics::swapped(&done);
                tracing::info!(
                    target_ = %done.target,
                    kind = done.kind.as_str(),
                    component = short(&done.sha256),
                    seq = done.seq,
                    "{}",
                    done.reason.as_deref().unwrap_or("swapped")
                );
                Ok(Some(done))
            }
            Err(Conflict::Stale { .. }) => Ok(None),
            Err(other) => Err(Error::Conflict(other)),
        }
    }

    /// Undoes the newest swap of a target still in force (a swap or a
    /// promotion: back to what ran before it), or ends its canary. Each
    /// rollback goes one swap further back. Refused for a process version
    /// where something else (a deploy, another swap) changed the target
    /// since.
    pub async fn rollback(&self, what: &str) -> Result<SwapRecord> {
        let _one = self.doze(self.inner.swapping.lock()).await;
        let target = self.swap_target(what).await?;
        for _ in 0..STALE_TRIES {
            let log = self.read(|s| s.swaps()).await?;
            let settled: HashSet<u64> = log.iter().filter_map(|r| r.settles).collect();
            // A canary a deploy has since replaced is over: not in the way.
            let trials: HashSet<String> = self
                .newest_deployments()
                .await?
                .iter()
                .flat_map(|d| d.canaries.iter())
                .filter(|c| c.target == target)
                .map(|c| c.sha256.clone())
                .collect();
            let open = log.iter().rev().find(|r| {
                r.target == target
                    && !settled.contains(&r.seq)
                    && match r.kind {
                        SwapKind::Swap | SwapKind::Promote => true,
                        SwapKind::Canary => trials.contains(&r.sha256),
                        SwapKind::Rollback | SwapKind::Abort => false,
                    }
            });
            let Some(open) = open.cloned() else {
                return Err(Error::SwapRefused(format!(
                    "nothing to roll back: no swap of {target} is in force"
                )));
            };
            if open.kind == SwapKind::Canary {
                return match self
                    .end_canary(&target, &open.sha256, false, "ended by an operator".into())
                    .await?
                {
                    Some(done) => Ok(done),
                    None => continue,
                };
            }
            let mut fresh = Vec::new();
            let mut problems = Vec::new();
            let mut changes = Vec::new();
            let now = self.inner.clock.now();
            for ch in &open.changes {
                let (p, v, r) = (ch.process.clone(), ch.version, ch.revision);
                let (newest, written, before) = self
                    .read(move |s| {
                        Ok((
                            s.deployment(&p, v)?,
                            s.deployment_revision(&p, v, r)?,
                            s.deployment_revision(&p, v, r.saturating_sub(1))?,
                        ))
                    })
                    .await?;
                let (Some(newest), Some(written), Some(before)) = (newest, written, before) else {
                    problems.push(format!(
                        "process '{}' v{}: the bindings revisions around {} are missing",
                        ch.process, ch.version, ch.revision
                    ));
                    continue;
                };
                if view(&newest, &target) != view(&written, &target) {
                    problems.push(format!(
                        "process '{}' v{}: {target} changed since (bindings revision {} is newer); swap to the component you want instead",
                        ch.process, ch.version, newest.revision
                    ));
                    continue;
                }
                let mut next = newest.clone();
                restore(&mut next, &before, &target);
                next.revision = newest.revision + 1;
                next.deployed_at = now;
                changes.push(SwapChange {
                    process: ch.process.clone(),
                    version: ch.version,
                    revision: next.revision,
                    from: open.sha256.clone(),
                });
                fresh.push(next);
            }
            if !problems.is_empty() {
                return Err(Error::SwapRefused(format!(
                    "cannot roll back swap #{} of {target}: {}",
                    open.seq,
                    problems.join("; ")
                )));
            }
            let back = open
                .changes
                .first()
                .map(|c| c.from.clone())
                .unwrap_or_default();
            let write = SwapWrite {
                record: SwapRecord {
                    seq: 0,
                    at: now,
                    target: target.clone(),
                    kind: SwapKind::Rollback,
                    sha256: back,
                    plugin: None,
                    changes,
                    reason: Some(format!("rolled back by an operator (undoes #{})", open.seq)),
                    settles: Some(open.seq),
                    canary: None,
                },
                deployments: fresh,
                register: None,
            };
            if let Some(done) = self.write_swap(write).await? {
                return Ok(done);
            }
        }
        Err(Error::SwapRefused(format!(
            "the bindings using {target} kept changing while rolling back: try again"
        )))
    }

    /// Makes the component on trial for a target live for every attempt.
    pub async fn promote(&self, what: &str) -> Result<SwapRecord> {
        let _one = self.doze(self.inner.swapping.lock()).await;
        let target = self.swap_target(what).await?;
        for _ in 0..STALE_TRIES {
            let ds = self.newest_deployments().await?;
            let Some(canary) = ds
                .iter()
                .flat_map(|d| d.canaries.iter())
                .find(|c| c.target == target)
                .cloned()
            else {
                return Err(Error::SwapRefused(format!(
                    "no canary of {target} is under way"
                )));
            };
            if let Some(done) = self
                .end_canary(
                    &target,
                    &canary.sha256,
                    true,
                    "promoted by an operator".into(),
                )
                .await?
            {
                return Ok(done);
            }
        }
        Err(Error::SwapRefused(format!(
            "the bindings using {target} kept changing while promoting: try again"
        )))
    }

    /// Ends the canary of `sha256` for a target: promotes it, or takes it
    /// out. The caller holds the swap lock. `None` when a revision was
    /// taken meanwhile; refused when no such canary is in force.
    async fn end_canary(
        &self,
        target: &Target,
        sha256: &str,
        promote: bool,
        reason: String,
    ) -> Result<Option<SwapRecord>> {
        let ds = self.newest_deployments().await?;
        let now = self.inner.clock.now();
        let mut fresh = Vec::new();
        let mut changes = Vec::new();
        for d in &ds {
            if !d
                .canaries
                .iter()
                .any(|c| c.target == *target && c.sha256 == sha256)
            {
                continue;
            }
            let mut next = d.clone();
            next.revision += 1;
            next.deployed_at = now;
            let from = d
                .actions_of(target)
                .first()
                .and_then(|a| d.digest_of(a))
                .unwrap_or_default()
                .to_owned();
            if promote {
                set_live(&mut next, target, sha256);
            } else {
                next.canaries.retain(|c| c.target != *target);
            }
            changes.push(SwapChange {
                process: d.process.clone(),
                version: d.version,
                revision: next.revision,
                from,
            });
            fresh.push(next);
        }
        if fresh.is_empty() {
            return Err(Error::SwapRefused(format!(
                "no canary of component {} for {target} is under way",
                short(sha256)
            )));
        }
        let log = self.read(|s| s.swaps()).await?;
        let started = log
            .iter()
            .rev()
            .find(|r| r.target == *target && r.kind == SwapKind::Canary && r.sha256 == sha256);
        let write = SwapWrite {
            record: SwapRecord {
                seq: 0,
                at: now,
                target: target.clone(),
                kind: if promote {
                    SwapKind::Promote
                } else {
                    SwapKind::Abort
                },
                sha256: sha256.to_owned(),
                plugin: started.and_then(|r| r.plugin.clone()),
                changes,
                reason: Some(reason),
                settles: started.map(|r| r.seq),
                canary: None,
            },
            deployments: fresh,
            register: None,
        };
        let done = self.write_swap(write).await?;
        if done.is_some() {
            lock(&self.inner.trials).remove(&(target.clone(), sha256.to_owned()));
        }
        Ok(done)
    }

    /// Counts an attempt routed by a canary, and carries out the policy's
    /// decision when the tally makes one.
    pub(crate) fn canary_outcome(
        &self,
        inv: &weft_model::Invoke,
        canary: &Canary,
        trial: bool,
        result: &StepResult,
    ) {
        // Counted only while the canary is in force: an attempt that ends
        // after the trial was settled (or a deploy replaced it) is not.
        let in_force = lock(&self.inner.deployments)
            .get(&(inv.process.clone(), inv.version))
            .is_some_and(|d| d.canaries.contains(canary));
        if !in_force {
            return;
        }
        let failed = match result {
            StepResult::Failed { failure } => counts_against(&failure.kind),
            StepResult::Done { .. } => false,
        };
        crate::metrics::canary_attempt(&canary.target, trial, failed);
        let key = (canary.target.clone(), canary.sha256.clone());
        let decision = {
            let mut trials = lock(&self.inner.trials);
            let t = trials
                .entry(key.clone())
                .or_insert_with(|| Trial::new(canary.policy));
            if t.policy != canary.policy {
                *t = Trial::new(canary.policy);
            }
            t.record(trial, failed);
            t.decide()
        };
        let Some((promote, reason)) = decision else {
            return;
        };
        let engine = self.clone();
        self.spawn(async move {
            let _one = engine.doze(engine.inner.swapping.lock()).await;
            let (target, sha) = key;
            for _ in 0..STALE_TRIES {
                match engine.end_canary(&target, &sha, promote, reason.clone()).await {
                    Ok(Some(_)) => return,
                    Ok(None) => continue,
                    Err(Error::SwapRefused(_)) => {
                        // Settled already (an operator, another decision).
                        lock(&engine.inner.trials).remove(&(target.clone(), sha.clone()));
                        return;
                    }
                    Err(e) => {
                        engine.report_trouble(format!(
                            "cannot record the canary decision for {target}: {e}; it is taken again on the next attempt"
                        ));
                        break;
                    }
                }
            }
            if let Some(t) = lock(&engine.inner.trials).get_mut(&(target, sha)) {
                t.deciding = false;
            }
        });
    }

    /// The swap log (of one target, or all) and which component runs each
    /// bound action of every deployed process version now.
    pub async fn swap_log(&self, what: Option<&str>) -> Result<SwapLog> {
        let target = match what {
            Some(w) => Some(self.swap_target(w).await?),
            None => None,
        };
        let mut records = self.read(|s| s.swaps()).await?;
        if let Some(t) = &target {
            records.retain(|r| r.target == *t);
        }
        let trials: HashMap<(Target, String), Tally> = lock(&self.inner.trials)
            .iter()
            .map(|(k, t)| (k.clone(), t.tally))
            .collect();
        let mut live = Vec::new();
        for d in self.newest_deployments().await? {
            for (action, b) in &d.bindings.actions {
                if target
                    .as_ref()
                    .is_some_and(|t| !t.covers(action, &b.plugin))
                {
                    continue;
                }
                live.push(Live {
                    process: d.process.clone(),
                    version: d.version,
                    revision: d.revision,
                    action: action.clone(),
                    plugin: b.plugin.clone(),
                    sha256: d.digest_of(action).unwrap_or_default().to_owned(),
                    canary: d.canary_for(action).map(|c| LiveCanary {
                        sha256: c.sha256.clone(),
                        policy: c.policy,
                        tally: trials.get(&(c.target.clone(), c.sha256.clone())).copied(),
                    }),
                });
            }
        }
        Ok(SwapLog { records, live })
    }
}
