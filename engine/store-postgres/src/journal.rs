//! Group commit. A batch of commits is one transaction:
//!
//! 1. pipelined reads: the batch's partitions `FOR SHARE` (a node taking
//!    one waits for the batch, and the batch sees its epoch), its instances
//!    `FOR UPDATE` in id order (their `seq`, whether their data is stored),
//!    the tokens it opens and the business keys it claims;
//! 2. each commit checked in order against those and the commits before it
//!    in the batch, as the sled store does, plus fencing: a commit to a
//!    partition this node no longer holds at the epoch it took it at, or
//!    whose lease ran out, is refused (`Conflict::Fenced`) and the partition
//!    forgotten;
//! 3. the net writes of the good commits, one statement per table built
//!    from arrays (`unnest`), pipelined; then `COMMIT`.
//!
//! A few round trips whatever the batch size. The history's primary key is
//! the backstop: a row written twice fails the whole batch.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures_util::future::try_join_all;
use tokio_postgres::types::ToSql;
use weft_model::{InstanceId, Timer};
use weft_store::{Commit, Conflict, Journal, Result, TokenRecord, check_shape, check_tokens};

use crate::{PgStore, decode, encode, pg_err};

/// What the database holds for the batch, read under its locks.
#[derive(Default)]
struct Stored {
    /// Partition to (owner, epoch, lease live).
    partitions: HashMap<u32, (Option<String>, i64, bool)>,
    /// Instance to (seq, data stored).
    instances: HashMap<String, (i64, bool)>,
    tokens: HashMap<String, TokenRecord>,
    keys: HashMap<(String, String), String>,
}

/// An instance row: partition, seq, status, snapshot head, and its data
/// (`None`: keep what is stored).
struct InstanceRow {
    partition: i32,
    seq: i64,
    status: &'static str,
    head: Vec<u8>,
    data: Option<Vec<u8>>,
}

/// An outbox key: instance and step key.
type OutboxKey = (String, String);

/// A parameter list of one statement.
type Params<'a> = [&'a (dyn ToSql + Sync)];

/// The rows a batch writes, net of what its own commits undo.
#[derive(Default)]
struct Writes {
    /// id to (partition, seq, status, head, data or keep).
    instances: BTreeMap<String, InstanceRow>,
    history: Vec<(String, i64, Vec<u8>)>,
    /// (instance, key) to the entry, or `None` to delete it.
    outbox: BTreeMap<OutboxKey, Option<(i32, Vec<u8>)>>,
    results: BTreeMap<String, Vec<u8>>,
    /// Timer to present (armed) or not (cancelled).
    timers: BTreeMap<(i32, i64, String, String, String), bool>,
    tokens: BTreeMap<String, Vec<u8>>,
    keys: Vec<(String, String, String)>,
    closed_fans: BTreeSet<(String, String)>,
    slots: BTreeMap<(String, String, i32), Vec<u8>>,
}

fn timer_row(t: &Timer, partition: i32) -> (i32, i64, String, String, String) {
    (
        partition,
        t.at.0.min(i64::MAX as u64) as i64,
        t.instance.as_str().to_owned(),
        char::from(weft_store::keys::timer_kind_byte(t.kind)).to_string(),
        t.key.clone(),
    )
}

impl PgStore {
    fn partition_i32(&self, id: &InstanceId) -> i32 {
        self.partition(id) as i32
    }

    /// Fencing: whether this node may write to `partition` now.
    fn may_write(&self, stored: &Stored, partition: u32) -> bool {
        let Some(held) = self.inner.leases.epoch(partition) else {
            return false;
        };
        matches!(
            stored.partitions.get(&partition),
            Some((Some(owner), epoch, true)) if owner == self.inner.leases.node() && *epoch == held
        )
    }

