//! In-process nodes on real QUIC loopback sockets with real redb stores in temp dirs: mining and
//! convergence, a late joiner, a restart from the data dir, an invalid block and its banned
//! sender, and a partition that heals onto the most-work branch without losing receipts.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hashgrad::config::{MiningSection, NetSection, NodeConfig};
use hashgrad::net::{Identity, Message, NetConfig, NetEvent, Network};
use hashgrad::node::{Node, NodeHandle};
use hashgrad::pow::{BlockHash, Chain, NetworkParams, NodeId, Receipt};

const PACE_MS: u64 = 60;

fn config(dir: &Path, peers: &[SocketAddr], mining: bool) -> NodeConfig {
    NodeConfig {
        data_dir: dir.to_path_buf(),
        network: "regtest".into(),
        net: NetSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            peers: peers.iter().map(|&addr| addr.into()).collect(),
            redial_secs: 0.2,
            ..NetSection::default()
        },
        mining: MiningSection {
            enabled: mining,
            pace_ms: PACE_MS,
            ..MiningSection::default()
        },
        ..NodeConfig::default()
    }
}

/// Starts `n` mining nodes, each dialing all earlier ones (a full mesh).
async fn cluster(dirs: &[tempfile::TempDir]) -> Vec<NodeHandle> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for dir in dirs {
        let peers: Vec<SocketAddr> = nodes.iter().map(NodeHandle::listen_addr).collect();
        nodes.push(
            Node::start(config(dir.path(), &peers, true))
                .await
                .expect("start"),
        );
    }
    nodes
}

/// Polls `check` every 50 ms until it holds or `secs` pass.
async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn tips(nodes: &[&NodeHandle]) -> Vec<String> {
    nodes.iter().map(|n| n.status().tip).collect()
}

fn same_tip(nodes: &[&NodeHandle]) -> bool {
    let tips = tips(nodes);
    tips.iter().all(|t| *t == tips[0])
}

