//! `hashgrad id`: prints the key fingerprint of a data dir's node (creating the key when the
//! dir has none), so a cluster's `[train] voters` and `[net] pinned` can be written before
//! any node starts.

use std::path::PathBuf;

use clap::Args;

use crate::net::Identity;

/// Arguments of `hashgrad id`.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The node's data dir (created with a new key if it has none).
    #[arg(long, default_value = "hashgrad-data")]
    pub data_dir: PathBuf,
}

/// Prints the fingerprint of the data dir's node key, creating the dir and key when missing.
pub fn run(args: IdArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir).map_err(|e| {
        super::usage(format!(
            "cannot create --data-dir {}: {e}",
            args.data_dir.display()
        ))
    })?;
    let identity = Identity::load_or_create(&args.data_dir)?;
    println!("{}", identity.id());
    Ok(())
}