    async fn read_stored(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        batch: &[Commit],
    ) -> Result<Stored> {
        let partitions: Vec<i32> = batch
            .iter()
            .map(|c| self.partition_i32(&c.instance.id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let ids: Vec<&str> = batch
            .iter()
            .map(|c| c.instance.id.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let tokens: Vec<&str> = batch
            .iter()
            .flat_map(|c| c.tokens.iter().map(|(t, _)| t.as_str()))
            .collect();
        let (kp, kk): (Vec<&str>, Vec<&str>) = batch
            .iter()
            .filter(|c| c.previous.is_none())
            .filter_map(|c| Some((c.instance.process.as_str(), c.instance.key.as_deref()?)))
            .unzip();
        let what = format!("a batch of {} commits", batch.len());
        // Business keys and tokens are claimed across partitions, so two
        // nodes may claim one at once: each claim is serialised by an
        // advisory lock (taken in one order), and the reads after it see
        // what the other committed.
        let claims: Vec<String> = kp
            .iter()
            .zip(&kk)
            .map(|(p, k)| format!("key\u{1}{p}\u{1}{k}"))
            .chain(tokens.iter().map(|t| format!("token\u{1}{t}")))
            .collect();
        if !claims.is_empty() {
            tx.execute(
                "SELECT pg_advisory_xact_lock(h) FROM \
                 (SELECT DISTINCT hashtextextended(c, 0) AS h FROM unnest($1::text[]) AS c \
                  ORDER BY 1) AS claims",
                &[&claims],
            )
            .await
            .map_err(pg_err("lock", "the keys and tokens of a batch"))?;
        }
        let (pp, ip, tp, kq): (&Params, &Params, &Params, &Params) =
            (&[&partitions], &[&ids], &[&tokens], &[&kp, &kk]);
        let (p, i, t, k) = futures_util::try_join!(
            tx.query(
                "SELECT p, owner, epoch, expires > now() FROM weft.partitions \
                 WHERE p = ANY($1) ORDER BY p FOR SHARE",
                pp,
            ),
            tx.query(
                "SELECT id, seq, data IS NOT NULL FROM weft.instances \
                 WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                ip,
            ),
            tx.query(
                "SELECT token, body FROM weft.tokens WHERE token = ANY($1)",
                tp,
            ),
            tx.query(
                "SELECT b.process, b.key, b.instance FROM weft.business_keys b \
                 JOIN unnest($1::text[], $2::text[]) AS w(process, key) \
                 ON b.process = w.process AND b.key = w.key",
                kq,
            ),
        )
        .map_err(pg_err("check", &what))?;
        let mut stored = Stored::default();
        for r in p {
            stored
                .partitions
                .insert(r.get::<_, i32>(0) as u32, (r.get(1), r.get(2), r.get(3)));
        }
        for r in i {
            stored.instances.insert(r.get(0), (r.get(1), r.get(2)));
        }
        for r in t {
            let token: String = r.get(0);
            let record = decode(|| format!("token {token}"), r.get(1))?;
            stored.tokens.insert(token, record);
        }
        for r in k {
            stored.keys.insert((r.get(0), r.get(1)), r.get(2));
        }
        Ok(stored)
    }

    /// Checks one commit against what is stored and what the commits before
    /// it in the batch did (`seen`: instance to the seq it ends at).
    fn check(
        &self,
        c: &Commit,
        stored: &Stored,
        seen: &HashMap<String, i64>,
        tokens_seen: &HashMap<String, TokenRecord>,
        keys_seen: &HashMap<(String, String), String>,
    ) -> Result<Result<(), Conflict>> {
        if let Err(conflict) = check_shape(c) {
            return Ok(Err(conflict));
        }
        let id = &c.instance.id;
        let partition = self.partition(id);
        if !self.may_write(stored, partition) {
            return Ok(Err(Conflict::Fenced {
                instance: id.clone(),
                partition,
            }));
        }
        let now = seen
            .get(id.as_str())
            .copied()
            .or_else(|| stored.instances.get(id.as_str()).map(|(seq, _)| *seq));
        match (c.previous, now) {
            (None, Some(_)) => return Ok(Err(Conflict::InstanceExists(id.clone()))),
            (Some(_), None) => return Ok(Err(Conflict::NoInstance(id.clone()))),
            _ => {}
        }
        // Compare-and-set on the instance's seq: the commit continues the
        // history exactly where it ends.
        let from = c.records.first().map_or(c.instance.seq, |r| r.seq) as i64;
        let expected = now.unwrap_or(0);
        if from != expected {
            return Ok(Err(Conflict::HistoryGap {
                instance: id.clone(),
                expected: expected as u64,
                got: from as u64,
            }));
        }
        let tokens = check_tokens(c, |t| {
            Ok(tokens_seen.get(t).or_else(|| stored.tokens.get(t)).cloned())
        })?;
        if tokens.is_err() {
            return Ok(tokens);
        }
        if let (None, Some(key)) = (c.previous, &c.instance.key) {
            let k = (c.instance.process.clone(), key.clone());
            if let Some(instance) = keys_seen.get(&k).or_else(|| stored.keys.get(&k)) {
                return Ok(Err(Conflict::KeyTaken {
                    process: k.0,
                    key: k.1,
                    instance: InstanceId(instance.clone()),
                }));
            }
        }
        Ok(Ok(()))
    }

    /// Adds a checked commit's writes.
    fn add(&self, w: &mut Writes, c: &Commit, data_stored: bool) {
        let id = c.instance.id.as_str().to_owned();
        let partition = self.partition_i32(&c.instance.id);
        let data = if c.data_unchanged && data_stored {
            // Kept, or what an earlier commit of the batch wrote.
            w.instances.get(&id).and_then(|i| i.data.clone())
        } else {
            Some(encode(&c.instance.data))
        };
        w.instances.insert(
            id.clone(),
            InstanceRow {
                partition,
                seq: c.instance.seq as i64,
                status: c.instance.status.as_str(),
                head: encode(&weft_store::snapshot_head(&c.instance)),
                data,
            },
        );
        for r in &c.records {
            w.history.push((id.clone(), r.seq as i64, encode(r)));
        }
        for key in &c.settled {
            w.outbox.insert((id.clone(), key.clone()), None);
        }
        for t in &c.timers_cancelled {
            w.timers.insert(timer_row(t, partition), false);
        }
        for inv in &c.outbox {
            w.outbox.insert(
                (id.clone(), inv.key.clone()),
                Some((partition, encode(inv))),
            );
        }
        for (k, r) in &c.results {
            w.results.entry(k.clone()).or_insert_with(|| encode(r));
        }
        for t in &c.timers_armed {
            w.timers.insert(timer_row(t, partition), true);
        }
        for (t, r) in &c.tokens {
            w.tokens.insert(t.clone(), encode(r));
        }
        if let (None, Some(key)) = (c.previous, &c.instance.key) {
            w.keys
                .push((c.instance.process.clone(), key.clone(), id.clone()));
        }
        for fan in &c.closed_fans {
            w.slots.retain(|(i, f, _), _| !(i == &id && f == fan));
            w.closed_fans.insert((id.clone(), fan.clone()));
        }
        if let Some(fan) = &c.instance.fan {
            for (index, slot) in &c.branches {
                w.slots
                    .insert((id.clone(), fan.key.clone(), *index as i32), encode(slot));
            }
        }
    }
}

/// The statements of a batch's writes, in an order that makes deletes of a
/// key come before its inserts.
async fn write(tx: &deadpool_postgres::Transaction<'_>, w: Writes, what: &str) -> Result<()> {
    type Params = Vec<Box<dyn ToSql + Sync + Send>>;
    let mut statements: Vec<(&'static str, Params)> = Vec::new();
    if !w.closed_fans.is_empty() {
        let (i, f): (Vec<String>, Vec<String>) = w.closed_fans.into_iter().unzip();
        statements.push((
            "DELETE FROM weft.slots s USING unnest($1::text[], $2::text[]) AS d(instance, fan) \
             WHERE s.instance = d.instance AND s.fan = d.fan",
            vec![Box::new(i), Box::new(f)],
        ));
    }
    if !w.instances.is_empty() {
        let mut ids = Vec::new();
        let mut parts = Vec::new();
        let mut seqs = Vec::new();
        let mut statuses = Vec::new();
        let mut heads = Vec::new();
        let mut datas = Vec::new();
        for (id, row) in w.instances {
            ids.push(id);
            parts.push(row.partition);
            seqs.push(row.seq);
            statuses.push(row.status);
            heads.push(row.head);
            datas.push(row.data);
        }
        statements.push((
            "INSERT INTO weft.instances (id, partition, seq, status, head, data) \
             SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::text[], \
                                  $5::bytea[], $6::bytea[]) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, status = excluded.status, \
                 head = excluded.head, data = coalesce(excluded.data, weft.instances.data)",
            vec![
                Box::new(ids),
                Box::new(parts),
                Box::new(seqs),
                Box::new(statuses),
                Box::new(heads),
                Box::new(datas),
            ],
        ));
    }
    if !w.history.is_empty() {
        let (mut i, mut s, mut b) = (Vec::new(), Vec::new(), Vec::new());
        for (id, seq, body) in w.history {
            i.push(id);
            s.push(seq);
            b.push(body);
        }
        statements.push((
            "INSERT INTO weft.history (instance, seq, body) \
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[])",
            vec![Box::new(i), Box::new(s), Box::new(b)],
        ));
    }
    let (gone, kept): (Vec<_>, Vec<_>) = w.outbox.into_iter().partition(|(_, v)| v.is_none());
    if !gone.is_empty() {
        let (i, k): (Vec<String>, Vec<String>) = gone.into_iter().map(|(k, _)| k).unzip();
        statements.push((
            "DELETE FROM weft.outbox o USING unnest($1::text[], $2::text[]) AS d(instance, key) \
             WHERE o.instance = d.instance AND o.key = d.key",
            vec![Box::new(i), Box::new(k)],
        ));
    }
    if !kept.is_empty() {
        let (mut i, mut k, mut p, mut b) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((id, key), v) in kept {
            if let Some((partition, body)) = v {
                i.push(id);
                k.push(key);
                p.push(partition);
                b.push(body);
            }
        }
        statements.push((
            "INSERT INTO weft.outbox (instance, key, partition, body) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bytea[]) \
             ON CONFLICT (instance, key) DO UPDATE SET body = excluded.body",
            vec![Box::new(i), Box::new(k), Box::new(p), Box::new(b)],
        ));
    }
    if !w.results.is_empty() {
        let (k, b): (Vec<String>, Vec<Vec<u8>>) = w.results.into_iter().unzip();
        // The first outcome recorded under a key is the outcome.
        statements.push((
            "INSERT INTO weft.results (key, body) SELECT * FROM unnest($1::text[], $2::bytea[]) \
             ON CONFLICT (key) DO NOTHING",
            vec![Box::new(k), Box::new(b)],
        ));
    }
    let (armed, cancelled): (Vec<_>, Vec<_>) = w.timers.into_iter().partition(|(_, on)| *on);
    for (rows, sql) in [
        (
            cancelled,
            "DELETE FROM weft.timers t \
             USING unnest($1::int[], $2::bigint[], $3::text[], $4::text[], $5::text[]) \
                 AS d(partition, due, instance, kind, key) \
             WHERE t.partition = d.partition AND t.due = d.due AND t.instance = d.instance \
               AND t.kind = d.kind AND t.key = d.key",
        ),
        (
            armed,
            "INSERT INTO weft.timers (partition, due, instance, kind, key) \
             SELECT * FROM unnest($1::int[], $2::bigint[], $3::text[], $4::text[], $5::text[]) \
             ON CONFLICT DO NOTHING",
        ),
    ] {
        if rows.is_empty() {
            continue;
        }
        let (mut p, mut d, mut i, mut k, mut s) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((partition, due, instance, kind, key), _) in rows {
            p.push(partition);
            d.push(due);
            i.push(instance);
            k.push(kind);
            s.push(key);
        }
        statements.push((
            sql,
            vec![
                Box::new(p),
                Box::new(d),
                Box::new(i),
                Box::new(k),
                Box::new(s),
            ],
        ));
    }
    if !w.tokens.is_empty() {
        let (t, b): (Vec<String>, Vec<Vec<u8>>) = w.tokens.into_iter().unzip();
        statements.push((
            "INSERT INTO weft.tokens (token, body) SELECT * FROM unnest($1::text[], $2::bytea[]) \
             ON CONFLICT (token) DO UPDATE SET body = excluded.body",
            vec![Box::new(t), Box::new(b)],
        ));
    }
    if !w.keys.is_empty() {
        let (mut p, mut k, mut i) = (Vec::new(), Vec::new(), Vec::new());
        for (process, key, id) in w.keys {
            p.push(process);
            k.push(key);
            i.push(id);
        }
        statements.push((
            "INSERT INTO weft.business_keys (process, key, instance) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[])",
            vec![Box::new(p), Box::new(k), Box::new(i)],
        ));
    }
    if !w.slots.is_empty() {
        let (mut i, mut f, mut x, mut b) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((instance, fan, idx), body) in w.slots {
            i.push(instance);
            f.push(fan);
            x.push(idx);
            b.push(body);
        }
        statements.push((
            "INSERT INTO weft.slots (instance, fan, idx, body) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bytea[]) \
             ON CONFLICT (instance, fan, idx) DO UPDATE SET body = excluded.body",
            vec![Box::new(i), Box::new(f), Box::new(x), Box::new(b)],
        ));
    }
    // Sent together: tokio-postgres pipelines queries polled at once, and
    // the server runs them in the order sent.
    let running = statements.iter().map(|(sql, params)| {
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        async move { tx.execute(*sql, &refs).await }
    });
    try_join_all(running).await.map_err(pg_err("write", what))?;
    Ok(())
}

impl Journal for PgStore {
    fn commit(&self, batch: &[Commit]) -> Result<Vec<Result<(), Conflict>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let what = format!("a batch of {} commits", batch.len());
        self.run(async {
            let _one_batch = self.inner.commit_lock.lock().await;
            let mut c = self.client(&what).await?;
            let tx = c.transaction().await.map_err(pg_err("begin", &what))?;
            let stored = self.read_stored(&tx, batch).await?;
            let mut seen: HashMap<String, i64> = HashMap::new();
            let mut tokens_seen: HashMap<String, TokenRecord> = HashMap::new();
            let mut keys_seen: HashMap<(String, String), String> = HashMap::new();
            let mut writes = Writes::default();
            let mut verdicts = Vec::with_capacity(batch.len());
            let mut lost = BTreeSet::new();
            for commit in batch {
                let verdict = self.check(commit, &stored, &seen, &tokens_seen, &keys_seen)?;
                match &verdict {
                    Ok(()) => {
                        let id = commit.instance.id.as_str();
                        let data_stored = seen.contains_key(id)
                            || stored.instances.get(id).is_some_and(|(_, d)| *d);
                        self.add(&mut writes, commit, data_stored);
                        seen.insert(id.to_owned(), commit.instance.seq as i64);
                        tokens_seen.extend(commit.tokens.iter().cloned());
                        if let (None, Some(key)) = (commit.previous, &commit.instance.key) {
                            keys_seen.insert(
                                (commit.instance.process.clone(), key.clone()),
                                id.to_owned(),
                            );
                        }
                    }
                    Err(Conflict::Fenced { partition, .. }) => {
                        lost.insert(*partition);
                    }
                    Err(_) => {}
                }
                verdicts.push(verdict);
            }
            for p in lost {
                self.inner.leases.lost(p);
            }
            write(&tx, writes, &what).await?;
            tx.commit().await.map_err(pg_err("commit", &what))?;
            Ok(verdicts)
        })
    }

    fn holds(&self, id: &InstanceId) -> bool {
        self.inner.leases.epoch(self.partition(id)).is_some()
    }

    fn remove_timer(&self, timer: &Timer) -> Result<()> {
        let partition = self.partition_i32(&timer.instance);
        let (p, due, instance, kind, key) = timer_row(timer, partition);
        // Fenced like a commit: only the partition's owner removes its timers.
        let Some(epoch) = self.inner.leases.epoch(partition as u32) else {
            return Ok(());
        };
        let node = self.inner.leases.node().to_owned();
        self.run(async {
            let c = self.client("a timer").await?;
            c.execute(
                "DELETE FROM weft.timers WHERE partition = $1 AND due = $2 AND instance = $3 \
                 AND kind = $4 AND key = $5 AND EXISTS (SELECT 1 FROM weft.partitions \
                 WHERE p = $1 AND owner = $6 AND epoch = $7 AND expires > now())",
                &[&p, &due, &instance, &kind, &key, &node, &epoch],
            )
            .await
            .map_err(pg_err(
                "remove",
                format!("the {} timer of {}", timer.kind.as_str(), timer.instance),
            ))?;
            Ok(())
        })
    }
}
