//! The node's Stratum server over real TCP on loopback, with a real node (regtest, its own
//! miner off): an honest miner subscribes, authorizes with a fingerprint, mines the jobs it
//! is sent and submits; its blocks become the node's tip and pay its fingerprint, a new tip is
//! a clean job, and `/status` and `/metrics` count its shares. Then hostile clients — bad
//! JSON, a 10 MB line, unknown methods, submits before subscribe, a wrong extranonce2 size, a
//! line that never ends, idle sockets past the connection limit — each get an error or lose
//! their connection while the honest miner goes on. On shutdown every miner is told
//! `client.reconnect`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use hashgrad::config::{NodeConfig, StratumSection};
use hashgrad::hash::{Job, NonceRange, StopFlag, reference};
use hashgrad::node::{Node, NodeHandle};
use hashgrad::pow::NodeId;
use hashgrad::stratum::client::{ClientEvent, ClientSession, Share, Work};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const WAIT: Duration = Duration::from_secs(10);

async fn node(dir: &std::path::Path, max_connections: usize) -> NodeHandle {
    let mut config = NodeConfig::loopback(dir, &[]);
    config.http.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.stratum = StratumSection {
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        difficulty: 0.0001,
        shares_per_minute: 0.0,
        max_connections,
        line_timeout_secs: 1,
        ..StratumSection::default()
    };
    Node::start(config).await.expect("node starts")
}

/// A raw line connection.
struct Conn {
    lines: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let (read, writer) = TcpStream::connect(addr)
            .await
            .expect("connect")
            .into_split();
        Conn {
            lines: BufReader::new(read),
            writer,
        }
    }

    async fn send(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).await.expect("write");
    }

    /// The next line, or `None` at EOF (the server closed) or after `WAIT`.
    async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match tokio::time::timeout(WAIT, self.lines.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => Some(line),
            _ => None,
        }
    }

    /// Reads lines until one answers id `id`; returns its error code (`None`: success).
    async fn answer(&mut self, id: u64) -> Option<i64> {
        loop {
            let line = self.line().await.expect("an answer");
            let value: Value = serde_json::from_str(&line).expect("JSON");
            if value["id"] == json!(id) {
                return value["error"][0].as_i64();
            }
        }
    }

    /// True when the server closed the connection (EOF or reset) within `WAIT`.
    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, self.lines.read_to_end(&mut rest))
            .await
            .is_ok()
    }
}

/// An honest miner: the library's client session over a raw connection.
struct Miner {
    conn: Conn,
    session: ClientSession,
    work: Option<Work>,
    counter: u64,
}

impl Miner {
    async fn start(addr: SocketAddr, user: &str) -> Miner {
        let mut miner = Miner {
            conn: Conn::open(addr).await,
            session: ClientSession::new(user, "x", "test-miner/1"),
            work: None,
            counter: 0,
        };
        for line in miner.session.start() {
            miner.conn.send(&line).await;
        }
        miner.next_work().await;
        miner
    }

    /// Reads until new work arrives; returns it.
    async fn next_work(&mut self) -> Work {
        loop {
            let line = self.conn.line().await.expect("the pool sends work");
            for event in self.session.on_line(line.as_bytes()).expect("valid line") {
                if let ClientEvent::Work(work) = event {
                    self.work = Some(work.clone());
                    return work;
                }
            }
        }
    }

