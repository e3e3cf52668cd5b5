//! `weft bench store`: durable transitions per second of a store alone —
//! sled, and PostgreSQL when given one — committing batches of 1, 16 and
//! 256 commits (each one instance's transition: its snapshot and a history
//! record), one batch at a time as the engine's writer does. Prints one
//! line per store and batch size:
//! `store <backend> batch=<B> commits=<N> transitions_per_s=<f> batch_ms_p50=<f>`.

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use weft_model::{InstanceId, Millis, Status};
use weft_store::{Store, testkit};

use super::bench::now;
use crate::{exit, render};

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Also measure this PostgreSQL database (a database of its own: the
    /// bench writes instances into it).
    #[arg(long = "store", value_name = "URL")]
    pub url: Option<String>,
    /// Commits per batch size (rounded up to whole batches).
    #[arg(long, default_value_t = 4_096)]
    pub commits: usize,
    /// Batch sizes, comma-separated.
    #[arg(long, default_value = "1,16,256", value_delimiter = ',')]
    pub batches: Vec<usize>,
}

pub async fn store(args: StoreArgs) -> anyhow::Result<u8> {
    if args.batches.contains(&0) || args.commits == 0 {
        bail!("--batches and --commits must be at least 1");
    }
    super::bench::machine();
    let scratch = super::bench::tempfile_dir()?;
    let sled_dir = scratch.join("sled");
    let args2 = args.clone();
    let outcome = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let sled: Arc<dyn Store> = Arc::new(
            weft_store_sled::SledStore::open(&sled_dir)
                .with_context(|| format!("cannot open {}", sled_dir.display()))?,
        );
        measure("sled", &sled, &args2)?;
        if let Some(url) = &args2.url {
            super::store::require_url(url)?;
            let pg: Arc<dyn Store> = Arc::new(weft_store_postgres::PgStore::connect(
                url,
                weft_store_postgres::Options {
                    node: "weft-bench-store".into(),
                    ..weft_store_postgres::Options::default()
                },
            )?);
            measure("postgres", &pg, &args2)?;
        }
        Ok(())
    })
    .await?;
    let _ = std::fs::remove_dir_all(&scratch);
    outcome?;
    Ok(exit::OK)
}

fn measure(backend: &str, store: &Arc<dyn Store>, args: &StoreArgs) -> anyhow::Result<()> {
    // Ids of their own per run, so a database already holding a run's
    // instances takes another.
    let base = u128::from(std::process::id()) << 64;
    let mut serial: u128 = 0;
    for &batch in &args.batches {
        let rounds = args.commits.div_ceil(batch);
        let mut times = Vec::with_capacity(rounds);
        let started = now();
        for _ in 0..rounds {
            let commits: Vec<_> = (0..batch)
                .map(|_| {
                    serial += 1;
                    let id = InstanceId::new(Millis(1_700_000_000_000), base + serial);
                    testkit::commit(&id, 0, 1, None, Status::Running)
                })
                .collect();
            let t = now();
            let outcomes = store.commit(&commits)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            if let Some(Err(c)) = outcomes.into_iter().find(|o| o.is_err()) {
                bail!("{backend}: a commit was refused: {c}");
            }
        }
        let secs = started.elapsed().as_secs_f64();
        times.sort_by(f64::total_cmp);
        render::say(format_args!(
            "store {backend} batch={batch} commits={} transitions_per_s={:.0} batch_ms_p50={:.2}",
            rounds * batch,
            (rounds * batch) as f64 / secs,
            times[times.len() / 2]
        ));
    }
    Ok(())
}
