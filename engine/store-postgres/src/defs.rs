//! Process definitions, bindings revisions, plugin components, the plugin
//! registry, the swap log and schedule marks. Writes that pick the next
//! number (a revision, a registry version, a swap's sequence) hold a
//! transaction-scoped advisory lock on what they number, so two nodes
//! deploying at once take one number each.

use deadpool_postgres::{GenericClient, Transaction};
use weft_model::Millis;
use weft_store::{
    Conflict, Definitions, Deploy, Deployed, Deployment, PluginEntry, ProcessRecord, Result,
    SwapRecord, SwapWrite,
};

use crate::{PgStore, decode, encode, pg_err};

/// The advisory lock of one numbering: a process version's revisions, a
/// plugin name's versions, or the swap log.
async fn lock_numbering(tx: &Transaction<'_>, what: &str) -> Result<()> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&what],
    )
    .await
    .map_err(pg_err("lock", what))?;
    Ok(())
}

async fn newest_deployment(
    c: &impl GenericClient,
    process: &str,
    version: u32,
) -> Result<Option<Deployment>> {
    let what = || format!("the bindings of process {process} v{version}");
    let row = c
        .query_opt(
            "SELECT body FROM weft.deployments WHERE process = $1 AND version = $2 \
             ORDER BY revision DESC LIMIT 1",
            &[&process, &(version as i32)],
        )
        .await
        .map_err(pg_err("read", what()))?;
    row.map(|r| decode(what, r.get(0))).transpose()
}

async fn stored_process(
    c: &impl GenericClient,
    name: &str,
    version: u32,
) -> Result<Option<ProcessRecord>> {
    let what = || format!("process {name} v{version}");
    let row = c
        .query_opt(
            "SELECT body FROM weft.processes WHERE name = $1 AND version = $2",
            &[&name, &(version as i32)],
        )
        .await
        .map_err(pg_err("read", what()))?;
    row.map(|r| decode(what, r.get(0))).transpose()
}

/// Writes one bindings revision inside `tx`.
async fn insert_deployment(tx: &Transaction<'_>, d: &Deployment, what: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO weft.deployments (process, version, revision, body) \
         VALUES ($1, $2, $3, $4)",
        &[
            &d.process,
            &(d.version as i32),
            &(d.revision as i32),
            &encode(d),
        ],
    )
    .await
    .map_err(pg_err("write", what))?;
    Ok(())
}

async fn put_plugin(tx: &Transaction<'_>, sha256: &str, bytes: &[u8]) -> Result<()> {
    tx.execute(
        "INSERT INTO weft.plugins (sha256, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&sha256, &bytes],
    )
    .await
    .map_err(pg_err("write", format!("plugin {sha256}")))?;
    Ok(())
}

/// Adds a registry entry inside `tx`, with the next version of its name.
async fn register_in(
    tx: &Transaction<'_>,
    entry: &PluginEntry,
    bytes: &[u8],
) -> Result<(PluginEntry, bool)> {
    lock_numbering(tx, &format!("registry:{}", entry.name)).await?;
    let what = || format!("plugin {} in the registry", entry.name);
    let newest: Option<PluginEntry> = tx
        .query_opt(
            "SELECT body FROM weft.registry WHERE name = $1 ORDER BY version DESC LIMIT 1",
            &[&entry.name],
        )
        .await
        .map_err(pg_err("read", what()))?
        .map(|r| decode(what, r.get(0)))
        .transpose()?;
    if let Some(n) = newest.as_ref().filter(|n| n.sha256 == entry.sha256) {
        return Ok((n.clone(), false));
    }
    let added = PluginEntry {
        version: newest.map_or(1, |n| n.version + 1),
        ..entry.clone()
    };
    put_plugin(tx, &entry.sha256, bytes).await?;
    tx.execute(
        "INSERT INTO weft.registry (name, version, body) VALUES ($1, $2, $3)",
        &[&added.name, &(added.version as i32), &encode(&added)],
    )
    .await
    .map_err(pg_err("write", what()))?;
    Ok((added, true))
}

impl Definitions for PgStore {
    fn put_process(&self, p: &ProcessRecord) -> Result<Result<(), Conflict>> {
        let what = || format!("process {} v{}", p.name, p.version);
        self.run(async {
            let c = self.client("a process").await?;
            let inserted = c
                .execute(
                    "INSERT INTO weft.processes (name, version, body) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                    &[&p.name, &(p.version as i32), &encode(p)],
                )
                .await
                .map_err(pg_err("write", what()))?;
            if inserted == 1 {
                return Ok(Ok(()));
            }
            let stored = stored_process(&c, &p.name, p.version).await?;
            Ok(match stored {
                Some(s) if s.definition != p.definition => Err(Conflict::ProcessVersion {
                    name: p.name.clone(),
                    version: p.version,
                }),
                _ => Ok(()),
            })
        })
    }

    fn process(&self, name: &str, version: u32) -> Result<Option<ProcessRecord>> {
        self.run(async {
            let c = self.client("a process").await?;
            stored_process(&c, name, version).await
        })
    }

