//! `weft store`: the PostgreSQL store's schema, and copying everything
//! from one store to another.

use std::path::Path;
use std::sync::Arc;

use weft_store::Store;
use weft_store_postgres::PgStore;

use crate::args::StoreCommand;
use crate::{exit, render};

pub async fn store(command: StoreCommand) -> anyhow::Result<u8> {
    match command {
        StoreCommand::MigrateSchema { url, partitions } => {
            require_url(&url)?;
            let done =
                tokio::task::spawn_blocking(move || PgStore::migrate_schema(&url, partitions))
                    .await??;
            if done.from == done.to {
                render::say(format_args!(
                    "the schema is at version {} ({} partitions): nothing to do",
                    done.to, done.partitions
                ));
            } else if done.from == 0 {
                render::say(format_args!(
                    "created the schema, version {}, with {} partitions",
                    done.to, done.partitions
                ));
            } else {
                render::say(format_args!(
                    "upgraded the schema from version {} to {}",
                    done.from, done.to
                ));
            }
            Ok(exit::OK)
        }
        StoreCommand::Copy { from, to } => {
            tokio::task::spawn_blocking(move || copy(&from, &to)).await??;
            Ok(exit::OK)
        }
    }
}

/// A store opened for a copy, and how to let go of it.
enum Opened {
    Sled(Arc<weft_store_sled::SledStore>),
    Pg(Arc<PgStore>),
}

impl Opened {
    fn store(&self) -> Arc<dyn Store> {
        match self {
            Opened::Sled(s) => s.clone(),
            Opened::Pg(p) => p.clone(),
        }
    }

    fn close(self) -> anyhow::Result<()> {
        match self {
            Opened::Sled(s) => {
                if let Ok(s) = Arc::try_unwrap(s) {
                    s.close()?;
                }
            }
            Opened::Pg(p) => p.release()?,
        }
        Ok(())
    }
}

/// Opens one side of a copy. A PostgreSQL store is joined as a node of
/// its own, which must hold every partition: no other node may be running.
fn open(place: &str, target: bool) -> anyhow::Result<Opened> {
    if weft_store_postgres::is_url(place) {
        let pg = PgStore::connect(
            place,
            weft_store_postgres::Options {
                node: format!("weft-store-copy-{}", std::process::id()),
                create: target,
                // Renewed while the copy runs, however long it takes.
                keep_leases: true,
                ..weft_store_postgres::Options::default()
            },
        )?;
        let held = pg.ownership().held.len() as u32;
        if held != pg.partitions() {
            let _ = pg.release();
            anyhow::bail!(
                "weft nodes are running on {} (this copy could take {held} of {} partitions): \
                 stop them first",
                weft_store_postgres::redact(place),
                pg.partitions()
            );
        }
        return Ok(Opened::Pg(Arc::new(pg)));
    }
    let dir = Path::new(place);
    if target && dir.join("db").exists() {
        anyhow::bail!(
            "{} already holds weft data: copy into a new directory",
            dir.display()
        );
    }
    Ok(Opened::Sled(super::open_store(dir, target)?))
}

fn copy(from: &str, to: &str) -> anyhow::Result<()> {
    if from == to {
        anyhow::bail!("--from and --to are the same store");
    }
    let source = open(from, false)?;
    let target = open(to, true)?;
    let made_dir = matches!(target, Opened::Sled(_));
    let outcome = weft_store::transfer::copy(&*source.store(), &*target.store());
    let closed = (source.close(), target.close());
    match outcome {
        Ok(c) => {
            closed.0?;
            closed.1?;
            render::say(format_args!(
                "copied {} process version{}, {} bindings revision{}, {} plugin component{} and \
                 {} instance{} ({} history records) from {} to {}",
                c.processes,
                plural(c.processes),
                c.revisions,
                plural(c.revisions),
                c.plugins,
                plural(c.plugins),
                c.instances,
                plural(c.instances),
                c.records,
                weft_store_postgres::redact(from),
                weft_store_postgres::redact(to),
            ));
            Ok(())
        }
        Err(e) => {
            // A directory this copy made goes; a database keeps what was
            // written, and says so.
            if made_dir {
                let db = Path::new(to).join("db");
                let _ = std::fs::remove_dir_all(&db);
                anyhow::bail!("the copy failed, and {} was removed: {e}", db.display());
            }
            anyhow::bail!(
                "the copy failed part way: {e}; the database now holds part of it — empty it \
                 (DROP SCHEMA weft CASCADE) before copying again"
            )
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Refuses what is not a PostgreSQL URL, saying what is.
pub fn require_url(url: &str) -> anyhow::Result<()> {
    if !weft_store_postgres::is_url(url) {
        anyhow::bail!(
            "--store takes a PostgreSQL URL (postgres://user@host:port/db), not '{url}'; the \
             embedded store is the data directory's (--data)"
        );
    }
    Ok(())
}