/// Stops mining everywhere, then until all nodes share one tip lets `last` mine one block past
/// the highest tip and stops it again. Between equal-work tips the first seen stays best
/// (Bitcoin's rule, kept because it gives a selfish miner nothing on a tie), so a tie left when
/// mining stops never breaks by itself; every regtest block has the same work, so a block past
/// the highest tip wins everywhere. `set_mining(false)` only queues the stop, so a stopped
/// miner's last block can still land late and tie again: the loop mines past that too.
async fn settle(nodes: &[&NodeHandle], last: &NodeHandle) {
    for node in nodes {
        node.set_mining(false).await.expect("stop mining");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let height = nodes.iter().map(|n| n.status().height).max().unwrap_or(0);
        last.set_mining(true).await.expect("mine");
        eventually(20, "one more block", || async {
            last.status().height > height
        })
        .await;
        last.set_mining(false).await.expect("stop");
        let settled = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < settled {
            if same_tip(nodes) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if tokio::time::Instant::now() > deadline {
            let seen: Vec<(u64, String, usize)> = nodes
                .iter()
                .map(|n| {
                    let s = n.status();
                    (s.height, s.tip, s.peers.len())
                })
                .collect();
            panic!("no convergence: {seen:#?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_converge_a_late_joiner_syncs_and_a_restarted_node_continues() {
    let dirs: Vec<_> = (0..5)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let mut nodes = cluster(&dirs[..4]).await;
    eventually(30, "a connected mesh", || async {
        nodes.iter().all(|n| n.status().peers.len() == 3)
    })
    .await;
    eventually(60, "10 blocks everywhere", || async {
        nodes.iter().all(|n| n.status().height >= 10)
    })
    .await;
    let all: Vec<&NodeHandle> = nodes.iter().collect();
    settle(&all, &nodes[0]).await;

    // Blocks came from several miners and every node holds the same best chain.
    let miners = nodes[0]
        .with_chain(|chain: &Chain| {
            (1..=chain.height())
                .filter_map(|h| chain.hash_at_height(h))
                .filter_map(|h| chain.block(&h).map(|b| b.body.coinbase.miner))
                .collect::<std::collections::HashSet<NodeId>>()
                .len()
        })
        .await
        .expect("inspect");
    assert!(miners >= 2, "only {miners} node(s) mined on the best chain");

    // A late joiner without a miner syncs headers-first from one peer.
    let joiner = Node::start(config(dirs[4].path(), &[nodes[2].listen_addr()], false))
        .await
        .expect("joiner");
    let target = nodes[0].status().tip;
    eventually(30, "the late joiner to sync", || async {
        joiner.status().tip == target
    })
    .await;

    // A node restarted from its data dir keeps its chain, reconnects and follows new blocks.
    let restarted = nodes.remove(1);
    let before = restarted.status();
    restarted.shutdown().await.expect("shutdown");
    let peers = [nodes[0].listen_addr()];
    let again = Node::start(config(dirs[1].path(), &peers, false))
        .await
        .expect("restart");
    assert_eq!(
        again.status().node_id,
        before.node_id,
        "same key from the data dir"
    );
    assert_eq!(
        again.status().height,
        before.height,
        "chain loaded from the store"
    );
    assert_eq!(again.status().tip, before.tip);
    let height = nodes[0].status().height;
    nodes[0].set_mining(true).await.expect("mine");
    eventually(30, "new blocks after the restart", || async {
        again.status().height >= height + 2 && again.status().tip == nodes[0].status().tip
    })
    .await;

    for node in nodes {
        node.shutdown().await.expect("shutdown");
    }
    again.shutdown().await.expect("shutdown");
    joiner.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_block_is_refused_and_its_sender_banned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(config(dir.path(), &[], false))
        .await
        .expect("start");
    let params = NetworkParams::regtest();

    // A block on the genesis whose hash does not meet the target.
    let chain = Chain::new(params.clone());
    let template = chain.template(NodeId([7; 32]), Vec::new(), 1_800_000_000);
    let job = template.job();
    let bad = (0u32..)
        .map(|nonce| template.with_nonce(nonce))
        .find(|block| !job.target.is_met_by(&block.hash().0))
        .expect("some nonce misses an easy target");

    let net_config = NetConfig::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        "regtest",
        params.genesis_hash().0,
    );
    let identity = Identity::generate().expect("identity");
    let (peer, mut events) = Network::bind(identity, net_config).expect("bind");
    peer.dial(node.listen_addr(), None).await.expect("dial");
    assert_eq!(peer.broadcast(&Message::Block(bad.encode()), None), 1);

    let reason = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(NetEvent::Disconnected { reason, .. }) = events.recv().await {
                return reason;
            }
        }
    })
    .await
    .expect("disconnected");
    assert!(
        reason.contains("banned") && reason.contains("does not meet its own target"),
        "{reason}"
    );
    let status = node.status();
    assert_eq!(status.height, 0, "the invalid block was not accepted");
    let text = node.metrics().encode();
    assert!(text.contains("hashgrad_peer_bans_total 1"), "{text}");
    assert!(text.contains("hashgrad_blocks_rejected_total 1"), "{text}");
    let error = peer
        .dial(node.listen_addr(), None)
        .await
        .expect_err("banned");
    assert!(error.to_string().contains("banned"), "{error}");
    let unknown: Option<bool> = node
        .with_chain(move |chain| Some(chain.contains(&BlockHash(bad.hash().0))))
        .await
        .expect("inspect");
    assert_eq!(unknown, Some(false));
    node.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healed_partition_converges_on_the_most_work_branch_without_losing_receipts() {
    let dirs: Vec<_> = (0..4)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let nodes = cluster(&dirs).await;
    eventually(30, "a connected mesh", || async {
        nodes.iter().all(|n| n.status().peers.len() == 3)
    })
    .await;
    eventually(30, "3 blocks", || async {
        nodes.iter().all(|n| n.status().height >= 3)
    })
    .await;

    // Cut {0, 1} from {2, 3}.
    let left = [nodes[0].id(), nodes[1].id()];
    let right = [nodes[2].id(), nodes[3].id()];
    for node in &nodes[..2] {
        node.partition().cut(&right);
    }
    for node in &nodes[2..] {
        node.partition().cut(&left);
    }
    eventually(10, "the cut", || async {
        nodes.iter().all(|n| n.status().peers.len() == 1)
    })
    .await;
    let split = nodes.iter().map(|n| n.status().height).max().unwrap_or(0);

    // Each side gets its own receipts and mines them.
    let receipts: Vec<Receipt> = (0..4u8)
        .map(|i| Receipt(format!("round {i} committed").into_bytes()))
        .collect();
    for (i, receipt) in receipts.iter().enumerate() {
        let node = if i % 2 == 0 { &nodes[0] } else { &nodes[2] };
        assert!(node.submit_receipt(receipt.clone()).await.expect("submit"));
    }
    eventually(60, "both sides to mine their own branch", || async {
        nodes.iter().all(|n| n.status().height >= split + 4)
            && nodes[0].status().tip != nodes[2].status().tip
    })
    .await;
    for (i, receipt) in receipts.iter().enumerate() {
        let node = if i % 2 == 0 { &nodes[0] } else { &nodes[2] };
        let id = receipt.id();
        eventually(30, "receipts mined on their side", || async {
            node.with_chain(move |c| c.has_receipt(&id))
                .await
                .expect("inspect")
        })
        .await;
    }

    for node in &nodes {
        node.partition().heal();
    }
    eventually(30, "a reconnected mesh", || async {
        nodes.iter().all(|n| n.status().peers.len() == 3)
    })
    .await;
    let all: Vec<&NodeHandle> = nodes.iter().collect();
    // The losing side's receipts return to its pool and are mined again on the winning branch.
    eventually(60, "every receipt on the converged chain", || async {
        let mut all_in = true;
        for receipt in &receipts {
            let id = receipt.id();
            all_in &= nodes[0]
                .with_chain(move |c| c.has_receipt(&id))
                .await
                .expect("inspect");
        }
        all_in
    })
    .await;
    // Node 0's chain holds every receipt (checked above): its block settles the race, so the
    // winning branch is one that holds them all once mining stops.
    settle(&all, &nodes[0]).await;
    for node in &nodes {
        for receipt in &receipts {
            let id = receipt.id();
            assert!(
                node.with_chain(move |c| c.has_receipt(&id))
                    .await
                    .expect("inspect"),
                "receipt lost on {}",
                node.id()
            );
        }
    }
    // Everyone follows the branch with the most work.
    let works: Vec<String> = nodes.iter().map(|n| n.status().total_work).collect();
    assert!(works.iter().all(|w| *w == works[0]));
    for node in nodes {
        node.shutdown().await.expect("shutdown");
    }
}

/// Two nodes with `key_exchange` (None: the default), connected; the groups each shows per
/// peer in its status.
async fn key_exchange_shown(key_exchange: Option<&str>) -> (Vec<String>, Vec<String>) {
    let dirs: Vec<_> = (0..2)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let with_group = |mut config: NodeConfig| {
        if let Some(group) = key_exchange {
            config.net.key_exchange = group.parse().expect("key exchange");
        }
        config
    };
    let a = Node::start(with_group(config(dirs[0].path(), &[], false)))
        .await
        .expect("a");
    let b = Node::start(with_group(config(
        dirs[1].path(),
        &[a.listen_addr()],
        false,
    )))
    .await
    .expect("b");
    eventually(20, "a connection both ways", || {
        let linked = a.status().peers.len() == 1 && b.status().peers.len() == 1;
        async move { linked }
    })
    .await;
    let groups = |n: &NodeHandle| -> Vec<String> {
        n.status()
            .peers
            .iter()
            .map(|p| p.key_exchange.clone())
            .collect()
    };
    let shown = (groups(&a), groups(&b));
    a.shutdown().await.expect("shutdown");
    b.shutdown().await.expect("shutdown");
    shown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_nodes_show_the_post_quantum_key_exchange_per_peer() {
    let (a, b) = key_exchange_shown(None).await;
    assert_eq!(a, vec!["X25519MLKEM768"]);
    assert_eq!(b, vec!["X25519MLKEM768"]);
    // The explicit classical fallback, set on both, is what they show then.
    let (a, b) = key_exchange_shown(Some("x25519")).await;
    assert_eq!(
        (a, b),
        (vec!["X25519".to_string()], vec!["X25519".to_string()])
    );
}
