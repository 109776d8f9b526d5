//! Training across nodes on real QUIC loopback sockets with real redb files and blob folders:
//! three mining nodes train the digits model together and end with exactly the params of
//! `hashgrad train --workers 3` with the same seed (level `all`, no faults); every committed
//! round's receipt lands in a block; config writes on any node (forwarded by followers) take
//! effect from the next round and reads honour the requested consistency.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{all_trained, eventually, init_logs, settle_on_one_tip, start_nodes, training};
use hashgrad::api::TrainingStatus;
use hashgrad::cluster::RoundCommitted;
use hashgrad::config::{HttpSection, MiningSection, NodeConfig, TrainSection};
use hashgrad::net::{Identity, NodeId};
use hashgrad::node::{Node, NodeHandle};
use hashgrad::train::aggregate::Reducer;
use hashgrad::train::model::Evaluation;
use hashgrad::train::setup::ShardWorker;
use hashgrad::train::{Dataset, Setup, Simulation, TrainConfig, Trainer};
use hashgrad::views::ReadMode;

const SEED: u64 = 5;
/// Test accuracy the digits model must reach after the failover test's 150 rounds.
const TARGET_ACCURACY: f32 = 0.9;

fn config(dir: &Path, peers: &[SocketAddr], train: TrainSection) -> NodeConfig {
    NodeConfig {
        http: HttpSection {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..HttpSection::default()
        },
        mining: MiningSection {
            enabled: true,
            backend: hashgrad::gpu::DeviceChoice::Cpu,
            threads: 1,
            pace_ms: 150,
        },
        train: Some(train),
        ..NodeConfig::loopback(dir, peers)
    }
}

fn train_section(voters: &[NodeId], rounds: Option<u64>, consistency: &str) -> TrainSection {
    TrainSection {
        voters: voters.to_vec(),
        tick_ms: 20,
        seed: SEED,
        consistency: consistency.parse().expect("consistency level"),
        round_deadline_ms: 3000,
        rounds,
        eval_every: 5,
        ..TrainSection::default()
    }
}

async fn http_async(node: &NodeHandle, method: &str, path: &str, body: &str) -> (u16, String) {
    let api = common::Api::of(node);
    let (method, path, body) = (method.to_string(), path.to_string(), body.to_string());
    tokio::task::spawn_blocking(move || api.call(&method, &path, &body))
        .await
        .expect("http task")
        .expect("an HTTP answer")
}

/// `hashgrad train --workers 3 --seed SEED` (its defaults otherwise) after `rounds` rounds.
fn simulated(rounds: u64) -> Simulation {
    let config = TrainConfig {
        workers: 3,
        seed: SEED,
        ..TrainConfig::default()
    };
    let data = Dataset::digits().expect("digits");
    let mut simulation = Simulation::new(&config, &data, Reducer::Cpu).expect("simulation");
    for _ in 0..rounds {
        simulation.run_round().expect("round");
    }
    simulation
}

