//! The schema: numbered migrations, applied in order under an advisory
//! lock, each in its own transaction with its row in `weft.schema_version`.
//! A node checks the version when it connects: it creates the schema in an
//! empty database, and refuses a schema older (run `weft store
//! migrate-schema`) or newer (upgrade weft) than the one it knows.

use deadpool_postgres::GenericClient;
use weft_store::{Error, Result};

use crate::pg_err;

/// The partitions a new schema gets unless told otherwise: instances are
/// spread over them by id, and nodes hold them on leases.
pub const DEFAULT_PARTITIONS: u32 = 64;

/// Every text key column sorts bytewise (`COLLATE "C"`), as sled's keys do:
/// ids in creation order, names in byte order, whatever the database's
/// locale.
const V1: &str = r#"
CREATE SCHEMA IF NOT EXISTS weft;
CREATE TABLE weft.meta (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    partitions integer NOT NULL CHECK (partitions > 0)
);
CREATE TABLE weft.partitions (
    p integer PRIMARY KEY,
    owner text COLLATE "C",
    epoch bigint NOT NULL DEFAULT 0,
    expires timestamptz NOT NULL DEFAULT '-infinity'
);
CREATE TABLE weft.nodes (
    node text COLLATE "C" PRIMARY KEY,
    url text NOT NULL,
    seen timestamptz NOT NULL DEFAULT now(),
    held integer NOT NULL DEFAULT 0
);
CREATE TABLE weft.processes (
    name text COLLATE "C", version integer, body bytea NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE weft.deployments (
    process text COLLATE "C", version integer, revision integer, body bytea NOT NULL,
    PRIMARY KEY (process, version, revision)
);
CREATE TABLE weft.plugins (sha256 text COLLATE "C" PRIMARY KEY, bytes bytea NOT NULL);
CREATE TABLE weft.registry (
    name text COLLATE "C", version integer, body bytea NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE weft.swaps (seq bigint PRIMARY KEY, body bytea NOT NULL);
CREATE TABLE weft.schedules (
    process text COLLATE "C", idx integer, at bigint NOT NULL,
    PRIMARY KEY (process, idx)
);
CREATE TABLE weft.instances (
    id text COLLATE "C" PRIMARY KEY,
    partition integer NOT NULL,
    seq bigint NOT NULL,
    status text NOT NULL,
    head bytea NOT NULL,
    data bytea
);
CREATE INDEX instances_by_status ON weft.instances (status, id);
CREATE TABLE weft.slots (
    instance text COLLATE "C", fan text COLLATE "C", idx integer, body bytea NOT NULL,
    PRIMARY KEY (instance, fan, idx)
);
CREATE TABLE weft.history (
    instance text COLLATE "C", seq bigint, body bytea NOT NULL,
    PRIMARY KEY (instance, seq)
);
CREATE TABLE weft.outbox (
    instance text COLLATE "C", key text COLLATE "C", partition integer NOT NULL,
    body bytea NOT NULL,
    PRIMARY KEY (instance, key)
);
CREATE INDEX outbox_by_partition ON weft.outbox (partition);
CREATE TABLE weft.results (key text COLLATE "C" PRIMARY KEY, body bytea NOT NULL);
CREATE TABLE weft.timers (
    partition integer, due bigint, instance text COLLATE "C", kind text COLLATE "C",
    key text COLLATE "C",
    PRIMARY KEY (partition, due, instance, kind, key)
);
CREATE INDEX timers_by_due ON weft.timers (due);
CREATE TABLE weft.tokens (token text COLLATE "C" PRIMARY KEY, body bytea NOT NULL);
CREATE TABLE weft.business_keys (
    process text COLLATE "C", key text COLLATE "C", instance text COLLATE "C" NOT NULL,
    PRIMARY KEY (process, key)
);
"#;

/// The migrations, oldest first: migration `i` makes version `i + 1`.
const MIGRATIONS: &[&str] = &[V1];

/// The schema version this build of weft reads and writes.
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// Serialises schema changes between nodes and `weft store migrate-schema`
/// (a session-level advisory lock).
const LOCK: i64 = 0x7765_6674_5f73_6368; // "weft_sch"

/// What the database holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaState {
    /// 0 when there is no weft schema.
    pub version: i32,
    pub partitions: u32,
}

/// The schema version and partition count in the database.
pub async fn state(c: &impl GenericClient) -> Result<SchemaState> {
    let exists = c
        .query_one("SELECT to_regclass('weft.schema_version') IS NOT NULL", &[])
        .await
        .map_err(pg_err("read", "the schema version"))?;
    if !exists.get::<_, bool>(0) {
        return Ok(SchemaState {
            version: 0,
            partitions: 0,
        });
    }
    let row = c
        .query_one(
            "SELECT (SELECT coalesce(max(version), 0) FROM weft.schema_version), \
                    (SELECT partitions FROM weft.meta)",
            &[],
        )
        .await
        .map_err(pg_err("read", "the schema version"))?;
    let partitions: Option<i32> = row.get(1);
    Ok(SchemaState {
        version: row.get(0),
        partitions: partitions.and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
    })
}

/// What `migrate` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    pub from: i32,
    pub to: i32,
    pub partitions: u32,
}