    fn latest_process(&self, name: &str) -> Result<Option<ProcessRecord>> {
        let what = || format!("process {name}");
        self.run(async {
            let c = self.client("a process").await?;
            let row = c
                .query_opt(
                    "SELECT body FROM weft.processes WHERE name = $1 \
                     ORDER BY version DESC LIMIT 1",
                    &[&name],
                )
                .await
                .map_err(pg_err("read", what()))?;
            row.map(|r| decode(what, r.get(0))).transpose()
        })
    }

    fn processes(&self) -> Result<Vec<ProcessRecord>> {
        self.run(async {
            let c = self.client("processes").await?;
            let rows = c
                .query(
                    "SELECT body FROM weft.processes ORDER BY name, version",
                    &[],
                )
                .await
                .map_err(pg_err("list", "processes"))?;
            rows.iter()
                .map(|r| decode(|| "process".to_owned(), r.get(0)))
                .collect()
        })
    }

    fn deploy(&self, d: &Deploy) -> Result<Result<Deployed, Conflict>> {
        let p = &d.process;
        let what = format!("the deploy of process {} v{}", p.name, p.version);
        self.run(async {
            let mut c = self.client(&what).await?;
            let tx = c.transaction().await.map_err(pg_err("begin", &what))?;
            lock_numbering(&tx, &format!("deployments:{}:{}", p.version, p.name)).await?;
            let latest = newest_deployment(&tx, &p.name, p.version).await?;
            let stored = stored_process(&tx, &p.name, p.version).await?;
            if let Some(s) = &stored
                && s.definition != p.definition
            {
                return Ok(Err(Conflict::ProcessVersion {
                    name: p.name.clone(),
                    version: p.version,
                }));
            }
            if let Some(old) = &latest
                && d.same_as(old)
                && stored.is_some()
            {
                return Ok(Ok(Deployed {
                    revision: old.revision,
                    new_version: false,
                    new_revision: false,
                }));
            }
            let revision = latest.as_ref().map_or(1, |old| old.revision + 1);
            if stored.is_none() {
                tx.execute(
                    "INSERT INTO weft.processes (name, version, body) VALUES ($1, $2, $3)",
                    &[&p.name, &(p.version as i32), &encode(p)],
                )
                .await
                .map_err(pg_err("write", &what))?;
            }
            insert_deployment(&tx, &d.deployment(revision), &what).await?;
            for blob in &d.plugins {
                put_plugin(&tx, &blob.sha256, &blob.bytes).await?;
            }
            tx.commit().await.map_err(pg_err("commit", &what))?;
            Ok(Ok(Deployed {
                revision,
                new_version: stored.is_none(),
                new_revision: true,
            }))
        })
    }

    fn deployment(&self, process: &str, version: u32) -> Result<Option<Deployment>> {
        self.run(async {
            let c = self.client("bindings").await?;
            newest_deployment(&c, process, version).await
        })
    }

    fn deployment_revision(
        &self,
        process: &str,
        version: u32,
        revision: u32,
    ) -> Result<Option<Deployment>> {
        let what = || format!("bindings revision {revision} of process {process} v{version}");
        self.run(async {
            let c = self.client("bindings").await?;
            let row = c
                .query_opt(
                    "SELECT body FROM weft.deployments \
                     WHERE process = $1 AND version = $2 AND revision = $3",
                    &[&process, &(version as i32), &(revision as i32)],
                )
                .await
                .map_err(pg_err("read", what()))?;
            row.map(|r| decode(what, r.get(0))).transpose()
        })
    }

