//! Training across nodes on real QUIC loopback sockets with real redb files and blob folders:
//! three mining nodes train the digits model together and end with exactly the params of
//! `hashgrad train --workers 3` with the same seed (level `all`, no faults); every committed
//! round's receipt lands in a block; config writes on any node (forwarded by followers) take
//! effect from the next round and reads honour the requested consistency.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use hashgrad::api::TrainingStatus;
use hashgrad::config::{HttpSection, MiningSection, NetSection, NodeConfig, TrainSection};
use hashgrad::net::{Identity, NodeId};
use hashgrad::node::consensus::ReadConsistency;
use hashgrad::node::{Node, NodeHandle};
use hashgrad::train::aggregate::Reducer;
use hashgrad::train::{Dataset, Simulation, SimulationConfig};

const SEED: u64 = 5;

fn config(dir: &Path, peers: &[SocketAddr], train: TrainSection) -> NodeConfig {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    NodeConfig {
        data_dir: dir.to_path_buf(),
        network: "regtest".into(),
        net: NetSection {
            listen: any,
            peers: peers.iter().map(ToString::to_string).collect(),
            redial_secs: 0.1,
            ..NetSection::default()
        },
        http: HttpSection { listen: Some(any) },
        mining: MiningSection {
            enabled: true,
            backend: "cpu".into(),
            threads: 1,
            pace_ms: 150,
        },
        train: Some(train),
    }
}

fn train_section(voters: &[NodeId], rounds: Option<u64>, consistency: &str) -> TrainSection {
    TrainSection {
        voters: voters.iter().map(ToString::to_string).collect(),
        tick_ms: 20,
        seed: SEED,
        consistency: consistency.into(),
        round_deadline_ms: 3000,
        rounds,
        eval_every: 5,
        ..TrainSection::default()
    }
}

async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One blocking HTTP/1.1 exchange; returns (status code, body).
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect http");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let code = response
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

async fn http_async(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let (method, path, body) = (method.to_string(), path.to_string(), body.to_string());
    tokio::task::spawn_blocking(move || http(addr, &method, &path, &body))
        .await
        .expect("http task")
}

fn training(node: &NodeHandle) -> Option<TrainingStatus> {
    node.status().training
}

async fn start_three(
    train: impl Fn(&[NodeId]) -> TrainSection,
) -> (Vec<tempfile::TempDir>, Vec<NodeHandle>) {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let voters: Vec<NodeId> = dirs
        .iter()
        .map(|d| Identity::load_or_create(d.path()).expect("key").id())
        .collect();
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for dir in &dirs {
        let peers: Vec<SocketAddr> = nodes.iter().map(|n| n.listen_addr()).collect();
        let node = Node::start(config(dir.path(), &peers, train(&voters)))
            .await
            .expect("start");
        nodes.push(node);
    }
    (dirs, nodes)
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_mining_nodes_train_to_the_params_of_hashgrad_train() {
    init_logs();
    const ROUNDS: u64 = 30;
    let (_dirs, nodes) = start_three(|voters| train_section(voters, Some(ROUNDS), "all")).await;

    // Every node's trainer reaches the last round (each step checked against the committed
    // params hash, or the node would have stopped).
    let finals: Vec<TrainingStatus> = eventually(120, "every node to train 30 rounds", || async {
        let all: Vec<TrainingStatus> = nodes.iter().map(training).collect::<Option<_>>()?;
        all.iter().all(|t| t.trained_round == ROUNDS).then_some(all)
    })
    .await;

    // The same computation as `hashgrad train --workers 3 --seed 5` (its defaults otherwise).
    let config = SimulationConfig {
        workers: 3,
        seed: SEED,
        ..SimulationConfig::default()
    };
    let data = Dataset::digits().expect("digits");
    let mut simulation = Simulation::new(&config, &data, Reducer::Cpu).expect("simulation");
    for _ in 0..ROUNDS {
        simulation.run_round().expect("round");
    }
    let expected = simulation.trainer().state_hash().to_string();
    for status in &finals {
        assert_eq!(status.round, ROUNDS);
        assert_eq!(status.params_hash, expected, "{status:?}");
        assert!(status.accuracy.is_some_and(|a| a > 0.5), "{status:?}");
    }

    // Every round's receipt is mined into the chain, and every node sees the same list.
    let http_addr = nodes[1].http_addr().expect("http");
    let receipts = eventually(120, "receipts of all rounds on the chain", || async {
        let (code, body) = http_async(http_addr, "GET", "/receipts", "").await;
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
    let at = |i: usize| nodes[i].http_addr().expect("http");

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
                .read(ReadConsistency::Local, move |machine| {
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
