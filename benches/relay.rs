//! The testnet relay's own cost on loopback, against direct UDP in the same run (prints
//! figures; `cargo bench --bench relay`):
//! 1. Added latency: round trips of a 1200-byte datagram to an echo server, direct and
//!    through a fault-free relay (which adds one hop each way); p50 and p99.
//! 2. Throughput: a sender blasts 1200-byte datagrams at a sink for a fixed time, direct and
//!    through the relay; datagrams and MB/s received.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hashgrad::testnet::relay::{LinkFaults, Relay};
use tokio::net::UdpSocket;

const DATAGRAM: usize = 1200;

async fn echo() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..len], from).await;
        }
    });
    addr
}

async fn sink() -> (SocketAddr, Arc<AtomicU64>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind sink");
    let addr = socket.local_addr().expect("addr");
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while socket.recv_from(&mut buf).await.is_ok() {
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    (addr, count)
}

async fn relay_to(target: SocketAddr) -> Relay {
    Relay::start(
        "127.0.0.1:0".parse().expect("addr"),
        "127.0.0.1".parse().expect("ip"),
        target,
        LinkFaults::default(),
        1,
    )
    .await
    .expect("relay")
}

/// Round-trip times in microseconds, sorted.
async fn round_trips(to: SocketAddr, count: usize) -> Vec<f64> {
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("client");
    let payload = vec![7u8; DATAGRAM];
    let mut buf = [0u8; 2048];
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        client.send_to(&payload, to).await.expect("send");
        let reply = tokio::time::timeout(Duration::from_secs(1), client.recv_from(&mut buf)).await;
        if reply.is_ok() {
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    times.sort_by(f64::total_cmp);
    times
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Datagrams per second that reach the sink while one sender sends for `secs`.
async fn throughput(to: SocketAddr, received: &AtomicU64, secs: f64) -> f64 {
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("client");
    let payload = vec![7u8; DATAGRAM];
    let before = received.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        let _ = client.send_to(&payload, to).await;
        sent += 1;
        // Yield now and then so the relay and the sink get the other core.
        if sent.is_multiple_of(32) {
            tokio::task::yield_now().await;
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    (received.load(Ordering::Relaxed) - before) as f64 / secs
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let (trips, secs) = if quick { (200, 0.2) } else { (20_000, 3.0) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let echo = echo().await;
        let relay = relay_to(echo).await;
        let direct = round_trips(echo, trips).await;
        let relayed = round_trips(relay.front(), trips).await;
        println!(
            "relay/round-trip {DATAGRAM} B: direct p50 {:.1} us p99 {:.1} us; relayed p50 {:.1} us \
             p99 {:.1} us; added per round trip p50 {:.1} us (x{:.2})",
            pct(&direct, 0.5),
            pct(&direct, 0.99),
            pct(&relayed, 0.5),
            pct(&relayed, 0.99),
            pct(&relayed, 0.5) - pct(&direct, 0.5),
            pct(&relayed, 0.5) / pct(&direct, 0.5),
        );
        let (sink, received) = sink().await;
        let relay = relay_to(sink).await;
        let direct = throughput(sink, &received, secs).await;
        let relayed = throughput(relay.front(), &received, secs).await;
        let mb = |rate: f64| rate * DATAGRAM as f64 / 1e6;
        println!(
            "relay/throughput {DATAGRAM} B: direct {:.0} datagrams/s ({:.0} MB/s); relayed {:.0} \
             datagrams/s ({:.0} MB/s); relayed/direct {:.2}",
            direct,
            mb(direct),
            relayed,
            mb(relayed),
            relayed / direct
        );
    });
}
