//! `weft store`: the PostgreSQL store's schema.

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
    }
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
