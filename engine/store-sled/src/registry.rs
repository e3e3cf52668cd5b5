//! The plugin registry in sled: entries by name and version, the newest
//! version's number under the bare name, the bytes in `plugins`.

use weft_store::{Conflict, Error, PluginEntry, Result, SwapRecord, SwapWrite, keys};

use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionalTree,
};

use crate::{SledStore, decode, encode, sled_err};

pub(crate) fn register(
    store: &SledStore,
    entry: &PluginEntry,
    bytes: &[u8],
) -> Result<(PluginEntry, bool)> {
    use sled::Transactional;
    use sled::transaction::TransactionError;
    let what = format!("plugin {} in the registry", entry.name);
    let outcome = (&store.registry, &store.plugins)
        .transaction(|(registry, plugins)| register_in(registry, plugins, entry, bytes));
    let added = match outcome {
        Ok(added) => added,
        Err(TransactionError::Abort(why)) => {
            return Err(Error::backend(
                "read",
                what,
                Box::<dyn std::error::Error + Send + Sync>::from(why),
            ));
        }
        Err(TransactionError::Storage(e)) => return Err(sled_err("write", what)(e)),
    };
    store.flush()?;
    Ok(added)
}

/// Adds `entry` inside a transaction over the registry and plugin trees:
/// the newest version is read and bumped there, so two adds racing under
/// one name cannot take the same version.
pub(crate) fn register_in(
    registry: &TransactionalTree,
    plugins: &TransactionalTree,
    entry: &PluginEntry,
    bytes: &[u8],
) -> ConflictableTransactionResult<(PluginEntry, bool), String> {
    let name = entry.name.as_bytes();
    let newest = match registry.get(name)? {
        Some(v) => {
            let n = u32::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                ConflictableTransactionError::Abort(format!(
                    "the newest version of {} is not a number",
                    entry.name
                ))
            })?);
            let stored = registry
                .get(keys::registered(&entry.name, n))?
                .ok_or_else(|| {
                    ConflictableTransactionError::Abort(format!(
                        "version {n} of {} is missing",
                        entry.name
                    ))
                })?;
            let stored: PluginEntry = serde_json::from_slice(&stored)
                .map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
            Some(stored)
        }
        None => None,
    };
    if let Some(n) = newest.as_ref().filter(|n| n.sha256 == entry.sha256) {
        return Ok((n.clone(), false));
    }
    let added = PluginEntry {
        version: newest.map_or(1, |n| n.version + 1),
        ..entry.clone()
    };
    if plugins.get(entry.sha256.as_bytes())?.is_none() {
        plugins.insert(entry.sha256.as_bytes(), bytes)?;
    }
    registry.insert(keys::registered(&added.name, added.version), encode(&added))?;
    registry.insert(name, &added.version.to_be_bytes())?;
    Ok((added, true))
}

pub(crate) fn list(store: &SledStore) -> Result<Vec<PluginEntry>> {
    let mut out = Vec::new();
    for kv in store.registry.iter() {
        let (k, v) = kv.map_err(sled_err("read", "the plugin registry"))?;
        // `name` alone is the newest-version pointer; entries have `\0`.
        if !k.contains(&0) {
            continue;
        }
        out.push(decode(|| "an entry of the plugin registry".to_owned(), &v)?);
    }
    Ok(out)
}

