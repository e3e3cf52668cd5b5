//! Journal commits on sled: each commit checked against what is stored and
//! what the commits before it in the batch did, then the whole batch as one
//! `apply_batch` and one flush.

use std::collections::HashMap;

use weft_model::{InstanceId, Timer};
use weft_store::{
    Commit, Conflict, Error, Instances as _, Journal, Result, TokenRecord, check_shape, keys,
};

use crate::{SledStore, encode, sled_err};

/// Checks a commit against what is stored and what earlier commits of the
/// same batch did. Runs before the batch is written: the journal has one
/// writer at a time (see `commit_lock`), so nothing changes meanwhile.
fn check_stored(
    store: &SledStore,
    c: &Commit,
    batch: &HashMap<InstanceId, u64>,
) -> Result<std::result::Result<(), Conflict>> {
    let id = &c.instance.id;
    let read = |e| Error::backend("check", format!("the commit of {id}"), e);
    let in_batch = batch.get(id).copied();
    let exists = in_batch.is_some()
        || store
            .journal
            .contains_key(keys::instance(id))
            .map_err(read)?;
    match (c.previous, exists) {
        (None, true) => return Ok(Err(Conflict::InstanceExists(id.clone()))),
        (Some(_), false) => return Ok(Err(Conflict::NoInstance(id.clone()))),
        _ => {}
    }
    let Some(first) = c.records.first().map(|r| r.seq) else {
        return Ok(Ok(()));
    };
    let continues = match in_batch {
        Some(next) => first == next,
        None if first == 0 => c.previous.is_none(),
        None => {
            store
                .journal
                .contains_key(keys::history(id, first - 1))
                .map_err(read)?
                && !store
                    .journal
                    .contains_key(keys::history(id, first))
                    .map_err(read)?
        }
    };
    if continues {
        return Ok(Ok(()));
    }
    // Only on this (rare) path is the stored snapshot decoded.
    let expected = match in_batch {
        Some(next) => next,
        None => store.instance(id).ok().flatten().map_or(0, |i| i.seq),
    };
    Ok(Err(Conflict::HistoryGap {
        instance: id.clone(),
        expected,
        got: first,
    }))
}

/// Adds one commit's writes to the batch. Removals come first, so a key
/// both settled and re-added (a retry of the same step) ends up present.
/// The business-key index entry a commit creating an instance adds.
fn new_business_key(c: &Commit) -> Option<(Vec<u8>, String, String)> {
    let key = c.instance.key.as_ref().filter(|_| c.previous.is_none())?;
    let process = &c.instance.process;
    Some((
        keys::business_key(process, key),
        process.clone(),
        key.clone(),
    ))
}

fn add_to_batch(b: &mut sled::Batch, c: &Commit, write_data: bool) {
    let id = &c.instance.id;
    b.insert(
        keys::instance(id),
        encode(&weft_store::snapshot_head(&c.instance)),
    );
    if write_data {
        b.insert(keys::data(id), encode(&c.instance.data));
    }
    if let Some(fan) = &c.instance.fan {
        for (index, slot) in &c.branches {
            b.insert(keys::branch(id, &fan.key, *index), encode(slot));
        }
    }
    if c.previous != Some(c.instance.status) {
        if let Some(prev) = c.previous {
            b.remove(keys::status(prev, id));
        }
        b.insert(keys::status(c.instance.status, id), &[] as &[u8]);
    }
    for r in &c.records {
        b.insert(keys::history(id, r.seq), encode(r));
    }
    for key in &c.settled {
        b.remove(keys::outbox(id, key));
    }
    for t in &c.timers_cancelled {
        b.remove(keys::timer(t));
    }
    for inv in &c.outbox {
        b.insert(keys::outbox(id, &inv.key), encode(inv));
    }
    for (k, r) in &c.results {
        b.insert(keys::result(k), encode(r));
    }
    for t in &c.timers_armed {
        b.insert(keys::timer(t), encode(t));
    }
    for (t, r) in &c.tokens {
        b.insert(keys::token(t), encode(r));
    }
}

impl Journal for SledStore {
    fn commit(&self, batch: &[Commit]) -> Result<Vec<std::result::Result<(), Conflict>>> {
        let _one_writer = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut seen: HashMap<InstanceId, u64> = HashMap::new();
        let mut keys_seen: HashMap<Vec<u8>, InstanceId> = HashMap::new();
        let mut tokens_seen: HashMap<String, TokenRecord> = HashMap::new();
        let mut branches_seen: Vec<Vec<u8>> = Vec::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut writes = sled::Batch::default();
        for c in batch {
            let mut verdict = match check_shape(c) {
                Ok(()) => check_stored(self, c, &seen)?,
                Err(conflict) => Err(conflict),
            };
            if verdict.is_ok() {
                verdict = weft_store::check_tokens(c, |t| match tokens_seen.get(t) {
                    Some(r) => Ok(Some(r.clone())),
                    None => self.token(t),
                })?;
            }
            let business = new_business_key(c);
            if let (Ok(()), Some((k, process, key))) = (&verdict, &business) {
                let taken = match keys_seen.get(k) {
                    Some(id) => Some(id.clone()),
                    None => self.get(k, || format!("business key {key}"))?,
                };
                if let Some(instance) = taken {
                    verdict = Err(Conflict::KeyTaken {
                        process: process.clone(),
                        key: key.clone(),
                        instance,
                    });
                }
            }
            if verdict.is_ok() {
                if let Some((k, _, _)) = business {
                    writes.insert(k.clone(), encode(&c.instance.id));
                    keys_seen.insert(k, c.instance.id.clone());
                }
                seen.insert(c.instance.id.clone(), c.instance.seq);
                tokens_seen.extend(c.tokens.iter().cloned());
                // The slots of a fan this commit ends, stored or written
                // earlier in this batch, go before anything it writes.
                for fan in &c.closed_fans {
                    let prefix = keys::branches(&c.instance.id, fan);
                    for k in self.journal.scan_prefix(&prefix).keys() {
                        let k = k.map_err(sled_err(
                            "read",
                            format!("the branches of {fan} in {}", c.instance.id),
                        ))?;
                        writes.remove(k);
                    }
                    for k in branches_seen.iter().filter(|k| k.starts_with(&prefix)) {
                        writes.remove(k.clone());
                    }
                }
                if let Some(fan) = &c.instance.fan {
                    branches_seen.extend(
                        c.branches
                            .iter()
                            .map(|(i, _)| keys::branch(&c.instance.id, &fan.key, *i)),
                    );
                }
                // Unchanged data is written anyway when it is not stored
                // apart yet (a snapshot from before it was).
                let id = &c.instance.id;
                let write_data = !c.data_unchanged
                    || !self
                        .journal
                        .contains_key(keys::data(id))
                        .map_err(sled_err("read", format!("the data of {id}")))?;
                add_to_batch(&mut writes, c, write_data);
            }
            outcomes.push(verdict);
        }
        // One batch: sled recovers it whole or not at all.
        self.journal.apply_batch(writes).map_err(sled_err(
            "write",
            format!("a batch of {} commits", batch.len()),
        ))?;
        self.flush()?;
        Ok(outcomes)
    }

    fn remove_timer(&self, timer: &Timer) -> Result<()> {
        self.journal.remove(keys::timer(timer)).map_err(sled_err(
            "remove",
            format!("the {} timer of {}", timer.kind.as_str(), timer.instance),
        ))?;
        Ok(())
    }
}