    /// Mines one share of the current work and submits it; returns the pool's verdict.
    async fn share(&mut self) -> ClientEvent {
        let work = self.work.clone().expect("work");
        self.counter += 1;
        let job = Job {
            header: work.header(self.counter, work.parts.ntime, 0),
            target: work.target,
        };
        let found = reference::search(&job, NonceRange::new(0, 1 << 24), &StopFlag::new());
        let nonce = found.found.first().expect("an easy share").nonce;
        let share = Share {
            worker: self.session.user().to_string(),
            job_id: work.job_id.clone(),
            extranonce2: work.extranonce2(self.counter),
            ntime: work.parts.ntime,
            nonce,
        };
        let line = self.session.submit(&share, work.difficulty);
        self.conn.send(&line).await;
        loop {
            let line = self.conn.line().await.expect("a verdict");
            for event in self.session.on_line(line.as_bytes()).expect("valid line") {
                match event {
                    ClientEvent::Work(work) => self.work = Some(work),
                    verdict @ (ClientEvent::Accepted { .. } | ClientEvent::Rejected { .. }) => {
                        return verdict;
                    }
                    _ => {}
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_miner_finds_blocks_through_stratum_while_hostile_clients_are_refused() {
    common::init_logs();
    let dir = tempfile::tempdir().expect("dir");
    let node = node(dir.path(), 64).await;
    let addr = node.stratum_addr().expect("stratum on");
    let fingerprint = "ab".repeat(32);
    let user = format!("{fingerprint}.rig1");
    let mut miner = Miner::start(addr, &user).await;
    let first = miner.work.clone().expect("work");
    assert_eq!(first.extranonce2_size, 4);
    assert_eq!(first.difficulty, 0.0001);

    // On regtest every share meets the block target: each is a block paying the fingerprint.
    assert!(matches!(miner.share().await, ClientEvent::Accepted { .. }));
    let work = miner.next_work().await;
    assert!(work.clean, "a new tip is a clean job");
    assert_ne!(work.parts.prev, first.parts.prev);
    common::eventually(10, "height 1", || async {
        (node.status().height >= 1).then_some(())
    })
    .await;
    let paid = node
        .with_chain(|chain| chain.block(&chain.tip()).map(|b| b.body.coinbase.miner))
        .await
        .expect("chain");
    assert_eq!(paid, Some(NodeId([0xab; 32])));

    // Hostile clients, one at a time, each refused; the honest miner goes on between them.
    let mut bad = Conn::open(addr).await;
    bad.send("{this is not json\n").await;
    let reply: Value = serde_json::from_str(&bad.line().await.expect("reply")).expect("JSON");
    assert_eq!(reply["error"][0], json!(20));
    bad.send(&format!(
        "{}\n",
        json!({"id": 5, "method": "mining.frobnicate", "params": []})
    ))
    .await;
    assert_eq!(bad.answer(5).await, Some(20), "unknown method");
    let submit = json!({"id": 6, "method": "mining.submit",
        "params": [user, "1", "00000000", "00000000", "00000000"]});
    bad.send(&format!("{submit}\n")).await;
    assert_eq!(bad.answer(6).await, Some(25), "submit before subscribe");
    bad.send("{\"id\":7,\"method\":\"mining.subscribe\",\"params\":[]}\n")
        .await;
    assert_eq!(bad.answer(7).await, None);
    bad.send(&format!(
        "{}\n",
        json!({"id": 8, "method": "mining.authorize", "params": [user, "x"]})
    ))
    .await;
    assert_eq!(bad.answer(8).await, None);
    let short = json!({"id": 9, "method": "mining.submit",
        "params": [user, work.job_id, "0000", "00000000", "00000000"]});
    bad.send(&format!("{short}\n")).await;
    assert_eq!(bad.answer(9).await, Some(20), "a 2-byte extranonce2");

    // A 10 MB line: an error, then the connection is dropped.
    let mut huge = Conn::open(addr).await;
    let line = vec![b'x'; 10 << 20];
    let _ = huge.writer.write_all(&line).await;
    assert!(huge.closed().await, "a 10 MB line drops the connection");

    // A line that never ends (slowloris): dropped after line_timeout_secs.
    let mut slow = Conn::open(addr).await;
    slow.send("{\"id\":1,").await;
    assert!(
        slow.closed().await,
        "a line that never ends drops the connection"
    );

    assert!(matches!(miner.share().await, ClientEvent::Accepted { .. }));

    // Idle sockets fill the connection limit; the one past it is closed at once while the
    // honest miner keeps its connection and its blocks.
    let mut idle = Vec::new();
    for _ in 0..80 {
        if let Ok(stream) = TcpStream::connect(addr).await {
            idle.push(stream);
        }
    }
    let mut past = Conn::open(addr).await;
    assert!(
        past.closed().await,
        "a connection past max_connections is closed"
    );
    miner.next_work().await;
    assert!(matches!(miner.share().await, ClientEvent::Accepted { .. }));
    drop(idle);

    let http = node.http_addr().expect("http");
    let status = common::eventually(10, "the worker in /status", || async {
        let (_, body) = common::http(http, "GET", "/status", "")?;
        let status: Value = serde_json::from_str(&body).ok()?;
        let worker = status["stratum"]["workers"]
            .as_array()?
            .iter()
            .find(|w| w["name"] == json!(user))?
            .clone();
        (worker["accepted"].as_u64()? >= 3).then_some(worker)
    })
    .await;
    assert!(
        status["blocks_found"].as_u64().is_some_and(|n| n >= 3),
        "{status}"
    );
    assert!(
        status["hash_rate"].as_f64().is_some_and(|r| r > 0.0),
        "{status}"
    );
    assert_eq!(status["rejected"]["bad-share"], json!(1), "{status}");
    let (_, metrics) = common::http(http, "GET", "/metrics", "").expect("metrics");
    assert!(
        metrics.contains(&format!(
            "hashgrad_stratum_shares_total{{worker=\"{user}\",verdict=\"accepted\"}}"
        )),
        "{metrics}"
    );

    // Shutdown: the miner is told to reconnect.
    node.shutdown().await.expect("shutdown");
    let mut told = false;
    while let Some(line) = miner.conn.line().await {
        told |= line.contains("client.reconnect");
    }
    assert!(told, "client.reconnect on shutdown");
}
