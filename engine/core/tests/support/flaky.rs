//! A store that fails on command: the in-memory store behind switches that
//! make commits, or reads of chosen instances, fail as a full disk or a
//! broken record would.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use weft_model::{Instance, InstanceId, Invoke, Millis, Record, Status, Timer};
use weft_store::{
    Commit, Conflict, Definitions, Deploy, Deployed, Deployment, Error, Instances, Journal,
    MemStore, ProcessRecord, Result, StepResult, TokenRecord,
};

#[derive(Default)]
pub struct Flaky {
    pub inner: MemStore,
    /// Every commit fails while set.
    pub commits_fail: AtomicBool,
    /// Reads of these instances fail.
    pub unreadable: Mutex<HashSet<InstanceId>>,
    pub failed_commits: AtomicUsize,
    /// The outbox entries of these instances read back damaged.
    pub damaged_outbox: Mutex<HashSet<InstanceId>>,
    /// The next read of a token that is not there yet answers late: only
    /// once the token has been committed (and a moment more), it says what
    /// it saw — nothing. A reader racing the commit of a `pending` answer.
    pub late_token_read: AtomicBool,
}

fn broken(op: &'static str, what: String) -> Error {
    Error::backend(op, what, std::io::Error::other("no space left on device"))
}

impl Definitions for Flaky {
    fn put_process(&self, p: &ProcessRecord) -> Result<std::result::Result<(), Conflict>> {
        self.inner.put_process(p)
    }
    fn process(&self, name: &str, version: u32) -> Result<Option<ProcessRecord>> {
        self.inner.process(name, version)
    }
    fn latest_process(&self, name: &str) -> Result<Option<ProcessRecord>> {
        self.inner.latest_process(name)
    }
    fn processes(&self) -> Result<Vec<ProcessRecord>> {
        self.inner.processes()
    }
    fn deploy(&self, d: &Deploy) -> Result<std::result::Result<Deployed, Conflict>> {
        self.inner.deploy(d)
    }
    fn deployment(&self, process: &str, version: u32) -> Result<Option<Deployment>> {
        self.inner.deployment(process, version)
    }
    fn deployment_revision(&self, p: &str, v: u32, r: u32) -> Result<Option<Deployment>> {
        self.inner.deployment_revision(p, v, r)
    }
    fn plugin(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        self.inner.plugin(sha256)
    }
    fn register_plugin(
        &self,
        entry: &weft_store::PluginEntry,
        bytes: &[u8],
    ) -> Result<(weft_store::PluginEntry, bool)> {
        self.inner.register_plugin(entry, bytes)
    }
    fn registry(&self) -> Result<Vec<weft_store::PluginEntry>> {
        self.inner.registry()
    }
    fn swap(
        &self,
        w: &weft_store::SwapWrite,
    ) -> Result<std::result::Result<weft_store::SwapRecord, Conflict>> {
        self.inner.swap(w)
    }
    fn swaps(&self) -> Result<Vec<weft_store::SwapRecord>> {
        self.inner.swaps()
    }
    fn schedule_mark(&self, process: &str, index: u32) -> Result<Option<Millis>> {
        self.inner.schedule_mark(process, index)
    }
    fn put_schedule_mark(&self, process: &str, index: u32, at: Millis) -> Result<()> {
        if self.commits_fail.load(Ordering::SeqCst) {
            return Err(broken("write", format!("the mark of schedule {index}")));
        }
        self.inner.put_schedule_mark(process, index, at)
    }
    fn put_deployment(&self, d: &Deployment) -> Result<std::result::Result<(), Conflict>> {
        self.inner.put_deployment(d)
    }
    fn put_plugin(&self, sha256: &str, bytes: &[u8]) -> Result<()> {
        self.inner.put_plugin(sha256, bytes)
    }
    fn put_swap(&self, record: &weft_store::SwapRecord) -> Result<()> {
        self.inner.put_swap(record)
    }
}

impl Instances for Flaky {
    fn instance(&self, id: &InstanceId) -> Result<Option<Instance>> {
        if self.unreadable.lock().expect("lock").contains(id) {
            return Err(broken("read", format!("instance {id}")));
        }
        self.inner.instance(id)
    }
    fn history(&self, id: &InstanceId, from: u64) -> Result<Vec<Record>> {
        self.inner.history(id, from)
    }
    fn results_of(&self, id: &InstanceId) -> Result<Vec<(String, weft_store::StepResult)>> {
        self.inner.results_of(id)
    }
    fn tokens(&self) -> Result<Vec<(String, weft_store::TokenRecord)>> {
        self.inner.tokens()
    }
    fn ids_with_status(&self, status: Status) -> Result<Vec<InstanceId>> {
        self.inner.ids_with_status(status)
    }
    fn ids_with_status_after(
        &self,
        status: Status,
        after: Option<&InstanceId>,
        limit: usize,
    ) -> Result<Vec<InstanceId>> {
        self.inner.ids_with_status_after(status, after, limit)
    }
    fn outbox(&self) -> Result<Vec<Result<Invoke>>> {
        let damaged = self.damaged_outbox.lock().expect("lock");
        Ok(self
            .inner
            .outbox()?
            .into_iter()
            .map(|e| match e {
                Ok(inv) if damaged.contains(&inv.instance) => Err(Error::Corrupt {
                    what: format!("outbox entry {}", inv.key),
                    source: serde_json::from_str::<Invoke>("{\"tru").expect_err("damaged"),
                }),
                other => other,
            })
            .collect())
    }
    fn outbox_of(&self, id: &InstanceId) -> Result<Vec<Invoke>> {
        self.inner.outbox_of(id)
    }
    fn result(&self, key: &str) -> Result<Option<StepResult>> {
        self.inner.result(key)
    }
    fn by_key(&self, process: &str, key: &str) -> Result<Option<InstanceId>> {
        self.inner.by_key(process, key)
    }
    fn next_timer(&self) -> Result<Option<Millis>> {
        self.inner.next_timer()
    }
    fn next_timer_after(&self, after: Millis) -> Result<Option<Millis>> {
        self.inner.next_timer_after(after)
    }
    fn due_timers(&self, until: Millis, limit: usize) -> Result<Vec<Timer>> {
        self.inner.due_timers(until, limit)
    }
    fn token(&self, token: &str) -> Result<Option<TokenRecord>> {
        let seen = self.inner.token(token)?;
        if seen.is_none() && self.late_token_read.swap(false, Ordering::SeqCst) {
            for _ in 0..500 {
                if self.inner.token(token)?.is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            // Long enough for the invocation that committed it to end.
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(seen)
    }
}

impl Journal for Flaky {
    fn commit(&self, batch: &[Commit]) -> Result<Vec<std::result::Result<(), Conflict>>> {
        if self.commits_fail.load(Ordering::SeqCst) {
            self.failed_commits.fetch_add(1, Ordering::SeqCst);
            return Err(broken(
                "write",
                format!("a batch of {} commits", batch.len()),
            ));
        }
        self.inner.commit(batch)
    }
    fn remove_timer(&self, timer: &Timer) -> Result<()> {
        self.inner.remove_timer(timer)
    }
}
