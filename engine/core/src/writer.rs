//! Group commit: one thread owns every write to the journal. Commits from
//! concurrent instances queue up while the previous batch is being written,
//! then go down together — one transaction and one flush for the lot — and
//! each waiter learns its own commit's fate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use tokio::sync::oneshot;
use weft_store::{Commit, Conflict, Journal};

use crate::{Error, Result};

/// Largest number of commits written in one transaction.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<std::result::Result<(), Conflict>>>;

/// Hands commits to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<(Commit, Reply)>,
    stats: Arc<Stats>,
}

/// Counters for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub batches: AtomicU64,
    pub commits: AtomicU64,
    /// Commits handed to the writer and not yet written.
    pub queued: AtomicU64,
}

impl Writer {
    pub fn start(journal: Arc<dyn Journal>) -> Writer {
        let (tx, rx) = mpsc::channel::<(Commit, Reply)>();
        let stats = Arc::new(Stats::default());
        let thread_stats = stats.clone();
        let spawned = std::thread::Builder::new()
            .name("weft-writer".into())
            .spawn(move || run(&*journal, &rx, &thread_stats));
        if let Err(e) = spawned {
            // Without the thread every commit fails with WriterGone below.
            tracing::error!("cannot start the writer thread: {e}");
        }
        Writer { tx, stats }
    }

    /// Writes one commit (with whatever else is queued) and returns once it
    /// is durable.
    pub async fn commit(&self, commit: Commit) -> Result<std::result::Result<(), Conflict>> {
        let (reply, rx) = oneshot::channel();
        self.stats.queued.fetch_add(1, Ordering::SeqCst);
        if self.tx.send((commit, reply)).is_err() {
            self.stats.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::WriterGone);
        }
        rx.await.map_err(|_| Error::WriterGone)?
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

fn run(journal: &dyn Journal, rx: &mpsc::Receiver<(Commit, Reply)>, stats: &Stats) {
    // Ends when every Writer handle is dropped.
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (commits, replies): (Vec<Commit>, Vec<Reply>) = batch.into_iter().unzip();
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .commits
            .fetch_add(commits.len() as u64, Ordering::Relaxed);
        let written = journal.commit(&commits);
        stats
            .queued
            .fetch_sub(commits.len() as u64, Ordering::SeqCst);
        match written {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(Error::Store(e.clone())));
                }
            }
        }
    }
}
