//! `weft bench`: durable transitions per second and invocation latency.

use clap::Args;

#[derive(Debug, Args)]
pub struct BenchArgs {}

pub async fn bench(_args: BenchArgs) -> anyhow::Result<u8> {
    anyhow::bail!("the benchmark is not written yet")
}
