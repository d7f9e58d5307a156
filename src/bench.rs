//! `rapport bench`: a load generator (filled in below).

#[derive(Debug, clap::Args)]
pub struct BenchArgs {}

pub async fn run(_db: &crate::store::DbSettings, _args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented")
}
