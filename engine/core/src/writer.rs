//! Group commit: one thread owns every journal commit (removing a spent
//! timer, a deploy and a schedule's mark are written elsewhere). Commits from
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

// Nearly every job is a commit, moved once into the channel: boxing it
// would add an allocation per transition to spare the rare barrier bytes.
#[allow(clippy::large_enum_variant)]
enum Job {
    Commit(Commit, Reply),
    /// Answered once every job queued before it has been written.
    Barrier(oneshot::Sender<()>),
}

/// Hands commits to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    stats: Arc<Stats>,
    /// Told when the thread has ended and let go of the journal.
    ended: Arc<std::sync::Mutex<Option<oneshot::Receiver<()>>>>,
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
        let (tx, rx) = mpsc::channel::<Job>();
        let stats = Arc::new(Stats::default());
        let thread_stats = stats.clone();
        let (ended_tx, ended_rx) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("weft-writer".into())
            .spawn(move || {
                run(&*journal, &rx, &thread_stats);
                drop(journal);
                let _ = ended_tx.send(());
            });
        if let Err(e) = spawned {
            // Without the thread every commit fails with WriterGone below.
            tracing::error!("cannot start the writer thread: {e}");
        }
        Writer {
            tx,
            stats,
            ended: Arc::new(std::sync::Mutex::new(Some(ended_rx))),
        }
    }

    /// Writes one commit (with whatever else is queued) and returns once it
    /// is durable.
    pub async fn commit(&self, commit: Commit) -> Result<std::result::Result<(), Conflict>> {
        let (reply, rx) = oneshot::channel();
        self.stats.queued.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(Job::Commit(commit, reply)).is_err() {
            self.stats.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::WriterGone);
        }
        rx.await.map_err(|_| Error::WriterGone)?
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The signal that the writer thread has ended (every handle to this
    /// writer dropped, the queue written) and let go of the journal; taken
    /// once.
    pub(crate) fn ended(&self) -> Option<oneshot::Receiver<()>> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Returns once every commit handed over before the call is written (or
    /// has failed), so nothing handed to the writer is lost on a stop.
    pub async fn drained(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Job::Barrier(tx))
            .map_err(|_| Error::WriterGone)?;
        rx.await.map_err(|_| Error::WriterGone)
    }
}

fn run(journal: &dyn Journal, rx: &mpsc::Receiver<Job>, stats: &Stats) {
    // Ends when every Writer handle is dropped.
    let mut barriers = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Commit(c, r) => batch.push((c, r)),
                // Everything before it is in this batch: answer after it.
                Job::Barrier(b) => barriers.push(b),
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if batch.is_empty() {
            for b in barriers.drain(..) {
                let _ = b.send(());
            }
            continue;
        }
        let (commits, replies): (Vec<Commit>, Vec<Reply>) = batch.into_iter().unzip();
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .commits
            .fetch_add(commits.len() as u64, Ordering::Relaxed);
        let watch = crate::metrics::Stopwatch::start();
        let written = journal.commit(&commits);
        crate::metrics::group_commit(commits.len(), watch.seconds());
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
        for b in barriers.drain(..) {
            let _ = b.send(());
        }
    }
}