/// Writes a swap in one transaction over the deployments, plugins, registry
/// and swaps trees. Each new revision must be the next of its version
/// (read inside the transaction), so a deploy or swap that got there first
/// makes this one `Stale` instead of overwriting it.
pub(crate) fn swap(store: &SledStore, w: &SwapWrite) -> Result<Result<SwapRecord, Conflict>> {
    use sled::Transactional;
    use sled::transaction::TransactionError;
    let what = format!("the swap of {}", w.record.target);
    let outcome = (
        &store.deployments,
        &store.plugins,
        &store.registry,
        &store.swaps,
    )
        .transaction(|(deployments, plugins, registry, swaps)| {
            for d in &w.deployments {
                let this = keys::deployment(&d.process, d.version, d.revision);
                let before = d
                    .revision
                    .checked_sub(1)
                    .map(|r| keys::deployment(&d.process, d.version, r));
                // Revision 1 may follow a bare-name deployment of older data.
                let previous_there = match &before {
                    Some(k) if d.revision > 1 => deployments.get(k)?.is_some(),
                    _ => d.revision == 1,
                };
                if deployments.get(&this)?.is_some() || !previous_there {
                    return Ok(Err(Conflict::Stale {
                        process: d.process.clone(),
                        version: d.version,
                    }));
                }
            }
            let mut record = w.record.clone();
            if let Some((entry, bytes)) = &w.register {
                let (added, _) = register_in(registry, plugins, entry, bytes)?;
                record.plugin = Some(format!("{}@{}", added.name, added.version));
            }
            for d in &w.deployments {
                deployments.insert(
                    keys::deployment(&d.process, d.version, d.revision),
                    encode(d),
                )?;
            }
            let next = match swaps.get(NEXT_SWAP)? {
                Some(v) => u64::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                    ConflictableTransactionError::Abort("the swap log's counter is damaged".into())
                })?),
                None => 1,
            };
            record.seq = next;
            swaps.insert(&keys::swap(next), encode(&record))?;
            swaps.insert(NEXT_SWAP, &(next + 1).to_be_bytes())?;
            Ok(Ok(record))
        });
    let done = match outcome {
        Ok(done) => done,
        Err(TransactionError::Abort(why)) => {
            return Err(Error::backend(
                "read",
                what,
                Box::<dyn std::error::Error + Send + Sync>::from(why),
            ));
        }
        Err(TransactionError::Storage(e)) => return Err(sled_err("write", what)(e)),
    };
    store.flush()?;
    Ok(done)
}

/// The key of the swap log's next sequence number: shorter than any record
/// key, so it sorts first and a scan of records skips it by length.
const NEXT_SWAP: &[u8] = b"n";

pub(crate) fn swaps(store: &SledStore) -> Result<Vec<SwapRecord>> {
    let mut out = Vec::new();
    for kv in store.swaps.iter() {
        let (k, v) = kv.map_err(sled_err("read", "the swap log"))?;
        if k.len() != 8 {
            continue;
        }
        out.push(decode(|| "a record of the swap log".to_owned(), &v)?);
    }
    Ok(out)
}

/// Writes one bindings revision as it is, if it is the next of its version.
pub(crate) fn put_deployment(
    store: &SledStore,
    d: &weft_store::Deployment,
) -> Result<std::result::Result<(), Conflict>> {
    let this = keys::deployment(&d.process, d.version, d.revision);
    let before = d
        .revision
        .checked_sub(1)
        .filter(|r| *r > 0)
        .map(|r| keys::deployment(&d.process, d.version, r));
    let what = || {
        format!(
            "bindings revision {} of {} v{}",
            d.revision, d.process, d.version
        )
    };
    let taken = store
        .deployments
        .contains_key(&this)
        .map_err(sled_err("read", what()))?;
    let previous = match &before {
        Some(k) => store
            .deployments
            .contains_key(k)
            .map_err(sled_err("read", what()))?,
        None => true,
    };
    if taken || !previous {
        return Ok(Err(Conflict::Stale {
            process: d.process.clone(),
            version: d.version,
        }));
    }
    store
        .deployments
        .insert(this, encode(d))
        .map_err(sled_err("write", what()))?;
    store.flush()?;
    Ok(Ok(()))
}

/// Appends a swap-log record with its own sequence number, and moves the
/// counter past it.
pub(crate) fn put_swap(store: &SledStore, record: &SwapRecord) -> Result<()> {
    let what = || format!("swap {} of the log", record.seq);
    store
        .swaps
        .insert(keys::swap(record.seq), encode(record))
        .map_err(sled_err("write", what()))?;
    let next = match store
        .swaps
        .get(NEXT_SWAP)
        .map_err(sled_err("read", what()))?
    {
        Some(v) => u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8])),
        None => 1,
    };
    if next <= record.seq {
        store
            .swaps
            .insert(NEXT_SWAP, &(record.seq + 1).to_be_bytes())
            .map_err(sled_err("write", what()))?;
    }
    store.flush()
}
