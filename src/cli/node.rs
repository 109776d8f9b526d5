//! `hashgrad node`: runs a node from a TOML config, with flags that override the file. Prints
//! one `listening quic=… http=… id=… cookie=…` line on stdout once bound (the cookie holds the
//! token API writes need), logs to stderr, and stops on Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::config::{ConfigError, NodeConfig, PeerAddr};
use crate::gpu::DeviceChoice;
use crate::net::NodeId;
use crate::node::{Node, NodeError};

/// Arguments of `hashgrad node`: a config file and flags that override it.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// TOML config file (see configs/node.toml); flags below override its keys.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the chain store and the node key.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Network profile (regtest, devnet, testnet).
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,
    /// UDP address for peer connections (port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Peer to dial, `IP:PORT` or `FINGERPRINT@IP:PORT`; repeatable, added to the config's.
    #[arg(long = "peer", value_name = "ADDR")]
    pub peers: Vec<PeerAddr>,
    /// TCP address for GET /status and GET /metrics.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Mine on the tip (the default unless the config says otherwise).
    #[arg(long, overrides_with = "no_mine")]
    pub mine: bool,
    /// Do not mine; only validate, store and relay.
    #[arg(long, overrides_with = "mine")]
    pub no_mine: bool,
    /// Mining backend: cpu, gpu or auto.
    #[arg(long, value_name = "NAME")]
    pub backend: Option<DeviceChoice>,
    /// CPU miner threads.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Wait up to twice this many milliseconds (random) before mining on a new tip
    /// [default: the network's, 1000 on regtest, 0 on devnet and testnet].
    #[arg(long, value_name = "MS")]
    pub pace_ms: Option<u64>,
    /// Train with the other nodes (a `[train]` section with its defaults when the config has
    /// none).
    #[arg(long)]
    pub train: bool,
    /// A training voter's key fingerprint (`hashgrad id --data-dir DIR` prints it); repeatable,
    /// added to the config's `train.voters`; implies --train.
    #[arg(long = "voter", value_name = "FINGERPRINT")]
    pub voters: Vec<NodeId>,
    /// Join a running training cluster through the node at ADDR (dialled as a peer): the
    /// leader adds this node as a voter (its `train.accept_joins` must be on). List the
    /// cluster's initial voters with --voter, without this node; implies --train.
    #[arg(long, value_name = "ADDR")]
    pub join: Option<PeerAddr>,
    /// Stop when stdin reaches end of file: a supervisor (`hashgrad testnet`) holds the pipe,
    /// so its children stop even when it is killed with no chance to stop them.
    #[arg(long)]
    pub stop_on_stdin_eof: bool,
}

impl NodeArgs {
    /// The config file (or the defaults) with the flags applied, checked.
    pub fn resolve(&self) -> Result<NodeConfig, ConfigError> {
        // The network is settled first: keys the file leaves out (the mining pace) come
        // from the network's profile.
        let mut config = match (&self.config, &self.network) {
            (Some(path), network) => NodeConfig::from_file_on_network(path, network.as_deref())?,
            (None, Some(network)) => NodeConfig::for_network(network),
            (None, None) => NodeConfig::default(),
        };
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(listen) = self.listen {
            config.net.listen = listen;
        }
        config.net.peers.extend(self.peers.iter().copied());
        if let Some(http) = self.http {
            config.http.listen = Some(http);
        }
        if self.mine {
            config.mining.enabled = true;
        }
        if self.no_mine {
            config.mining.enabled = false;
        }
        if let Some(backend) = self.backend {
            config.mining.backend = backend;
        }
        if let Some(threads) = self.threads {
            config.mining.threads = threads;
        }
        if let Some(pace) = self.pace_ms {
            config.mining.pace_ms = pace;
        }
        if self.train || !self.voters.is_empty() || self.join.is_some() {
            let train = config.train.get_or_insert_with(Default::default);
            train.voters.extend(self.voters.iter().copied());
        }
        if let (Some(addr), Some(train)) = (self.join, &mut config.train) {
            config.net.peers.push(addr);
            train.join = true;
        }
        config.validate()?;
        Ok(config)
    }
}

/// Runs a node until Ctrl-C (or, with `--stop-on-stdin-eof`, until stdin closes); a bad config or
/// a failed start (unusable data dir, taken port) is a usage error.
pub fn run(args: NodeArgs) -> anyhow::Result<()> {
    let config = args.resolve().map_err(|e| super::usage(e.to_string()))?;
    let data_dir = config.data_dir.clone();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        // A node that cannot start (unknown network, taken port, unusable data dir or store)
        // needs the user to change how it is started: exit code 2, like any bad input.
        // Failures after the `listening` line exit with 1.
        let node = Node::start(config).await.map_err(|e| {
            let hint = match &e {
                NodeError::Store(_) | NodeError::DataDir(..) => {
                    " (the data dir is --data-dir, or `data_dir` in the config)"
                }
                _ => "",
            };
            super::usage(format!("{}{hint}", super::one_line(&e)))
        })?;
        let http = node
            .http_addr()
            .map_or_else(|| "off".to_string(), |a| a.to_string());
        // The cookie's path comes last: it is the one part that may hold spaces.
        let cookie = match node.http_addr() {
            Some(_) => format!(
                " cookie={}",
                data_dir.join(crate::api::COOKIE_FILE).display()
            ),
            None => String::new(),
        };
        println!(
            "listening quic={} http={} id={}{cookie}",
            node.listen_addr(),
            http,
            node.id()
        );
        let stop = node.stopper();
        if args.stop_on_stdin_eof {
            let stop_on_eof = node.stopper();
            std::thread::spawn(move || {
                // Blocks until the writer closes the pipe (or it fails); either way, stop.
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
                stop_on_eof();
            });
        }
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop();
            }
        });
        node.wait().await?;
        Ok(())
    })
}
