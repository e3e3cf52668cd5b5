//! Partition leases. Every partition has a row: its owner, its epoch, and
//! when its lease expires by the database's clock (`now()`), so nodes'
//! clocks never matter. Taking a partition — free, expired, or left by a
//! node of the same name — bumps its epoch; renewing keeps it, and only
//! succeeds while the epoch is the one this node took. Each batch of
//! commits checks the epochs of its partitions under a share lock
//! (`journal`), so a node that lost a partition, however long it was paused,
//! commits nothing to it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use weft_store::Result;

use crate::{pg_err, pool_err};

/// What this node holds: partition to the epoch it took it at.
#[derive(Debug)]
pub struct Leases {
    node: String,
    ttl: std::time::Duration,
    partitions: u32,
    held: Mutex<BTreeMap<u32, i64>>,
}

/// A copy of what a node holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    pub node: String,
    pub partitions: u32,
    /// Partition to epoch.
    pub held: BTreeMap<u32, i64>,
}

impl Ownership {
    pub fn holds(&self, partition: u32) -> bool {
        self.held.contains_key(&partition)
    }
}

impl Leases {
    pub(crate) fn new(node: String, ttl: std::time::Duration, partitions: u32) -> Leases {
        Leases {
            node,
            ttl,
            partitions,
            held: Mutex::new(BTreeMap::new()),
        }
    }

    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    pub(crate) fn ownership(&self) -> Ownership {
        Ownership {
            node: self.node.clone(),
            partitions: self.partitions,
            held: self.lock().clone(),
        }
    }

    /// The partitions held now, for queries.
    pub(crate) fn held(&self) -> Vec<i32> {
        self.lock().keys().map(|&p| p as i32).collect()
    }

    /// The epoch this node holds `partition` at.
    pub(crate) fn epoch(&self, partition: u32) -> Option<i64> {
        self.lock().get(&partition).copied()
    }

