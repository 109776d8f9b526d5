//! Joining a running training cluster (`hashgrad node --join`): a fourth node, started with
//! the cluster's initial voters and `train.join`, asks the leader over QUIC to add it; the
//! single-server membership change commits, the leader catches the newcomer up (with a
//! snapshot: the log was already compacted) and it ends with the cluster's params and round
//! log. Real QUIC loopback sockets, real redb files.

mod common;

use std::net::SocketAddr;

use common::{all_trained, eventually, init_logs, start_nodes, training, training_node};
use hashgrad::config::TrainSection;
use hashgrad::net::NodeId;
use hashgrad::node::{Node, NodeHandle};

fn train_section(voters: &[NodeId], rounds: u64) -> TrainSection {
    TrainSection {
        voters: voters.to_vec(),
        tick_ms: 20,
        seed: 9,
        consistency: hashgrad::cluster::ConsistencyLevel::Quorum,
        round_deadline_ms: 1000,
        rounds: Some(rounds),
        snapshot_every: 16,
        accept_joins: true,
        ..TrainSection::default()
    }
}

/// The node's round log as (round, params hash) pairs.
async fn round_log(node: &NodeHandle) -> Vec<(u64, String)> {
    common::round_log(node)
        .await
        .into_iter()
        .map(|(round, _, params, _)| (round, params))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_node_joins_a_running_cluster_and_gets_its_params() {
    init_logs();
    const ROUNDS: u64 = 200;
    let (_dirs, nodes) = start_nodes(3, |dir, peers, keys| {
        training_node(dir, peers, train_section(keys, ROUNDS))
    })
    .await;
    let voters: Vec<NodeId> = nodes.iter().map(NodeHandle::id).collect();
    // Training is under way and the log already compacted: the newcomer cannot replay it.
    eventually(60, "a compacted log", || async {
        nodes
            .iter()
            .all(|n| n.status().consensus.is_some_and(|c| c.snapshot_index > 0))
            .then_some(())
    })
    .await;

    let dir = tempfile::tempdir().expect("dir");
    let newcomer = Node::start(training_node(
        dir.path(),
        &[nodes[0].listen_addr()],
        TrainSection {
            join: true,
            ..train_section(&voters, ROUNDS)
        },
    ))
    .await
    .expect("start the newcomer");
    let me = newcomer.id().to_string();
    let mut all: Vec<&NodeHandle> = nodes.iter().collect();
    all.push(&newcomer);

    // The membership change commits everywhere.
    eventually(60, "four voters on every node", || async {
        all.iter()
            .all(|n| {
                n.status()
                    .consensus
                    .is_some_and(|c| c.voters.len() == 4 && c.voters.contains(&me))
            })
            .then_some(())
    })
    .await;
    let finals = all_trained(
        all.iter().copied(),
        ROUNDS,
        120,
        "all four at the last round",
    )
    .await;
    for t in &finals {
        assert_eq!(t.params_hash, finals[0].params_hash, "{finals:?}");
    }
    let status = newcomer.status().consensus.expect("consensus");
    assert!(status.snapshots_installed >= 1, "{status:?}");
    assert!(finals[3].restored_round > 0, "{:?}", finals[3]);
    let log = round_log(&newcomer).await;
    assert_eq!(log.len() as u64, ROUNDS);
    assert_eq!(log, round_log(&nodes[0]).await);

    newcomer.shutdown().await.expect("shutdown");
    for node in nodes {
        node.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_does_not_accept_joins_refuses_with_a_reason() {
    use hashgrad::cluster::{TrainingMessage, WireLimits};
    use hashgrad::net::frame::ServiceFrame;
    use hashgrad::net::{Identity, Message, NetConfig, Network};
    init_logs();
    // A cluster of one that leads itself, joins off (the default).
    let (_dirs, nodes) = start_nodes(1, |dir, peers, _| {
        training_node(
            dir,
            peers,
            TrainSection {
                accept_joins: false,
                ..train_section(&[], 5)
            },
        )
    })
    .await;
    let node = &nodes[0];
    eventually(30, "the node to lead", || async {
        training(node).filter(|t| t.role == "leader")
    })
    .await;
    let genesis = hashgrad::pow::NetworkParams::by_name("regtest")
        .expect("regtest")
        .genesis_hash();
    let net_config = NetConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), "regtest", genesis.0);
    let (stranger, _chain) =
        Network::bind(Identity::generate().expect("key"), net_config).expect("bind");
    let leader = stranger.dial(node.listen_addr(), None).await.expect("dial");
    let join = TrainingMessage::Join;
    let frame = Message::Service(ServiceFrame {
        code: join.frame_type(),
        payload: join.encode(),
    });
    let answer = stranger.request(leader, frame).await.expect("an answer");
    let refusal = answer
        .iter()
        .find_map(|m| match m {
            Message::Service(f) => {
                match TrainingMessage::decode(f.code, &f.payload, &WireLimits::for_params(0)) {
                    Ok(TrainingMessage::ForwardResult { result }) => Some(result),
                    _ => None,
                }
            }
            _ => None,
        })
        .expect("a join result");
    let reason = refusal.expect_err("the join is refused");
    assert!(reason.contains("accept_joins"), "{reason}");
    let voters = node.status().consensus.expect("consensus").voters;
    assert_eq!(voters, vec![node.id().to_string()]);
    stranger.shutdown();
    for node in nodes {
        node.shutdown().await.expect("shutdown");
    }
}
