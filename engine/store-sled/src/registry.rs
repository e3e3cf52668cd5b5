//! The plugin registry in sled: entries by name and version, the newest
//! version's number under the bare name, the bytes in `plugins`.

use weft_store::{Error, PluginEntry, Result, keys};

use crate::{SledStore, decode, encode, sled_err};

pub(crate) fn register(
    store: &SledStore,
    entry: &PluginEntry,
    bytes: &[u8],
) -> Result<(PluginEntry, bool)> {
    use sled::Transactional;
    use sled::transaction::{ConflictableTransactionError, TransactionError};
    let name = entry.name.as_bytes();
    let what = format!("plugin {} in the registry", entry.name);
    // The newest version is read and bumped inside the transaction, so
    // two adds racing under one name cannot take the same version.
    let outcome = (&store.registry, &store.plugins).transaction(|(registry, plugins)| {
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
    });
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
