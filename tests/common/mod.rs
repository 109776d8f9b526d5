//! Helpers shared by the integration tests that run in-process clusters: polling until a
//! condition holds, one blocking HTTP exchange (with a node's token, `Api`), test logging, starting nodes that all know
//! each other's keys, a loopback training node's config, its training status and committed
//! round log, waiting until every node has trained a round, and settling every node on one
//! chain tip.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use hashgrad::api::TrainingStatus;
use hashgrad::config::{NodeConfig, TrainSection};
use hashgrad::net::{Identity, NodeId};
use hashgrad::node::{Node, NodeHandle};
use hashgrad::views::ReadMode;

/// Polls `check` every 20 ms until it returns `Some` or `secs` pass (then panics naming `what`).
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One HTTP/1.1 exchange with a read deadline; `None` when no full answer came in time.
pub fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    exchange(addr, None, method, path, body)
}

/// A node's HTTP API: its address and the token (`DATA_DIR/.cookie`) that writes need.
#[derive(Debug, Clone)]
pub struct Api {
    pub addr: SocketAddr,
    pub token: String,
}

impl Api {
    /// The API of an in-process node started with an HTTP address.
    pub fn of(node: &NodeHandle) -> Api {
        Api {
            addr: node.http_addr().expect("the node serves HTTP"),
            token: node
                .api_token()
                .expect("an HTTP node has a token")
                .to_string(),
        }
    }

    /// One exchange carrying the token.
    pub fn call(&self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        exchange(self.addr, Some(&self.token), method, path, body)
    }
}

fn exchange(
    addr: SocketAddr,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &str,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .ok()?;
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.get(9..12)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_string();
    Some((code, body))
}

/// Logs to the test's output, filtered by `RUST_LOG`.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Starts `n` nodes in fresh data dirs, keys made first so `config(dir, peers, keys)` can name
/// every node; each node dials the ones started before it.
pub async fn start_nodes(
    n: usize,
    config: impl Fn(&std::path::Path, &[SocketAddr], &[NodeId]) -> NodeConfig,
) -> (Vec<tempfile::TempDir>, Vec<NodeHandle>) {
    let dirs: Vec<tempfile::TempDir> = (0..n).map(|_| tempfile::tempdir().expect("dir")).collect();
    let keys: Vec<NodeId> = dirs
        .iter()
        .map(|d| Identity::load_or_create(d.path()).expect("key").id())
        .collect();
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for dir in &dirs {
        let peers: Vec<SocketAddr> = nodes.iter().map(NodeHandle::listen_addr).collect();
        nodes.push(
            Node::start(config(dir.path(), &peers, &keys))
                .await
                .expect("start"),
        );
    }
    (dirs, nodes)
}

/// A loopback node (`NodeConfig::loopback`) that trains with `train`.
pub fn training_node(
    dir: &std::path::Path,
    peers: &[SocketAddr],
    train: TrainSection,
) -> NodeConfig {
    NodeConfig {
        train: Some(train),
        ..NodeConfig::loopback(dir, peers)
    }
}

/// The node's training status (`None` while it does not train).
pub fn training(node: &NodeHandle) -> Option<TrainingStatus> {
    node.status().training
}

/// Waits until every one of `nodes` has trained `round`; their training statuses then.
pub async fn all_trained<'a>(
    nodes: impl IntoIterator<Item = &'a NodeHandle>,
    round: u64,
    secs: u64,
    what: &str,
) -> Vec<TrainingStatus> {
    let nodes: Vec<&NodeHandle> = nodes.into_iter().collect();
    eventually(secs, what, || async {
        let all: Vec<TrainingStatus> = nodes.iter().map(|n| training(n)).collect::<Option<_>>()?;
        all.iter().all(|t| t.trained_round == round).then_some(all)
    })
    .await
}

/// One committed round as the tests compare them: round, parent, params and reduced-gradient
/// hashes.
pub type LoggedRound = (u64, String, String, String);

/// The node's committed round log, read from its applied state.
pub async fn round_log(node: &NodeHandle) -> Vec<LoggedRound> {
    node.consensus()
        .expect("consensus")
        .read(ReadMode::Local, |machine| {
            machine
                .state()
                .rounds()
                .map(|r| {
                    (
                        r.round,
                        r.parent_hash.to_string(),
                        r.params_hash.to_string(),
                        r.reduced_hash.to_string(),
                    )
                })
                .collect()
        })
        .await
        .expect("read")
}

/// Brings `nodes` onto one chain tip and returns it: stops mining on all of them, then until
/// their tips agree lets `last` mine one block past the highest tip and stops it again.
///
/// Stopping every miner at once is not enough. Chain acceptance keeps the first-seen of two
/// equal-work tips (Bitcoin's rule: a selfish miner who publishes a withheld block on a tie
/// gains nothing from being second), so two nodes whose last blocks crossed stay apart for
/// good. Every regtest block carries the pow limit's work, so a block past the highest tip
/// gives `last`'s chain strictly the most work, which every node adopts. A block a stopped
/// miner delivers late can tie again; the next round of the loop breaks that tie too.
pub async fn settle_on_one_tip(nodes: &[&NodeHandle], last: &NodeHandle, secs: u64) -> String {
    for node in nodes {
        node.set_mining(false).await.expect("stop mining");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let height = nodes.iter().map(|n| n.status().height).max().unwrap_or(0);
        last.set_mining(true).await.expect("mine");
        while last.status().height <= height {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for a block past height {height}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        last.set_mining(false).await.expect("stop mining");
        let settled = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < settled.min(deadline) {
            let tips: Vec<String> = nodes.iter().map(|n| n.status().tip).collect();
            if tips.iter().all(|t| *t == tips[0]) {
                return tips[0].clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let seen: Vec<(u64, String)> = nodes
            .iter()
            .map(|n| {
                let s = n.status();
                (s.height, s.tip)
            })
            .collect();
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for one chain tip: {seen:?}"
        );
    }
}
