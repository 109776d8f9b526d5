//! The command line: clap definitions and one module per subcommand. Each subcommand parses
//! its arguments, calls the library and prints; user mistakes exit with code 2, failures with 1.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod adapters;
pub mod bench;
pub mod hash;
pub mod mine_header;
pub mod node;
pub mod raft_sim;
pub mod testnet;
pub mod train;

/// An error caused by the user's input (bad hex, unknown backend, bad config): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Shorthand for a `UsageError` wrapped in `anyhow`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

#[derive(Debug, Parser)]
#[command(
    name = "hashgrad",
    version,
    about = "A compute node for proof-of-work mining and data-parallel training",
    long_about = "hashgrad mines a Bitcoin-style chain (double SHA-256) and trains models \
                  data-parallel, on a GPU through wgpu or on the CPU.\n\n\
                  Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=hashgrad=debug) for more."
)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the block hash (display order) of an 80-byte header given in hex.
    Hash(hash::HashArgs),
    /// List the GPU adapters wgpu can use, with the index `--adapter` accepts.
    Adapters(adapters::AdaptersArgs),
    /// Search a nonce range of an 80-byte header for its own `bits` target; print each nonce
    /// found with its block hash, then the hash rate.
    MineHeader(mine_header::MineHeaderArgs),
    /// Measure the sha256d rate of each backend (every CPU path, the GPU) next to the plain
    /// `sha2` two-call rate of the same run.
    Bench(bench::BenchArgs),
    /// Soak the Raft core in the deterministic simulator (loss, partitions, crashes) and check
    /// its safety invariants; `--model-depth D` runs the exhaustive model check instead.
    RaftSim(raft_sim::RaftSimArgs),
    /// Train an MLP with K simulated workers in one process: each computes a gradient on its
    /// shard, a rule (mean, median, trimmed mean, Krum) reduces them on the GPU or CPU, and the
    /// optimizer steps. Prints the final test accuracy (or a --json summary).
    Train(train::TrainArgs),
    /// Run a node: mine, validate, store and relay blocks over QUIC; serve /status and /metrics.
    Node(node::NodeArgs),
    /// Start a local network of `hashgrad node` processes behind fault relays (latency, loss,
    /// partitions, kills); show a live table and end with a summary.
    Testnet(testnet::TestnetArgs),
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "hashgrad=info,warn",
        1 => "hashgrad=debug,info",
        _ => "hashgrad=trace,debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Runs the CLI and maps errors to exit codes: 0 success, 1 failure, 2 bad usage.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Hash(args) => hash::run(args),
        Command::Adapters(args) => adapters::run(args),
        Command::MineHeader(args) => mine_header::run(args),
        Command::Bench(args) => bench::run(args),
        Command::RaftSim(args) => raft_sim::run(args),
        Command::Train(args) => train::run(args),
        Command::Node(args) => node::run(args),
        Command::Testnet(args) => testnet::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.chain().any(|cause| cause.is::<UsageError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
