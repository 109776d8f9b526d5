//! A UDP relay for one directed link (the dialing node → the listening node): datagrams sent to
//! its front address are forwarded to the listener, replies come back the same way, and both
//! directions pass through the link's faults (latency with jitter, random loss, a partition
//! cut). It sees only opaque QUIC datagrams; TLS stays end to end.
//!
//! Each client address gets its own back socket, bound to `back_ip`, so the listener sees
//! a distinct remote per dialer. Owns sockets and timers; must not interpret packets.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::plan::Latency;

/// Largest datagram relayed (QUIC keeps below 1500; this leaves room for jumbo loopback).
const MAX_DATAGRAM: usize = 65_535;
/// Client addresses one relay tracks before refusing new ones.
const MAX_SESSIONS: usize = 64;

/// The faults of one link, shared by both directions; `cut` is flipped by partitions.
#[derive(Debug, Default)]
pub struct LinkFaults {
    /// Delay added to each datagram in either direction.
    pub latency: Latency,
    /// Probability in 0..1 that a datagram is dropped.
    pub loss: f64,
    /// While set, every datagram is dropped (an active partition separates the two nodes).
    pub cut: AtomicBool,
}

/// Datagram counts of one link, both directions together.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Datagrams passed on.
    pub forwarded: AtomicU64,
    /// Bytes of the datagrams passed on.
    pub bytes: AtomicU64,
    /// Datagrams dropped by random loss.
    pub lost: AtomicU64,
    /// Datagrams dropped because the link was cut.
    pub cut: AtomicU64,
}

/// A running relay; its tasks stop when it is dropped.
#[derive(Debug)]
pub struct Relay {
    front: SocketAddr,
    /// The link's faults, which the testnet changes while it runs (partitions set `cut`).
    pub faults: Arc<LinkFaults>,
    /// What the relay has passed and dropped so far.
    pub stats: Arc<LinkStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// Binds `front` and relays to `target`, with back sockets bound to `back_ip`.
    pub async fn start(
        front: SocketAddr,
        back_ip: IpAddr,
        target: SocketAddr,
        faults: LinkFaults,
        seed: u64,
    ) -> std::io::Result<Relay> {
        let socket = Arc::new(UdpSocket::bind(front).await?);
        let front = socket.local_addr()?;
        let faults = Arc::new(faults);
        let stats = Arc::new(LinkStats::default());
        let link = Link {
            faults: faults.clone(),
            stats: stats.clone(),
        };
        let task = tokio::spawn(run_front(socket, back_ip, target, link, seed));
        Ok(Relay {
            front,
            faults,
            stats,
            task,
        })
    }

    /// The address dialers send to.
    pub fn front(&self) -> SocketAddr {
        self.front
    }
}

#[derive(Clone)]
struct Link {
    faults: Arc<LinkFaults>,
    stats: Arc<LinkStats>,
}

