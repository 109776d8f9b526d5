//! A large gradient from a worker to the leader, measured against quinn's own bulk transfer in
//! the same run: the baseline writes the same number of bytes on one QUIC stream between two
//! raw quinn endpoints (hashgrad's TLS and transport configs) and reads them to the end; the
//! measured path sends a `TrainingMessage::Gradient` with `Network::request` (frame encoding,
//! its own stream, the receiver's bounded decode into floats) and waits for the answer.
//!
//! `cargo run --release --example gradient_transfer -- [MIB] [REPEATS]` (defaults 16 and 10).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hashgrad::cluster::wire::Gradient;
use hashgrad::cluster::{TrainingMessage, WireLimits};
use hashgrad::net::frame::ServiceFrame;
use hashgrad::net::{Identity, Message, NetConfig, NetEvent, Network, Service, tls};
use hashgrad::train::StateHash;

const IDLE: Duration = Duration::from_secs(30);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Seconds per transfer of `bytes` on one raw quinn stream.
async fn quinn_bulk(bytes: usize, repeats: usize) -> Vec<f64> {
    let server_key = Identity::generate().expect("key");
    let client_key = Identity::generate().expect("key");
    let server_config = tls::server_config(&server_key, &[], IDLE).expect("server config");
    let server = quinn::Endpoint::server(server_config, loopback()).expect("server");
    let mut client = quinn::Endpoint::client(loopback()).expect("client");
    client.set_default_client_config(tls::client_config(&client_key, &[], IDLE).expect("client"));
    let addr = server.local_addr().expect("addr");
    let accepting = tokio::spawn(async move {
        let connection = server
            .accept()
            .await
            .expect("incoming")
            .await
            .expect("accept");
        while let Ok((mut send, mut recv)) = connection.accept_bi().await {
            let data = recv.read_to_end(usize::MAX).await.expect("read");
            send.write_all(&(data.len() as u64).to_le_bytes())
                .await
                .expect("ack");
            let _ = send.finish();
        }
    });
    let connection = client
        .connect(addr, tls::SERVER_NAME)
        .expect("connect")
        .await
        .expect("handshake");
    let payload = vec![7u8; bytes];
    let mut times = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        let (mut send, mut recv) = connection.open_bi().await.expect("stream");
        send.write_all(&payload).await.expect("write");
        send.finish().expect("finish");
        let ack = recv.read_to_end(8).await.expect("ack");
        assert_eq!(ack, (bytes as u64).to_le_bytes());
        times.push(started.elapsed().as_secs_f64());
    }
    connection.close(0u32.into(), b"done");
    accepting.abort();
    times
}

/// Seconds per gradient of `values` floats sent with `Network::request`.
async fn gradient_request(values: usize, repeats: usize) -> Vec<f64> {
    let genesis = [0u8; 32];
    let (leader, _) = Network::bind(
        Identity::generate().expect("key"),
        NetConfig::new(loopback(), "bench", genesis),
    )
    .expect("bind");
    let mut requests = leader.subscribe(Service::Training);
    let (worker, _) = Network::bind(
        Identity::generate().expect("key"),
        NetConfig::new(loopback(), "bench", genesis),
    )
    .expect("bind");
    let leader_id = worker.dial(leader.local_addr(), None).await.expect("dial");
    let limits = WireLimits::for_params(values);
    tokio::spawn(async move {
        while let Some(event) = requests.recv().await {
            if let NetEvent::Request {
                request: Message::Service(frame),
                reply,
                ..
            } = event
            {
                let decoded = TrainingMessage::decode(frame.code, &frame.payload, &limits);
                assert!(matches!(decoded, Ok(TrainingMessage::Gradient(_))));
                let _ = reply.send(Vec::new());
            }
        }
    });
    let gradient = TrainingMessage::Gradient(Gradient {
        round: 1,
        params_hash: StateHash([1; 32]),
        loss: 0.5,
        values: vec![0.25; values],
    });
    let mut times = Vec::new();
    for _ in 0..repeats {
        let started = Instant::now();
        let frame = Message::Service(ServiceFrame {
            code: gradient.frame_type(),
            payload: gradient.encode(),
        });
        worker.request(leader_id, frame).await.expect("request");
        times.push(started.elapsed().as_secs_f64());
    }
    worker.shutdown();
    leader.shutdown();
    times
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let repeats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let values = mib * (1 << 20) / 4;
    let bytes = values * 4;
    // Alternate the two so both see the same machine load; medians of all repeats.
    let (mut quinn, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        quinn.extend(quinn_bulk(bytes, repeats).await);
        ours.extend(gradient_request(values, repeats).await);
    }
    let (quinn, ours) = (median(quinn), median(ours));
    let rate = |seconds: f64| bytes as f64 / seconds / f64::from(1 << 20);
    println!("{mib} MiB, median of {} transfers each:", 3 * repeats);
    println!(
        "quinn bulk stream:        {:8.1} ms  {:8.1} MiB/s",
        quinn * 1e3,
        rate(quinn)
    );
    println!(
        "gradient via request:     {:8.1} ms  {:8.1} MiB/s",
        ours * 1e3,
        rate(ours)
    );
    println!("gradient / quinn throughput: {:.2}", quinn / ours);
}
