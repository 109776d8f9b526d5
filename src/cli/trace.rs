//! `hashgrad trace DIR`: reads the event logs of a testnet dir (`DIR/n*/data/events/`, or
//! `DIR/<node>/events/`, or `DIR/events/` for one node), checks happened-before (`--check`)
//! and writes a ShiViz log (`--shiviz OUT`). Exit 0 holds, 1 a violation, 2 bad input.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::events;

/// Arguments of `hashgrad trace`.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// A testnet dir (with `n0/data/events/`, `n1/…`) or one node's data dir.
    pub dir: PathBuf,
    /// Write the merged logs here in ShiViz's format (its default parsing regex).
    #[arg(long, value_name = "OUT.log")]
    pub shiviz: Option<PathBuf>,
    /// Verify happened-before: clocks monotone per node, every receive after its send.
    #[arg(long)]
    pub check: bool,
}

/// Runs `trace`.
pub fn run(args: TraceArgs) -> ExitCode {
    if args.shiviz.is_none() && !args.check {
        eprintln!("error: nothing to do: give --check, --shiviz OUT.log or both");
        return ExitCode::from(2);
    }
    let nodes = match events::read_all(&args.dir) {
        Ok(nodes) => nodes,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let total: usize = nodes.iter().map(Vec::len).sum();
    if let Some(out) = &args.shiviz {
        if let Err(e) = std::fs::write(out, events::shiviz_log(&nodes)) {
            eprintln!("error: cannot write {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
        println!(
            "wrote {total} events of {} nodes to {}",
            nodes.len(),
            out.display()
        );
    }
    if args.check {
        let violations = events::check(&nodes);
        if !violations.is_empty() {
            for violation in &violations {
                println!("violation: {violation}");
            }
            println!(
                "happened-before broken: {} violations in {total} events",
                violations.len()
            );
            return ExitCode::FAILURE;
        }
        println!(
            "happened-before holds: {total} events of {} nodes",
            nodes.len()
        );
    }
    ExitCode::SUCCESS
}