    /// Forgets a partition a commit found taken.
    pub(crate) fn lost(&self, partition: u32) {
        if self.lock().remove(&partition).is_some() {
            tracing::warn!(
                partition,
                node = %self.node,
                "lost the lease of a partition to another node"
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, i64>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One round: say this node is alive; renew what is held (dropping what
/// another node took); then move towards a fair share of the live nodes —
/// taking free or expired partitions, or handing over those above the
/// share when a node joined.
pub(crate) async fn tick(pool: &deadpool_postgres::Pool, leases: &Leases) -> Result<()> {
    let mut c = pool
        .get()
        .await
        .map_err(pool_err("connect", "for leases"))?;
    let holding = leases.lock().len() as i32;
    c.execute(
        "INSERT INTO weft.nodes (node, url, held) VALUES ($1, '', $2) \
         ON CONFLICT (node) DO UPDATE SET seen = now(), held = excluded.held",
        &[&leases.node, &holding],
    )
    .await
    .map_err(pg_err("write", format!("node {}", leases.node)))?;
    let held = leases.lock().clone();
    if !held.is_empty() {
        let ps: Vec<i32> = held.keys().map(|&p| p as i32).collect();
        let epochs: Vec<i64> = held.values().copied().collect();
        let tx = c
            .transaction()
            .await
            .map_err(pg_err("begin", "a lease renewal"))?;
        lock_in_order(&tx, &ps).await?;
        let renewed = tx
            .query(
                "UPDATE weft.partitions t \
                 SET expires = now() + $2::bigint * interval '1 millisecond' \
                 FROM unnest($3::int[], $4::bigint[]) AS h(p, epoch) \
                 WHERE t.p = h.p AND t.epoch = h.epoch AND t.owner = $1 \
                 RETURNING t.p",
                &[&leases.node, &leases.ttl_ms(), &ps, &epochs],
            )
            .await
            .map_err(pg_err("renew", "partition leases"))?;
        tx.commit()
            .await
            .map_err(pg_err("commit", "a lease renewal"))?;
        let kept: std::collections::BTreeSet<u32> =
            renewed.iter().map(|r| r.get::<_, i32>(0) as u32).collect();
        for p in held.keys().filter(|p| !kept.contains(p)) {
            leases.lost(*p);
        }
    }
    let row = c
        .query_one(
            "SELECT count(*), coalesce(min(held), 0) FROM weft.nodes \
             WHERE node <> $1 AND seen > now() - $2::bigint * interval '1 millisecond'",
            &[&leases.node, &leases.ttl_ms()],
        )
        .await
        .map_err(pg_err("read", "the live nodes"))?;
    let (others, fewest): (i64, i32) = (row.get(0), row.get(1));
    let nodes = others as u64 + 1;
    let share = u64::from(leases.partitions).div_ceil(nodes);
    let floor = u64::from(leases.partitions) / nodes;
    let have = leases.lock().len() as u64;
    // Above the share: a node joined. Above the floor while another live
    // node is below it: that node can find nothing free (with 64
    // partitions and 9 nodes, eight holding 8 leave the ninth none).
    let keep = if have > share {
        share
    } else if have > floor && (fewest.max(0) as u64) < floor {
        floor
    } else {
        have
    };
    if have > keep {
        // Handed over (the highest), taken by the others at their next round.
        let extra: Vec<(i32, i64)> = leases
            .lock()
            .iter()
            .rev()
            .take((have - keep) as usize)
            .map(|(&p, &e)| (p as i32, e))
            .collect();
        give_up(&mut c, leases, &extra).await?;
        tracing::info!(node = %leases.node, gave = extra.len(), nodes, "handed over partitions");
        return Ok(());
    }
    if have >= share {
        return Ok(());
    }
    let want = (share - have) as i64;
    let taken = c
        .query(
            "UPDATE weft.partitions t \
             SET owner = $1, epoch = t.epoch + 1, \
                 expires = now() + $2::bigint * interval '1 millisecond' \
             WHERE t.p IN (SELECT p FROM weft.partitions \
                           WHERE (owner IS NULL OR expires <= now() OR owner = $1) \
                             AND NOT (p = ANY($4::int[])) \
                           ORDER BY p LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING t.p, t.epoch",
            &[&leases.node, &leases.ttl_ms(), &want, &leases.held()],
        )
        .await
        .map_err(pg_err("take", "partitions"))?;
    if !taken.is_empty() {
        let mut held = leases.lock();
        for r in &taken {
            held.insert(r.get::<_, i32>(0) as u32, r.get(1));
        }
        tracing::info!(
            node = %leases.node,
            took = taken.len(),
            holds = held.len(),
            "took partitions"
        );
    }
    Ok(())
}

/// Gives up every lease held, and says this node is gone.
pub(crate) async fn release(pool: &deadpool_postgres::Pool, leases: &Leases) -> Result<()> {
    let mut c = pool
        .get()
        .await
        .map_err(pool_err("connect", "for leases"))?;
    let held: Vec<(i32, i64)> = leases.lock().iter().map(|(&p, &e)| (p as i32, e)).collect();
    give_up(&mut c, leases, &held).await?;
    c.execute(
        "UPDATE weft.nodes SET seen = '-infinity' WHERE node = $1",
        &[&leases.node],
    )
    .await
    .map_err(pg_err("write", format!("node {}", leases.node)))?;
    Ok(())
}

/// Frees `partitions` (at the epochs held) for other nodes, forgetting
/// them first: nothing more is committed to them from this node.
async fn give_up(
    c: &mut deadpool_postgres::Object,
    leases: &Leases,
    partitions: &[(i32, i64)],
) -> Result<()> {
    {
        let mut held = leases.lock();
        for (p, _) in partitions {
            held.remove(&(*p as u32));
        }
    }
    let (ps, epochs): (Vec<i32>, Vec<i64>) = partitions.iter().copied().unzip();
    let tx = c
        .transaction()
        .await
        .map_err(pg_err("begin", "a lease release"))?;
    lock_in_order(&tx, &ps).await?;
    tx.execute(
        "UPDATE weft.partitions t SET owner = NULL, expires = '-infinity' \
         FROM unnest($2::int[], $3::bigint[]) AS h(p, epoch) \
         WHERE t.p = h.p AND t.epoch = h.epoch AND t.owner = $1",
        &[&leases.node, &ps, &epochs],
    )
    .await
    .map_err(pg_err("release", "partition leases"))?;
    tx.commit()
        .await
        .map_err(pg_err("commit", "a lease release"))?;
    Ok(())
}

/// Locks partition rows in partition order, as a batch of commits takes
/// them (`FOR SHARE ... ORDER BY p`): a renewal and a batch of the same node
/// then never wait on each other in a cycle.
async fn lock_in_order(tx: &deadpool_postgres::Transaction<'_>, ps: &[i32]) -> Result<()> {
    tx.execute(
        "SELECT p FROM weft.partitions WHERE p = ANY($1) ORDER BY p FOR NO KEY UPDATE",
        &[&ps],
    )
    .await
    .map_err(pg_err("lock", "partition leases"))?;
    Ok(())
}

/// Renews and takes partitions every third of the lease, for as long as the
/// store's runtime runs. A failed round (the database restarting) is
/// logged and tried again; leases not renewed in time are lost, and the
/// commits of their partitions fail until they are taken again.
pub(crate) async fn keep(pool: deadpool_postgres::Pool, leases: std::sync::Arc<Leases>) {
    let every = (leases.ttl / 3).max(std::time::Duration::from_millis(50));
    loop {
        // Pacing only: what a lease covers is decided by the database's
        // clock, never this one.
        #[allow(clippy::disallowed_methods)]
        tokio::time::sleep(every).await;
        if let Err(e) = tick(&pool, &leases).await {
            tracing::warn!(node = %leases.node, "partition leases: {e}");
        }
    }
}
