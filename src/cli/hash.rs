//! `hashgrad hash HEADER_HEX`: prints the block hash (display order) of an 80-byte header.

use clap::Args;

use crate::hash::{display_hash, parse_header_hex, reference::sha256d};

/// Arguments of `hashgrad hash`.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// The 80-byte header as 160 hex characters (Bitcoin serialisation).
    pub header_hex: String,
}

/// Prints the header's double-SHA-256 block hash in display (reversed) byte order; bad hex is a
/// usage error.
pub fn run(args: HashArgs) -> anyhow::Result<()> {
    let header = parse_header_hex(&args.header_hex).map_err(|e| super::usage(e.to_string()))?;
    println!("{}", display_hash(&sha256d(&header)));
    Ok(())
}