impl Link {
    /// Whether a datagram passes, counting it either way.
    fn admit(&self, rng: &mut ChaCha8Rng, len: usize) -> bool {
        if self.faults.cut.load(Ordering::Relaxed) {
            self.stats.cut.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if self.faults.loss > 0.0 && rng.random_bool(self.faults.loss.min(1.0)) {
            self.stats.lost.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(len as u64, Ordering::Relaxed);
        true
    }

    fn delay(&self, rng: &mut ChaCha8Rng) -> Duration {
        let Latency { ms, jitter_ms } = self.faults.latency;
        let jitter = if jitter_ms == 0 {
            0
        } else {
            rng.random_range(0..=2 * jitter_ms) as i64 - jitter_ms as i64
        };
        Duration::from_millis((ms as i64 + jitter).max(0) as u64)
    }
}

/// One direction's output: sends at once without latency, else through a FIFO delay line
/// (datagrams keep their order, as on one path; jitter spreads their spacing).
enum Outlet {
    Now(Arc<UdpSocket>, Option<SocketAddr>),
    Delayed(mpsc::UnboundedSender<(Instant, Vec<u8>)>),
}

impl Outlet {
    fn new(
        socket: Arc<UdpSocket>,
        to: Option<SocketAddr>,
        latency: Latency,
        tasks: &mut JoinSet<()>,
    ) -> Outlet {
        if latency == Latency::default() {
            return Outlet::Now(socket, to);
        }
        let (queue, mut line) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
        tasks.spawn(async move {
            while let Some((due, datagram)) = line.recv().await {
                tokio::time::sleep_until(due).await;
                let _ = send(&socket, to, &datagram).await;
            }
        });
        Outlet::Delayed(queue)
    }

    async fn pass(&self, datagram: &[u8], delay: Duration) {
        match self {
            Outlet::Now(socket, to) => {
                let _ = send(socket, *to, datagram).await;
            }
            Outlet::Delayed(queue) => {
                let _ = queue.send((Instant::now() + delay, datagram.to_vec()));
            }
        }
    }
}

async fn send(socket: &UdpSocket, to: Option<SocketAddr>, datagram: &[u8]) -> std::io::Result<()> {
    match to {
        Some(to) => socket.send_to(datagram, to).await.map(drop),
        None => socket.send(datagram).await.map(drop),
    }
}

async fn run_front(
    front: Arc<UdpSocket>,
    back_ip: IpAddr,
    target: SocketAddr,
    link: Link,
    seed: u64,
) {
    let mut tasks = JoinSet::new();
    let mut sessions: HashMap<SocketAddr, Outlet> = HashMap::new();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((len, client)) = front.recv_from(&mut buf).await else {
            // ICMP errors surface here on some systems; the socket stays usable.
            continue;
        };
        if !sessions.contains_key(&client) {
            if sessions.len() >= MAX_SESSIONS {
                continue;
            }
            let Ok(outlet) =
                open_session(&front, client, back_ip, target, &link, &mut tasks, &mut rng).await
            else {
                continue;
            };
            sessions.insert(client, outlet);
        }
        if !link.admit(&mut rng, len) {
            continue;
        }
        let delay = link.delay(&mut rng);
        if let Some(outlet) = sessions.get(&client) {
            outlet.pass(&buf[..len], delay).await;
        }
    }
}

/// Binds a back socket for `client`, starts its reply path, and returns the forward outlet.
async fn open_session(
    front: &Arc<UdpSocket>,
    client: SocketAddr,
    back_ip: IpAddr,
    target: SocketAddr,
    link: &Link,
    tasks: &mut JoinSet<()>,
    rng: &mut ChaCha8Rng,
) -> std::io::Result<Outlet> {
    let back = UdpSocket::bind(SocketAddr::new(back_ip, 0)).await?;
    back.connect(target).await?;
    let back = Arc::new(back);
    let forward = Outlet::new(back.clone(), None, link.faults.latency, tasks);
    let reply = Outlet::new(front.clone(), Some(client), link.faults.latency, tasks);
    let link = link.clone();
    let mut reply_rng = ChaCha8Rng::seed_from_u64(rng.random());
    tasks.spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            // A refused send (listener down) reports here; keep listening for its restart.
            let Ok(len) = back.recv(&mut buf).await else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            if link.admit(&mut reply_rng, len) {
                let delay = link.delay(&mut reply_rng);
                reply.pass(&buf[..len], delay).await;
            }
        }
    });
    Ok(forward)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind echo");
        let addr = socket.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                let _ = socket.send_to(&buf[..len], from).await;
            }
        });
        (addr, task)
    }

    async fn relay(target: SocketAddr, faults: LinkFaults) -> Relay {
        let front = SocketAddr::from(([127, 0, 0, 1], 0));
        Relay::start(front, "127.0.0.1".parse().expect("ip"), target, faults, 7)
            .await
            .expect("relay")
    }

    async fn round_trip(client: &UdpSocket, to: SocketAddr, wait: Duration) -> Option<Duration> {
        let start = Instant::now();
        client.send_to(b"ping", to).await.expect("send");
        let mut buf = [0u8; 16];
        let got = tokio::time::timeout(wait, client.recv_from(&mut buf)).await;
        got.ok().map(|r| {
            let (len, _) = r.expect("recv");
            assert_eq!(&buf[..len], b"ping");
            start.elapsed()
        })
    }

    #[tokio::test]
    async fn relays_both_ways_adds_latency_and_cuts() {
        let (target, _echo) = echo_server().await;
        let faults = LinkFaults {
            latency: Latency {
                ms: 30,
                jitter_ms: 0,
            },
            ..LinkFaults::default()
        };
        let relay = relay(target, faults).await;
        let client = UdpSocket::bind("127.0.0.1:0").await.expect("client");
        let rtt = round_trip(&client, relay.front(), Duration::from_secs(2))
            .await
            .expect("echo through the relay");
        assert!(rtt >= Duration::from_millis(60), "two 30 ms hops: {rtt:?}");
        relay.faults.cut.store(true, Ordering::Relaxed);
        let cut = round_trip(&client, relay.front(), Duration::from_millis(300)).await;
        assert!(cut.is_none(), "a cut link drops datagrams");
        assert!(relay.stats.cut.load(Ordering::Relaxed) >= 1);
        relay.faults.cut.store(false, Ordering::Relaxed);
        assert!(
            round_trip(&client, relay.front(), Duration::from_secs(2))
                .await
                .is_some()
        );
    }

    #[tokio::test]
    async fn loss_drops_about_the_asked_share() {
        let (target, _echo) = echo_server().await;
        let faults = LinkFaults {
            loss: 0.5,
            ..LinkFaults::default()
        };
        let relay = relay(target, faults).await;
        let client = UdpSocket::bind("127.0.0.1:0").await.expect("client");
        for _ in 0..400 {
            client.send_to(b"x", relay.front()).await.expect("send");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let lost = relay.stats.lost.load(Ordering::Relaxed);
        let passed = relay.stats.forwarded.load(Ordering::Relaxed);
        // Forward drops ~200 of 400, replies lose half of the rest.
        assert!(lost > 180 && lost < 420, "lost {lost}, passed {passed}");
        assert!(passed > 100, "passed {passed}");
    }
}
