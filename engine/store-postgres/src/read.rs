//! Reading instances, history, the outbox, results, keys, timers and
//! tokens. The outbox and timers are read for the partitions this node
//! holds only: they are the work a node drives, and each partition's is
//! driven by its owner alone. Everything else reads the whole store, so
//! every node answers for every instance.

use weft_model::{Instance, InstanceId, Invoke, Millis, Record, Slot, Status, Timer};
use weft_store::{Instances, Result, StepResult, TokenRecord};

use crate::{PgStore, decode, pg_err};

fn status_of(s: Status) -> &'static str {
    s.as_str()
}

impl Instances for PgStore {
    fn instance(&self, id: &InstanceId) -> Result<Option<Instance>> {
        self.run(async {
            let c = self.client("an instance").await?;
            let Some(row) = c
                .query_opt(
                    "SELECT head, data FROM weft.instances WHERE id = $1",
                    &[&id.as_str()],
                )
                .await
                .map_err(pg_err("read", format!("instance {id}")))?
            else {
                return Ok(None);
            };
            let head: Instance = decode(|| format!("instance {id}"), row.get(0))?;
            let data: Option<serde_json::Value> = row
                .get::<_, Option<&[u8]>>(1)
                .map(|d| decode(|| format!("the data of {id}"), d))
                .transpose()?;
            let fan_key = head
                .fan
                .as_ref()
                .filter(|f| f.is_empty())
                .map(|f| f.key.clone());
            let slots = match fan_key {
                Some(fan) => {
                    let rows = c
                        .query(
                            "SELECT body FROM weft.slots WHERE instance = $1 AND fan = $2 \
                             ORDER BY idx",
                            &[&id.as_str(), &fan],
                        )
                        .await
                        .map_err(pg_err("read", format!("the branches of {fan}")))?;
                    rows.iter()
                        .map(|r| decode::<Slot>(|| format!("a branch of {fan}"), r.get(0)))
                        .collect::<Result<Vec<_>>>()?
                }
                None => Vec::new(),
            };
            weft_store::with_parts(head, data, |_| Ok(slots)).map(Some)
        })
    }

    fn history(&self, id: &InstanceId, from: u64) -> Result<Vec<Record>> {
        self.run(async {
            let c = self.client("history").await?;
            let rows = c
                .query(
                    "SELECT body FROM weft.history WHERE instance = $1 AND seq >= $2 \
                     ORDER BY seq",
                    &[&id.as_str(), &(from.min(i64::MAX as u64) as i64)],
                )
                .await
                .map_err(pg_err("read", format!("the history of {id}")))?;
            rows.iter()
                .map(|r| decode(|| format!("history of {id}"), r.get(0)))
                .collect()
        })
    }

    fn ids_with_status(&self, status: Status) -> Result<Vec<InstanceId>> {
        self.ids_with_status_after(status, None, usize::MAX)
    }

    fn ids_with_status_after(
        &self,
        status: Status,
        after: Option<&InstanceId>,
        limit: usize,
    ) -> Result<Vec<InstanceId>> {
        let after = after.map_or("", |a| a.as_str());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(async {
            let c = self.client("the status index").await?;
            let rows = c
                .query(
                    "SELECT id FROM weft.instances WHERE status = $1 AND id > $2 \
                     ORDER BY id LIMIT $3",
                    &[&status_of(status), &after, &limit],
                )
                .await
                .map_err(pg_err("read", format!("the {status} index")))?;
            Ok(rows.iter().map(|r| InstanceId(r.get(0))).collect())
        })
    }

    fn outbox(&self) -> Result<Vec<Result<Invoke>>> {
        let held = self.inner.leases.held();
        self.run(async {
            let c = self.client("the outbox").await?;
            let rows = c
                .query(
                    "SELECT instance, key, body FROM weft.outbox \
                     WHERE partition = ANY($1) ORDER BY instance, key",
                    &[&held],
                )
                .await
                .map_err(pg_err("read", "the outbox"))?;
            Ok(rows
                .iter()
                .map(|r| {
                    decode(
                        || {
                            format!(
                                "outbox entry {}/{}",
                                r.get::<_, &str>(0),
                                r.get::<_, &str>(1)
                            )
                        },
                        r.get(2),
                    )
                })
                .collect())
        })
    }

    fn outbox_of(&self, id: &InstanceId) -> Result<Vec<Invoke>> {
        self.run(async {
            let c = self.client("the outbox").await?;
            let rows = c
                .query(
                    "SELECT body FROM weft.outbox WHERE instance = $1 ORDER BY key",
                    &[&id.as_str()],
                )
                .await
                .map_err(pg_err("read", format!("the outbox of {id}")))?;
            rows.iter()
                .map(|r| decode(|| "outbox entry".to_owned(), r.get(0)))
                .collect()
        })
    }

