//! weft-store-postgres: the store for several weft nodes on one PostgreSQL.
//!
//! The same contract as the embedded sled store (`weft-store`'s traits and
//! conformance suite), mapped to tables (see `schema`). Instances are
//! spread over a fixed number of partitions by a hash of their id; a node
//! holds partitions on leases that expire by the database's clock, and
//! every acquisition bumps the partition's epoch (`lease`). A node's batch
//! of commits is one transaction that locks the partitions it touches for
//! share and checks their epochs and leases, locks and compares each
//! instance's `seq`, then writes one statement per table from arrays,
//! pipelined (`journal`): a node that lost a partition commits nothing to
//! it, whatever it had in flight.
//!
//! The store traits are synchronous: calls run their futures on the
//! caller's thread against connections driven by the store's own tokio
//! runtime, so they work from a blocking pool thread, a plain thread or an
//! async task alike (as sled's disk writes do, they block the caller).

mod defs;
mod journal;
mod lease;
mod read;
pub mod schema;
pub mod testing;

use std::future::Future;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use weft_model::InstanceId;
use weft_store::{Error, Result};

pub use lease::{Leases, Ownership};
pub use schema::{DEFAULT_PARTITIONS, Migrated, SchemaState};

/// How a node connects and holds its partitions.
#[derive(Debug, Clone)]
pub struct Options {
    /// This node's name in the lease table: unique among live nodes.
    pub node: String,
    /// How long a lease lasts without renewal, by the database's clock.
    pub lease_ttl: std::time::Duration,
    /// Connections in the pool.
    pub connections: usize,
    /// Partitions of a schema this node creates.
    pub partitions: u32,
    /// Create the schema in an empty database (a schema that is there but
    /// older is never upgraded implicitly).
    pub create: bool,
    /// Renew and take leases in the background, every third of the lease
    /// (tests turn it off and call [`PgStore::tick`] themselves).
    pub keep_leases: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            node: default_node_name(),
            lease_ttl: std::time::Duration::from_secs(10),
            connections: 8,
            partitions: DEFAULT_PARTITIONS,
            create: true,
            keep_leases: true,
        }
    }
}

/// `host-pid`: unique among the processes of a machine.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Whether `url` names a PostgreSQL store rather than a data directory.
pub fn is_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The partition of an instance: FNV-1a (64-bit) of its id, modulo the
/// partition count. Fixed forever: every node and version must agree.
pub fn partition_of(id: &InstanceId, partitions: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_str().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % u64::from(partitions.max(1))) as u32
}

/// A PostgreSQL failure of `op` on `what`.
pub(crate) fn pg_err(
    op: &'static str,
    what: impl std::fmt::Display,
) -> impl FnOnce(tokio_postgres::Error) -> Error {
    move |source| Error::backend(op, what.to_string(), describe(source))
}

/// A pool failure (no connection) of `op` on `what`.
pub(crate) fn pool_err(
    op: &'static str,
    what: impl std::fmt::Display,
) -> impl FnOnce(deadpool_postgres::PoolError) -> Error {
    move |source| Error::backend(op, what.to_string(), source.to_string())
}

/// tokio-postgres prints "db error" for a server error; the server's own
/// message is what says what happened.
fn describe(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => match std::error::Error::source(&e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    what: impl FnOnce() -> String,
    bytes: &[u8],
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Corrupt {
        what: what(),
        source,
    })
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("invariant: store types serialize to JSON")
}

pub(crate) struct Inner {
    pool: Pool,
    /// The lease keeper's own connection: renewals never queue behind the
    /// engine's reads and writes.
    lease_pool: Pool,
    pub(crate) leases: Arc<Leases>,
    pub(crate) partitions: u32,
    /// One batch at a time from this node, as with sled: the checks of a
    /// batch read what earlier batches wrote.
    commit_lock: tokio::sync::Mutex<()>,
    runtime: Option<tokio::runtime::Runtime>,
    where_: String,
}