async fn start_three(
    train: impl Fn(&[NodeId]) -> TrainSection,
) -> (Vec<tempfile::TempDir>, Vec<NodeHandle>) {
    start_nodes(3, |dir, peers, keys| config(dir, peers, train(keys))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_mining_nodes_train_to_the_params_of_hashgrad_train() {
    init_logs();
    const ROUNDS: u64 = 30;
    let (_dirs, nodes) = start_three(|voters| train_section(voters, Some(ROUNDS), "all")).await;

    // Every node's trainer reaches the last round (each step checked against the committed
    // params hash, or the node would have stopped).
    let finals = all_trained(&nodes, ROUNDS, 120, "every node to train 30 rounds").await;

    // The same computation as `hashgrad train --workers 3 --seed 5`.
    let expected = simulated(ROUNDS).trainer().state_hash().to_string();
    for status in &finals {
        assert_eq!(status.round, ROUNDS);
        assert_eq!(status.params_hash, expected, "{status:?}");
        assert!(status.accuracy.is_some_and(|a| a > 0.5), "{status:?}");
    }

    // Every round's receipt is mined into the chain, and every node sees the same list.
    let receipts = eventually(120, "receipts of all rounds on the chain", || async {
        let (code, body) = http_async(&nodes[1], "GET", "/receipts", "").await;
        assert_eq!(code, 200, "{body}");
        let list: Vec<serde_json::Value> = serde_json::from_str(&body).expect("receipts JSON");
        (list.len() as u64 == ROUNDS).then_some(list)
    })
    .await;
    let rounds: Vec<u64> = receipts
        .iter()
        .filter_map(|r| r["round"].as_u64())
        .collect();
    assert_eq!(rounds, (1..=ROUNDS).collect::<Vec<_>>());
    assert_eq!(
        receipts.last().and_then(|r| r["params_hash"].as_str()),
        Some(expected.as_str())
    );
    for node in nodes {
        node.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_writes_on_any_node_apply_from_the_next_round() {
    init_logs();
    let (_dirs, nodes) = start_three(|voters| train_section(voters, None, "quorum")).await;
    let leader = eventually(30, "a training leader", || async {
        nodes
            .iter()
            .position(|n| training(n).is_some_and(|t| t.role == "leader" && t.round >= 2))
    })
    .await;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let at = |i: usize| &nodes[i];

    // A write on a follower is forwarded to the leader; a linearizable read anywhere sees it.
    let (code, body) = http_async(at(follower), "PUT", "/config/learning_rate", "0.0005").await;
    assert_eq!(code, 200, "{body}");
    let written: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let index = written["index"].as_u64().expect("index");
    let (code, body) = http_async(
        at(other),
        "GET",
        "/config/learning_rate?consistency=linearizable",
        "",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"value\":\"0.0005\""), "{body}");

    // Bad keys, bad values and a failed compare-and-set are refused with a reason.
    let (code, body) = http_async(at(leader), "PUT", "/config/no_such_key", "1").await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("no_such_key"), "{body}");
    let (code, body) = http_async(at(leader), "PUT", "/config/learning_rate", "-3").await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = http_async(at(other), "GET", "/config/rule?consistency=sometimes", "").await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = http_async(
        at(other),
        "PUT",
        "/config/user.owner?expect_unset=true",
        "a",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = http_async(at(follower), "PUT", "/config/user.owner?expect=b", "c").await;
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("\"current\":\"a\""), "{body}");
    let (code, body) = http_async(
        at(follower),
        "GET",
        "/config/user.owner?consistency=local",
        "",
    )
    .await;
    assert!(code == 200 || code == 404, "{code} {body}");
    let (code, _) = http_async(
        at(leader),
        "GET",
        "/config/user.never?consistency=lease",
        "",
    )
    .await;
    assert_eq!(code, 404);

    // Rounds committed after the write use the new rate; earlier ones the old.
    let consensus = nodes[leader].consensus().expect("consensus").clone();
    let rates = eventually(60, "a round after the write", || {
        let consensus = consensus.clone();
        async move {
            consensus
                .read(ReadMode::Local, move |machine| {
                    let rounds: Vec<(u64, f32)> = machine
                        .state()
                        .rounds()
                        .map(|r| (r.round, r.learning_rate))
                        .collect();
                    let last = machine.state().last_applied();
                    (last > index + 2).then_some(rounds)
                })
                .await
                .ok()
                .flatten()
                .filter(|rounds| rounds.iter().any(|(_, rate)| *rate == 0.0005))
        }
    })
    .await;
    let first_new = rates
        .iter()
        .position(|(_, r)| *r == 0.0005)
        .expect("new rate");
    assert!(
        first_new > 0,
        "rounds before the write kept the old rate: {rates:?}"
    );
    assert!(
        rates[first_new..].iter().all(|(_, r)| *r == 0.0005),
        "{rates:?}"
    );
    for node in nodes {
        node.shutdown().await.expect("shutdown");
    }
}

/// Asserts the nodes' round logs agree on the rounds all of them hold; returns the shortest
/// length.
async fn assert_same_logs(nodes: &[&NodeHandle]) -> usize {
    let mut logs = Vec::new();
    for node in nodes {
        logs.push(round_log(node).await);
    }
    let shortest = logs.iter().map(Vec::len).min().unwrap_or(0);
    for log in &logs[1..] {
        assert_eq!(log[..shortest], logs[0][..shortest]);
    }
    shortest
}

/// Every node's committed round log as (round, parent, params) triples.
async fn round_log(node: &NodeHandle) -> Vec<(u64, String, String)> {
    common::round_log(node)
        .await
        .into_iter()
        .map(|(round, parent, params, _)| (round, parent, params))
        .collect()
}

fn leader_of(nodes: &[&NodeHandle]) -> Option<usize> {
    nodes
        .iter()
        .position(|n| training(n).is_some_and(|t| t.role == "leader"))
}

/// Every committed round the node holds, in order.
async fn committed_rounds(node: &NodeHandle) -> Vec<RoundCommitted> {
    node.consensus()
        .expect("consensus")
        .read(ReadMode::Local, |machine| {
            machine.state().rounds().cloned().collect()
        })
        .await
        .expect("read")
}

/// Replays `rounds` in-process from what every node derives from the seed (`Setup`): each of
/// the `workers`' shard samplers draws one batch a round, as a node's does whether or not its
/// gradient made the round (a restarted one skips the batches it missed), and the trainer
/// reduces exactly the round's contributors, in their order, with the round's rule and
/// learning rate. Returns the params hash after each round and the final evaluation.
fn replay(rounds: &[RoundCommitted], workers: &[NodeId]) -> (Vec<String>, Evaluation) {
    let config = TrainConfig {
        workers: workers.len(),
        seed: SEED,
        ..TrainConfig::default()
    };
    let data = Dataset::digits().expect("digits");
    let setup = Setup::new(&config, &data).expect("setup");
    let mut shards: Vec<ShardWorker> = (0..workers.len())
        .map(|w| setup.worker(w).expect("shard"))
        .collect();
    let mut trainer =
        Trainer::new(setup.initial.clone(), config.rule, Reducer::Cpu).expect("trainer");
    let mut hashes = Vec::new();
    for round in rounds {
        assert_eq!(
            round.parent_hash,
            trainer.state_hash(),
            "round {}",
            round.round
        );
        let mut gradients: Vec<Vec<f32>> = Vec::new();
        let positions: Vec<usize> = round
            .contributors
            .iter()
            .map(|c| {
                workers
                    .iter()
                    .position(|w| w == c)
                    .expect("a contributor is a worker")
            })
            .collect();
        for (index, shard) in shards.iter_mut().enumerate() {
            if positions.contains(&index) {
                shard
                    .compute(
                        trainer.model().expect("the MLP"),
                        trainer.params(),
                        &setup.train,
                        config.batch,
                    )
                    .expect("gradient");
            } else {
                shard.skip_batches(1, config.batch);
            }
        }
        for &position in &positions {
            gradients.push(shards[position].gradient().to_vec());
        }
        let views: Vec<&[f32]> = gradients.iter().map(Vec::as_slice).collect();
        trainer.set_rule(round.rule);
        trainer.configure(&round.optimizer);
        trainer.set_learning_rate(round.learning_rate);
        trainer.apply(&views).expect("step");
        hashes.push(trainer.state_hash().to_string());
    }
    let evaluation = trainer
        .model()
        .expect("the MLP")
        .evaluate(trainer.params(), setup.test.features(), setup.test.labels())
        .expect("evaluate");
    (hashes, evaluation)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_leaders_lose_no_round_and_restarted_nodes_catch_up() {
    init_logs();
    const ROUNDS: u64 = 150;
    let make = |voters: &[NodeId]| TrainSection {
        round_deadline_ms: 1000,
        ..train_section(voters, Some(ROUNDS), "quorum")
    };
    let (dirs, nodes) = start_three(make).await;
    let voters: Vec<NodeId> = nodes.iter().map(NodeHandle::id).collect();
    let mut nodes: Vec<Option<NodeHandle>> = nodes.into_iter().map(Some).collect();

    // Twice: wait for progress, stop the leader mid-training, and bring the node back from
    // its data dir once the others have moved on without it.
    for until in [40, 90] {
        let running: Vec<&NodeHandle> = nodes.iter().flatten().collect();
        let leader = eventually(60, "a leader past the mark", || async {
            leader_of(&running).filter(|&l| training(running[l]).is_some_and(|t| t.round >= until))
        })
        .await;
        let victim = nodes
            .iter()
            .position(|n| n.as_ref().map(NodeHandle::id) == Some(running[leader].id()))
            .expect("leader index");
        drop(running);
        nodes[victim]
            .take()
            .expect("leader")
            .shutdown()
            .await
            .expect("stop");
        let rest: Vec<&NodeHandle> = nodes.iter().flatten().collect();
        let round_then = rest
            .iter()
            .filter_map(|n| training(n))
            .map(|t| t.round)
            .max()
            .unwrap_or(0);
        eventually(60, "the survivors to keep committing", || async {
            rest.iter()
                .all(|n| training(n).is_some_and(|t| t.round >= round_then + 10))
                .then_some(())
        })
        .await;
        let peers: Vec<SocketAddr> = rest.iter().map(|n| n.listen_addr()).collect();
        drop(rest);
        let restarted = Node::start(config(dirs[victim].path(), &peers, make(&voters)))
            .await
            .expect("restart");
        nodes[victim] = Some(restarted);
    }

    let all: Vec<&NodeHandle> = nodes.iter().flatten().collect();
    let finals = all_trained(
        all.iter().copied(),
        ROUNDS,
        120,
        "all three at the last round",
    )
    .await;
    // One gap-free round log, identical on every node, each round starting from the last.
    let logs = [
        round_log(all[0]).await,
        round_log(all[1]).await,
        round_log(all[2]).await,
    ];
    assert_eq!(logs[0].len() as u64, ROUNDS);
    for (i, (round, parent, _)) in logs[0].iter().enumerate() {
        assert_eq!(*round, i as u64 + 1);
        if i > 0 {
            assert_eq!(
                parent,
                &logs[0][i - 1].2,
                "round {round} does not follow its parent"
            );
        }
    }
    assert_eq!(logs[0], logs[1]);
    assert_eq!(logs[0], logs[2]);
    // One params hash everywhere. At level `quorum` a failover changes which gradients a round
    // holds, so the accuracy is not an undisturbed run's (once 0.9415 against 0.9526): what
    // the design fixes is that the committed contributor sets determine the result. Replaying
    // them in-process must reach every round's committed params hash and the nodes' accuracy.
    let committed = committed_rounds(all[0]).await;
    let (hashes, replayed) = replay(&committed, &voters);
    let logged: Vec<String> = logs[0]
        .iter()
        .map(|(_, _, params)| params.clone())
        .collect();
    assert_eq!(
        hashes, logged,
        "the replay of the contributor sets diverged"
    );
    assert!(
        committed
            .iter()
            .any(|r| r.contributors.len() < voters.len()),
        "no round lost a gradient to the failovers: the replay checked nothing a clean run does not"
    );
    for status in &finals {
        assert_eq!(status.params_hash, finals[0].params_hash);
        assert_eq!(status.params_hash, logged[logged.len() - 1]);
        assert_eq!(status.accuracy, Some(replayed.accuracy), "{status:?}");
    }
    // The target the digits model reaches in 150 rounds from any quorum of its 3 shards
    // (in-process: 0.953 with all three in every round, 0.939 with one shard left out of every
    // round, 0.947 to 0.955 over 30 random failover schedules).
    assert!(
        replayed.accuracy >= TARGET_ACCURACY,
        "accuracy {} after failovers, target {TARGET_ACCURACY}",
        replayed.accuracy
    );
    drop(all);
    for node in nodes.into_iter().flatten() {
        node.shutdown().await.expect("shutdown");
    }
}

/// A peer on the network that speaks the training protocol badly.
async fn hostile_peer(
    nodes: &[NodeHandle],
) -> (
    hashgrad::net::Network,
    tokio::sync::mpsc::Receiver<hashgrad::net::NetEvent>,
) {
    use hashgrad::net::{NetConfig, Network, Service};
    let genesis = hashgrad::pow::NetworkParams::by_name("regtest")
        .expect("regtest")
        .genesis_hash();
    let config = NetConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), "regtest", genesis.0);
    let (net, _chain) = Network::bind(Identity::generate().expect("key"), config).expect("bind");
    let training = net.subscribe(Service::Training);
    for node in nodes {
        net.dial(node.listen_addr(), None).await.expect("dial");
    }
    (net, training)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_gradients_are_refused_and_training_goes_on() {
    use hashgrad::cluster::TrainingMessage;
    use hashgrad::cluster::wire::Gradient;
    use hashgrad::net::frame::ServiceFrame;
    use hashgrad::net::{Message, NetEvent};
    init_logs();
    // The hostile worker is in the worker list (the three honest ones make the quorum); a
    // second hostile peer is not a worker at all.
    let hostile_dir = tempfile::tempdir().expect("dir");
    let hostile_key = Identity::load_or_create(hostile_dir.path()).expect("key");
    let hostile_id = hostile_key.id();
    let (_dirs, nodes) = start_three(|voters| {
        let workers = voters.iter().chain([&hostile_id]);
        TrainSection {
            workers: workers.copied().collect(),
            ..train_section(voters, None, "quorum")
        }
    })
    .await;
    let genesis = hashgrad::pow::NetworkParams::by_name("regtest")
        .expect("regtest")
        .genesis_hash();
    let net_config =
        hashgrad::net::NetConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), "regtest", genesis.0);
    let (worker_net, _chain) = hashgrad::net::Network::bind(hostile_key, net_config).expect("bind");
    let mut announcements = worker_net.subscribe(hashgrad::net::Service::Training);
    for node in &nodes {
        worker_net
            .dial(node.listen_addr(), None)
            .await
            .expect("dial");
    }
    let (outsider, _outsider_events) = hostile_peer(&nodes).await;

    // Answer announcements with every kind of bad gradient.
    let limits = hashgrad::cluster::WireLimits::max();
    let mut sent = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while sent < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no announcement reached the hostile worker"
        );
        let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_secs(5), announcements.recv()).await
        else {
            continue;
        };
        let NetEvent::Frame {
            peer: leader,
            frame,
        } = event
        else {
            continue;
        };
        let Ok(TrainingMessage::RoundAnnounce(announce)) =
            TrainingMessage::decode(frame.code, &frame.payload, &limits)
        else {
            continue;
        };
        let len = announce.gradient_len as usize;
        let good = Gradient {
            round: announce.round,
            params_hash: announce.params_hash,
            loss: 1.0,
            values: vec![0.01; len],
        };
        let mut nan = good.clone();
        nan.values[len / 2] = f32::NAN;
        let bad = [
            Gradient {
                values: vec![0.01; len - 1],
                ..good.clone()
            },
            nan,
            Gradient {
                round: announce.round.saturating_sub(1),
                ..good.clone()
            },
            Gradient {
                loss: f32::INFINITY,
                ..good.clone()
            },
        ];
        for gradient in bad {
            let message = TrainingMessage::Gradient(gradient);
            let frame = Message::Service(ServiceFrame {
                code: message.frame_type(),
                payload: message.encode(),
            });
            let _ = worker_net.request(leader, frame.clone()).await;
        }
        // And a well-formed gradient from a peer that is no worker.
        let message = TrainingMessage::Gradient(good);
        let frame = Message::Service(ServiceFrame {
            code: message.frame_type(),
            payload: message.encode(),
        });
        let _ = outsider.request(leader, frame).await;
        sent += 1;
    }

    // Every bad gradient was refused and counted (3 announcements x (4 bad gradients + 1 from
    // a non-worker), by whichever node received it); /status is refreshed on a timer.
    eventually(10, "the refusals counted", || async {
        let refused: u64 = nodes
            .iter()
            .filter_map(training)
            .map(|t| t.gradients_refused)
            .sum();
        (refused >= 15).then_some(())
    })
    .await;
    let with_metric = nodes.iter().any(|n| {
        n.metrics()
            .encode()
            .contains("hashgrad_training_gradients_refused_total")
    });
    assert!(with_metric, "no node exports the refusal counter");
    let mark = nodes
        .iter()
        .filter_map(training)
        .map(|t| t.round)
        .max()
        .unwrap_or(0);
    let agreed = eventually(60, "training to go on", || async {
        let all: Vec<TrainingStatus> = nodes.iter().map(training).collect::<Option<_>>()?;
        let target = mark + 10;
        (all.iter().all(|t| t.trained_round >= target)
            && all.iter().all(|t| t.trained_round == all[0].trained_round))
        .then_some(all)
    })
    .await;
    assert_same_logs(&nodes.iter().collect::<Vec<_>>()).await;
    assert!(agreed.iter().all(|t| t.accuracy.is_some()));
    worker_net.shutdown();
    outsider.shutdown();
    for node in nodes {
        node.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_minority_mines_but_commits_nothing_and_heals() {
    init_logs();
    let (_dirs, nodes) = start_three(|voters| train_section(voters, None, "quorum")).await;
    let all: Vec<&NodeHandle> = nodes.iter().collect();
    let leader = eventually(30, "training under way", || async {
        leader_of(&all).filter(|&l| training(all[l]).is_some_and(|t| t.round >= 5))
    })
    .await;
    // Cut a follower off from the other two, both ways.
    let isolated = (leader + 1) % 3;
    let others: Vec<NodeId> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != isolated)
        .map(|(_, n)| n.id())
        .collect();
    nodes[isolated].partition().cut(&others);
    for (i, node) in nodes.iter().enumerate() {
        if i != isolated {
            node.partition().cut(&[nodes[isolated].id()]);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cut_round = training(&nodes[isolated]).expect("status").round;
    let cut_height = nodes[isolated].status().height;
    let majority_round = training(&nodes[leader]).expect("status").round;

    // CP: the majority keeps committing rounds. AP: the minority keeps mining, commits nothing.
    eventually(60, "the majority to commit 20 more rounds", || async {
        (training(&nodes[leader])?.round >= majority_round + 20).then_some(())
    })
    .await;
    eventually(60, "the isolated node to keep mining", || async {
        (nodes[isolated].status().height >= cut_height + 3).then_some(())
    })
    .await;
    assert_eq!(training(&nodes[isolated]).expect("status").round, cut_round);

    // Heal: the isolated node catches up on the round log (fetching the blobs it missed) and
    // every node settles on one chain tip. First-seen keeps two equal-work tips apart (a tie
    // once held this test until it timed out), so one node mines past every tip first.
    for node in &nodes {
        node.partition().heal();
    }
    let target = training(&nodes[leader]).expect("status").round;
    eventually(60, "the healed node to catch up on rounds", || async {
        (training(&nodes[isolated])?.trained_round >= target).then_some(())
    })
    .await;
    settle_on_one_tip(&all, &nodes[leader], 60).await;
    let shortest = assert_same_logs(&nodes.iter().collect::<Vec<_>>()).await;
    assert!(shortest as u64 >= target);
    drop(all);
    for node in nodes {
        node.shutdown().await.expect("shutdown");
    }
}