/// Creates the schema, or brings it up to [`VERSION`]. `partitions` is used
/// only when the schema is created; a schema newer than this build is
/// refused and left alone.
pub async fn migrate(c: &mut deadpool_postgres::Client, partitions: u32) -> Result<Migrated> {
    if partitions == 0 || partitions > 4096 {
        return Err(Error::backend(
            "create",
            "the schema",
            format!("partitions must be between 1 and 4096, not {partitions}"),
        ));
    }
    // Taken before the transaction, so the transaction's snapshot (and its
    // catalog lookups) come after the change of whoever held it.
    c.execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .await
        .map_err(pg_err("lock", "the schema"))?;
    let done = migrate_locked(c, partitions).await;
    let unlocked = c
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .await
        .map_err(pg_err("unlock", "the schema"));
    let done = done?;
    unlocked?;
    Ok(done)
}

async fn migrate_locked(c: &mut deadpool_postgres::Client, partitions: u32) -> Result<Migrated> {
    let tx = c
        .transaction()
        .await
        .map_err(pg_err("begin", "a schema change"))?;
    let before = state(&tx).await?;
    if before.version > VERSION {
        return Err(newer(before.version));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(before.version as usize) {
        let version = i as i32 + 1;
        tx.batch_execute(sql)
            .await
            .map_err(pg_err("apply", format!("schema migration {version}")))?;
        if version == 1 {
            tx.batch_execute("CREATE TABLE weft.schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
                .await
                .map_err(pg_err("create", "the schema version table"))?;
            let p = partitions as i32;
            tx.execute("INSERT INTO weft.meta (partitions) VALUES ($1)", &[&p])
                .await
                .map_err(pg_err("write", "the partition count"))?;
            tx.execute(
                "INSERT INTO weft.partitions (p) SELECT generate_series(0, $1 - 1)",
                &[&p],
            )
            .await
            .map_err(pg_err("write", "the partitions"))?;
        }
        tx.execute(
            "INSERT INTO weft.schema_version (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(pg_err("write", "the schema version"))?;
    }
    let after = state(&tx).await?;
    tx.commit()
        .await
        .map_err(pg_err("commit", "a schema change"))?;
    Ok(Migrated {
        from: before.version,
        to: after.version,
        partitions: after.partitions,
    })
}

/// The error for a schema this build does not know.
pub fn newer(version: i32) -> Error {
    Error::backend(
        "open",
        "the PostgreSQL store",
        format!(
            "its schema is version {version}, newer than this weft knows ({VERSION}): \
             run a newer weft"
        ),
    )
}

/// The error for a schema an upgrade must bring forward first.
pub fn older(version: i32) -> Error {
    Error::backend(
        "open",
        "the PostgreSQL store",
        format!(
            "its schema is version {version}, older than this weft's ({VERSION}): \
             run `weft store migrate-schema --store <url>` first"
        ),
    )
}
