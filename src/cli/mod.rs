//! The command line: clap definitions and one module per subcommand. Each subcommand parses
//! its arguments, calls the library and prints; user mistakes exit with code 2, failures with 1.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod adapters;
pub mod bench;
pub mod check;
pub mod hash;
pub mod id;
pub mod mine;
pub mod mine_header;
pub mod node;
pub mod raft_sim;
pub mod report;
pub mod testnet;
pub mod trace;
pub mod train;

/// An error caused by the user's input (bad hex, unknown backend, bad config): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Shorthand for a `UsageError` wrapped in `anyhow`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// The `hashgrad` command line: global flags and one subcommand.
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
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `hashgrad`, one per module of `cli`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the block hash (display order) of an 80-byte header given in hex.
    Hash(hash::HashArgs),
    /// List the GPU adapters wgpu can use, with the index `--adapter` accepts.
    Adapters(adapters::AdaptersArgs),
    /// Search a nonce range of an 80-byte header for its own `bits` target; print each nonce
    /// found with its block hash, then the hash rate.
    MineHeader(mine_header::MineHeaderArgs),
    /// Mine for a Stratum v1 pool (`--pool stratum+tcp://HOST:PORT --user NAME`) with the CPU
    /// or GPU backend: submit every share that meets the pool's difficulty, reconnect when the
    /// pool goes; print the rate and accepted/rejected shares (or a --json summary).
    Mine(mine::MineArgs),
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
    /// Run a node: mine, validate, store and relay blocks over QUIC; serve /status and /metrics;
    /// with a `[train]` section, train a model with the other nodes.
    Node(node::NodeArgs),
    /// Print the key fingerprint of a data dir's node (creating its key if needed), for the
    /// `[train] voters` and `[net] pinned` of a cluster's configs.
    Id(id::IdArgs),
    /// Check recorded histories for linearizability (or causal consistency); exit 0 holds,
    /// 1 violated, 3 unknown (time budget), 2 bad input.
    Check(check::CheckArgs),
    /// Start a local network of `hashgrad node` processes behind fault relays (latency, loss,
    /// partitions, kills); show a live table and end with a summary.
    Testnet(testnet::TestnetArgs),
    /// Merge the event logs of a testnet dir: `--check` verifies happened-before (exit 1 on a
    /// violation, naming the event), `--shiviz OUT.log` writes a log ShiViz loads.
    Trace(trace::TraceArgs),
    /// Write one self-contained HTML page of a testnet dir: messages between nodes, Raft
    /// roles, the block tree, loss and accuracy, hash rate, round latency, consistency verdict.
    Report(report::ReportArgs),
}

/// Whether log lines may carry ANSI colour: only on a terminal, and never with `NO_COLOR` set
/// to a non-empty value (<https://no-color.org>), so logs in files, pipes and CI are plain text.
pub fn log_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|value| value.is_empty())
}

/// An error and its causes on one line, `outer: cause: cause`, leaving out a cause whose text
/// the message before it already holds (many messages quote their cause; printing it again
/// would say the reason twice).
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let text = next.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = next.source();
    }
    line
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
        .with_ansi(log_colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .with_target(false)
        .try_init();
}

/// Runs the CLI and maps errors to exit codes: 0 success, 1 failure, 2 bad usage.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => error.exit(), // --help, --version
        Err(error) => {
            // One line naming the problem (clap adds a usage block and a --help hint).
            let text = error.to_string();
            let line = text.lines().next().unwrap_or("error: bad arguments");
            eprintln!("{line} (see --help)");
            return ExitCode::from(2);
        }
    };
    init_logging(cli.verbose);
    if matches!(
        cli.command,
        Command::Hash(_)
            | Command::Adapters(_)
            | Command::Id(_)
            | Command::Check(_)
            | Command::Trace(_)
    ) {
        quiet_on_closed_pipe();
    }
    let result = match cli.command {
        Command::Hash(args) => hash::run(args),
        Command::Adapters(args) => adapters::run(args),
        Command::MineHeader(args) => mine_header::run(args),
        Command::Mine(args) => mine::run(args),
        Command::Bench(args) => bench::run(args),
        Command::RaftSim(args) => raft_sim::run(args),
        Command::Train(args) => train::run(args),
        Command::Node(args) => node::run(args),
        Command::Id(args) => id::run(args),
        Command::Check(args) => return check::run(args),
        Command::Testnet(args) => testnet::run(args),
        Command::Trace(args) => return trace::run(args),
        Command::Report(args) => report::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(error.as_ref()));
            if error.chain().any(|cause| cause.is::<UsageError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// For commands that only print (no sockets): a closed stdout pipe (`| head`) ends the process
/// quietly, as Unix tools do, instead of a panic on the next print. Rust ignores SIGPIPE, which
/// commands with sockets rely on, so this is not done for them.
fn quiet_on_closed_pipe() {
    // SAFETY: `signal` with `SIG_DFL` installs the default action and touches no Rust state;
    // it runs before these commands start any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        assert!(log_colour(true, None));
        assert!(!log_colour(false, None), "a pipe or file gets plain text");
        assert!(
            !log_colour(true, Some(OsStr::new("1"))),
            "NO_COLOR=1 turns it off"
        );
        assert!(
            log_colour(true, Some(OsStr::new(""))),
            "an empty NO_COLOR does not count (no-color.org)"
        );
    }

    #[test]
    fn a_cause_the_message_already_quotes_is_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let error = crate::net::NetError::Bind(([127, 0, 0, 1], 9).into(), io);
        let line = one_line(&error);
        let reason = std::io::Error::from(std::io::ErrorKind::AddrInUse).to_string();
        assert_eq!(line.matches(&reason).count(), 1, "{line}");
        let wrapped = anyhow::Error::new(error).context("starting the node");
        let line = one_line(wrapped.as_ref());
        assert!(
            line.starts_with("starting the node: cannot listen on 127.0.0.1:9"),
            "{line}"
        );
        assert_eq!(line.matches(&reason).count(), 1, "{line}");
    }
}