    fn result(&self, key: &str) -> Result<Option<StepResult>> {
        self.run(async {
            let c = self.client("a result").await?;
            let row = c
                .query_opt("SELECT body FROM weft.results WHERE key = $1", &[&key])
                .await
                .map_err(pg_err("read", format!("result {key}")))?;
            row.map(|r| decode(|| format!("result {key}"), r.get(0)))
                .transpose()
        })
    }

    fn by_key(&self, process: &str, key: &str) -> Result<Option<InstanceId>> {
        self.run(async {
            let c = self.client("a business key").await?;
            let row = c
                .query_opt(
                    "SELECT instance FROM weft.business_keys WHERE process = $1 AND key = $2",
                    &[&process, &key],
                )
                .await
                .map_err(pg_err("read", format!("business key {key} of {process}")))?;
            Ok(row.map(|r| InstanceId(r.get(0))))
        })
    }

    fn next_timer(&self) -> Result<Option<Millis>> {
        self.next_due(i64::MIN)
    }

    fn next_timer_after(&self, after: Millis) -> Result<Option<Millis>> {
        self.next_due(after.0.min(i64::MAX as u64) as i64)
    }

    fn due_timers(&self, until: Millis, limit: usize) -> Result<Vec<Timer>> {
        let held = self.inner.leases.held();
        let until = until.0.min(i64::MAX as u64) as i64;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(async {
            let c = self.client("timers").await?;
            let rows = c
                .query(
                    "SELECT due, instance, kind, key FROM weft.timers \
                     WHERE partition = ANY($1) AND due <= $2 \
                     ORDER BY due, instance, kind, key LIMIT $3",
                    &[&held, &until, &limit],
                )
                .await
                .map_err(pg_err("read", "due timers"))?;
            Ok(rows
                .iter()
                .filter_map(|r| {
                    let kind = r.get::<_, &str>(2).bytes().next()?;
                    Some(Timer {
                        at: Millis(r.get::<_, i64>(0) as u64),
                        instance: InstanceId(r.get(1)),
                        kind: weft_store::keys::timer_kind_of(kind)?,
                        key: r.get(3),
                    })
                })
                .collect())
        })
    }

    fn token(&self, token: &str) -> Result<Option<TokenRecord>> {
        self.run(async {
            let c = self.client("a token").await?;
            let row = c
                .query_opt("SELECT body FROM weft.tokens WHERE token = $1", &[&token])
                .await
                .map_err(pg_err("read", format!("token {token}")))?;
            row.map(|r| decode(|| format!("token {token}"), r.get(0)))
                .transpose()
        })
    }

    fn results_of(&self, id: &InstanceId) -> Result<Vec<(String, StepResult)>> {
        self.results_of_instance(id)
    }

    fn tokens(&self) -> Result<Vec<(String, TokenRecord)>> {
        self.all_tokens()
    }
}

impl PgStore {
    pub(crate) fn results_of_instance(&self, id: &InstanceId) -> Result<Vec<(String, StepResult)>> {
        // Keys are `<id>/...`: the range from "<id>/" to "<id>0" ('0'
        // follows '/') under the bytewise collation.
        let (from, to) = (format!("{id}/"), format!("{id}0"));
        self.run(async {
            let c = self.client("results").await?;
            let rows = c
                .query(
                    "SELECT key, body FROM weft.results WHERE key >= $1 AND key < $2 ORDER BY key",
                    &[&from, &to],
                )
                .await
                .map_err(pg_err("read", format!("the results of {id}")))?;
            rows.iter()
                .map(|r| {
                    let key: String = r.get(0);
                    let result = decode(|| format!("result {key}"), r.get(1))?;
                    Ok((key, result))
                })
                .collect()
        })
    }

    pub(crate) fn all_tokens(&self) -> Result<Vec<(String, TokenRecord)>> {
        self.run(async {
            let c = self.client("tokens").await?;
            let rows = c
                .query("SELECT token, body FROM weft.tokens ORDER BY token", &[])
                .await
                .map_err(pg_err("read", "the tokens"))?;
            rows.iter()
                .map(|r| {
                    let token: String = r.get(0);
                    let record = decode(|| format!("token {token}"), r.get(1))?;
                    Ok((token, record))
                })
                .collect()
        })
    }

    /// The earliest due time after `after` of the timers of held partitions.
    fn next_due(&self, after: i64) -> Result<Option<Millis>> {
        let held = self.inner.leases.held();
        self.run(async {
            let c = self.client("timers").await?;
            let row = c
                .query_one(
                    "SELECT min(due) FROM weft.timers WHERE partition = ANY($1) AND due > $2",
                    &[&held, &after],
                )
                .await
                .map_err(pg_err("read", "the next timer"))?;
            Ok(row.get::<_, Option<i64>>(0).map(|d| Millis(d as u64)))
        })
    }
}
