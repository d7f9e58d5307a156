//! `rapport-bench`: rapport's load generators, outside the service. Each starts
//! `rapport serve` as a child process (or uses a running server), drives it over gRPC
//! and measures references in the same run, on the same machine and database:
//!
//! - `records`: `RecordResponse` and `GetSurvey` at several concurrency levels against
//!   one-row INSERTs into `responses` and, when pgbench is on `PATH`, pgbench;
//! - `engagement`: `RecordEvents` throughput against multi-row INSERTs of raw events,
//!   and the latency of profiles, metrics and rankings as history and customers grow.
//!
//! docs/benchmarks.md has the commands and the current figures.
//!
//! # Layout
//! - [`harness`]: the one harness both share (database, scratch schema from the
//!   migrations, server, connections, load loop, pgbench, report).
//! - [`records`], [`engagement`]: the two sub-commands.

use clap::{Parser, Subcommand};

mod engagement;
mod harness;
mod records;

#[derive(Debug, Parser)]
#[command(
    name = "rapport-bench",
    version,
    about = "Load generators for rapport, each against references measured in the same run"
)]
struct Cli {
    #[command(flatten)]
    common: harness::CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// RecordResponse (and GetSurvey) over gRPC against raw INSERTs and pgbench.
    Records(records::RecordsArgs),
    /// RecordEvents throughput and engagement read latencies.
    Engagement(engagement::EngagementArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Records(args) => records::run(&cli.common, args).await,
        Command::Engagement(args) => engagement::run(&cli.common, args).await,
    }
}
