//! The load tool (`switchyard bench`). (Filled in later.)
#![allow(missing_docs)]
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}
pub async fn run(_a: BenchArgs) -> anyhow::Result<()> {
    Ok(())
}