    fn plugin(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        self.run(async {
            let c = self.client("a plugin").await?;
            let row = c
                .query_opt(
                    "SELECT bytes FROM weft.plugins WHERE sha256 = $1",
                    &[&sha256],
                )
                .await
                .map_err(pg_err("read", format!("plugin {sha256}")))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn register_plugin(&self, entry: &PluginEntry, bytes: &[u8]) -> Result<(PluginEntry, bool)> {
        let what = format!("plugin {} in the registry", entry.name);
        self.run(async {
            let mut c = self.client(&what).await?;
            let tx = c.transaction().await.map_err(pg_err("begin", &what))?;
            let added = register_in(&tx, entry, bytes).await?;
            tx.commit().await.map_err(pg_err("commit", &what))?;
            Ok(added)
        })
    }

    fn registry(&self) -> Result<Vec<PluginEntry>> {
        self.run(async {
            let c = self.client("the plugin registry").await?;
            let rows = c
                .query("SELECT body FROM weft.registry ORDER BY name, version", &[])
                .await
                .map_err(pg_err("read", "the plugin registry"))?;
            rows.iter()
                .map(|r| decode(|| "an entry of the plugin registry".to_owned(), r.get(0)))
                .collect()
        })
    }

    fn swap(&self, w: &SwapWrite) -> Result<Result<SwapRecord, Conflict>> {
        let what = format!("the swap of {}", w.record.target);
        self.run(async {
            let mut c = self.client(&what).await?;
            let tx = c.transaction().await.map_err(pg_err("begin", &what))?;
            // Locks in one order (sorted), so two swaps never deadlock.
            let mut versions: Vec<(String, u32)> = w
                .deployments
                .iter()
                .map(|d| (d.process.clone(), d.version))
                .collect();
            versions.sort();
            versions.dedup();
            for (process, version) in &versions {
                lock_numbering(&tx, &format!("deployments:{version}:{process}")).await?;
            }
            for d in &w.deployments {
                let newest = newest_deployment(&tx, &d.process, d.version).await?;
                let next = newest.map_or(1, |n| n.revision + 1);
                if d.revision != next {
                    return Ok(Err(Conflict::Stale {
                        process: d.process.clone(),
                        version: d.version,
                    }));
                }
            }
            let mut record = w.record.clone();
            if let Some((entry, bytes)) = &w.register {
                let (added, _) = register_in(&tx, entry, bytes).await?;
                record.plugin = Some(format!("{}@{}", added.name, added.version));
            }
            for d in &w.deployments {
                insert_deployment(&tx, d, &what).await?;
            }
            lock_numbering(&tx, "swaps").await?;
            let next: i64 = tx
                .query_one("SELECT coalesce(max(seq), 0) + 1 FROM weft.swaps", &[])
                .await
                .map_err(pg_err("read", "the swap log"))?
                .get(0);
            record.seq = next as u64;
            tx.execute(
                "INSERT INTO weft.swaps (seq, body) VALUES ($1, $2)",
                &[&next, &encode(&record)],
            )
            .await
            .map_err(pg_err("write", &what))?;
            tx.commit().await.map_err(pg_err("commit", &what))?;
            Ok(Ok(record))
        })
    }

    fn swaps(&self) -> Result<Vec<SwapRecord>> {
        self.run(async {
            let c = self.client("the swap log").await?;
            let rows = c
                .query("SELECT body FROM weft.swaps ORDER BY seq", &[])
                .await
                .map_err(pg_err("read", "the swap log"))?;
            rows.iter()
                .map(|r| decode(|| "a record of the swap log".to_owned(), r.get(0)))
                .collect()
        })
    }

    fn schedule_mark(&self, process: &str, index: u32) -> Result<Option<Millis>> {
        let what = || format!("the mark of schedule {index} of {process}");
        self.run(async {
            let c = self.client("a schedule").await?;
            let row = c
                .query_opt(
                    "SELECT at FROM weft.schedules WHERE process = $1 AND idx = $2",
                    &[&process, &(index as i32)],
                )
                .await
                .map_err(pg_err("read", what()))?;
            Ok(row.map(|r| Millis(r.get::<_, i64>(0) as u64)))
        })
    }

    fn put_deployment(&self, d: &Deployment) -> Result<Result<(), Conflict>> {
        let what = format!(
            "bindings revision {} of {} v{}",
            d.revision, d.process, d.version
        );
        self.run(async {
            let mut c = self.client(&what).await?;
            let tx = c.transaction().await.map_err(pg_err("begin", &what))?;
            lock_numbering(&tx, &format!("deployments:{}:{}", d.version, d.process)).await?;
            let newest = newest_deployment(&tx, &d.process, d.version).await?;
            if newest.map_or(1, |n| n.revision + 1) != d.revision {
                return Ok(Err(Conflict::Stale {
                    process: d.process.clone(),
                    version: d.version,
                }));
            }
            insert_deployment(&tx, d, &what).await?;
            tx.commit().await.map_err(pg_err("commit", &what))?;
            Ok(Ok(()))
        })
    }

    fn put_plugin(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        self.run(async {
            let c = self.client("a plugin").await?;
            c.execute(
                "INSERT INTO weft.plugins (sha256, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&sha256, &bytes],
            )
            .await
            .map_err(pg_err("write", format!("plugin {sha256}")))?;
            Ok(())
        })
    }

    fn put_swap(&self, record: &SwapRecord) -> Result<()> {
        self.run(async {
            let c = self.client("the swap log").await?;
            c.execute(
                "INSERT INTO weft.swaps (seq, body) VALUES ($1, $2)",
                &[&(record.seq as i64), &encode(record)],
            )
            .await
            .map_err(pg_err("write", format!("swap {} of the log", record.seq)))?;
            Ok(())
        })
    }

    fn put_schedule_mark(&self, process: &str, index: u32, at: Millis) -> Result<()> {
        let what = format!("the mark of schedule {index} of {process}");
        self.run(async {
            let c = self.client("a schedule").await?;
            c.execute(
                "INSERT INTO weft.schedules (process, idx, at) VALUES ($1, $2, $3) \
                 ON CONFLICT (process, idx) DO UPDATE SET at = excluded.at",
                &[&process, &(index as i32), &(at.0 as i64)],
            )
            .await
            .map_err(pg_err("write", what))?;
            Ok(())
        })
    }
}