/// A node's handle on the PostgreSQL store.
pub struct PgStore {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("at", &self.inner.where_)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Dropping a runtime blocks, which tokio refuses inside another
            // runtime; its tasks (connections, the lease keeper) just stop.
            rt.shutdown_background();
        }
    }
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl PgStore {
    /// Connects to the database at `url`, checks (or, in an empty database,
    /// creates) the schema, and takes this node's share of the partitions.
    pub fn connect(url: &str, options: Options) -> Result<PgStore> {
        let where_ = redact(url);
        let open_err = |source: String| Error::Open {
            path: where_.clone(),
            source: source.into(),
        };
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| open_err(format!("not a PostgreSQL URL: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("weft-postgres")
            .enable_all()
            .build()
            .map_err(|e| open_err(e.to_string()))?;
        let pool_of = |size: usize| {
            let manager = Manager::from_config(
                config.clone(),
                tokio_postgres::NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(size)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(std::time::Duration::from_secs(30)))
                .create_timeout(Some(std::time::Duration::from_secs(10)))
                .build()
                .map_err(|e| open_err(e.to_string()))
        };
        let pool = pool_of(options.connections.max(2))?;
        let lease_pool = pool_of(1)?;
        let handle = runtime.handle().clone();
        let state = on(&handle, async {
            let mut c = pool.get().await.map_err(|e| open_err(e.to_string()))?;
            let s = schema::state(&c).await?;
            if s.version == 0 && options.create {
                schema::migrate(&mut c, options.partitions).await?;
                return schema::state(&c).await;
            }
            Ok(s)
        })?;
        match state.version {
            0 => {
                return Err(open_err(
                    "there is no weft schema in this database: run `weft store migrate-schema \
                     --store <url>`"
                        .into(),
                ));
            }
            v if v > schema::VERSION => return Err(schema::newer(v)),
            v if v < schema::VERSION => return Err(schema::older(v)),
            _ => {}
        }
        let leases = Arc::new(Leases::new(
            options.node.clone(),
            options.lease_ttl,
            state.partitions,
        ));
        let inner = Arc::new(Inner {
            pool,
            lease_pool,
            leases: leases.clone(),
            partitions: state.partitions,
            commit_lock: tokio::sync::Mutex::new(()),
            runtime: Some(runtime),
            where_,
        });
        let store = PgStore { inner };
        // The first share is taken before the store is handed out, so an
        // engine starting on it finds its partitions' work at once.
        store.run(lease::tick(&store.inner.lease_pool, &leases))?;
        if options.keep_leases {
            handle.spawn(lease::keep(store.inner.lease_pool.clone(), leases));
        }
        Ok(store)
    }

    /// Creates the schema at `url`, or upgrades it to this build's.
    pub fn migrate_schema(url: &str, partitions: u32) -> Result<Migrated> {
        let where_ = redact(url);
        let config: tokio_postgres::Config =
            url.parse()
                .map_err(|e: tokio_postgres::Error| Error::Open {
                    path: where_.clone(),
                    source: format!("not a PostgreSQL URL: {e}").into(),
                })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::backend("start", "a runtime", e))?;
        runtime.block_on(async {
            let manager = Manager::from_config(
                config,
                tokio_postgres::NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            let pool = Pool::builder(manager)
                .max_size(1)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .build()
                .map_err(|e| Error::backend("connect", where_.clone(), e.to_string()))?;
            let mut c = pool.get().await.map_err(|e| Error::Open {
                path: where_.clone(),
                source: e.to_string().into(),
            })?;
            schema::migrate(&mut c, partitions).await
        })
    }

    /// The partitions of the schema.
    pub fn partitions(&self) -> u32 {
        self.inner.partitions
    }

    /// The partition an instance lives in.
    pub fn partition(&self, id: &InstanceId) -> u32 {
        partition_of(id, self.inner.partitions)
    }

    /// What this node holds, as the lease keeper last saw it.
    pub fn ownership(&self) -> Ownership {
        self.inner.leases.ownership()
    }

    /// Renews and takes partitions now, instead of at the keeper's next
    /// round.
    pub fn tick(&self) -> Result<()> {
        self.run(lease::tick(&self.inner.lease_pool, &self.inner.leases))
    }

    /// Gives up every lease this node holds (a graceful stop), so other
    /// nodes take its partitions at once instead of after the lease.
    pub fn release(&self) -> Result<()> {
        self.run(lease::release(&self.inner.lease_pool, &self.inner.leases))
    }

    /// Tells the other nodes where this one's API answers, so they can
    /// forward requests for the instances it drives.
    pub fn advertise(&self, url: &str) -> Result<()> {
        let node = self.inner.leases.node().to_owned();
        self.run(async {
            let c = self.client("the node table").await?;
            c.execute(
                "INSERT INTO weft.nodes (node, url) VALUES ($1, $2) \
                 ON CONFLICT (node) DO UPDATE SET url = excluded.url, seen = now()",
                &[&node, &url],
            )
            .await
            .map_err(pg_err("write", format!("node {node}")))?;
            Ok(())
        })
    }

    /// The API of the live node holding `id`'s partition, as it advertised
    /// it; `None` when no node holds it now, or the holder did not say.
    pub fn owner_url(&self, id: &InstanceId) -> Result<Option<String>> {
        let p = self.partition(id) as i32;
        self.run(async {
            let c = self.client("the node table").await?;
            let row = c
                .query_opt(
                    "SELECT n.url FROM weft.partitions p JOIN weft.nodes n ON n.node = p.owner \
                     WHERE p.p = $1 AND p.expires > now()",
                    &[&p],
                )
                .await
                .map_err(pg_err("read", format!("the owner of partition {p}")))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    /// Runs `fut` to completion on the calling thread, inside the store's
    /// runtime (whose thread drives the connections).
    pub(crate) fn run<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let handle = match &self.inner.runtime {
            Some(rt) => rt.handle().clone(),
            None => {
                return Err(Error::backend(
                    "use",
                    "the PostgreSQL store",
                    "it is closed",
                ));
            }
        };
        on(&handle, fut)
    }

    pub(crate) async fn client(&self, what: &str) -> Result<deadpool_postgres::Object> {
        self.inner
            .pool
            .get()
            .await
            .map_err(pool_err("connect", format!("for {what}")))
    }
}

/// Runs `fut` on this thread with `handle`'s runtime entered (for its
/// reactor and timers), parking between polls.
fn on<T>(handle: &tokio::runtime::Handle, fut: impl Future<Output = T>) -> T {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let _entered = handle.enter();
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    // Outside tokio's cooperative budget: called from inside a task whose
    // budget is spent, a budgeted future would yield here forever.
    let mut fut = std::pin::pin!(tokio::task::unconstrained(fut));
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
