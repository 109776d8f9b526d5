//! Handshake time of hashgrad's mutual TLS 1.3 (the configs QUIC uses) with each key
//! exchange: the default hybrid X25519MLKEM768 and the classical X25519 fallback, alternated
//! in one run so both see the same machine load. Client and server run in this process over an
//! in-memory pipe, so the figure is CPU time per handshake (key generation, encapsulation,
//! signatures, certificate checks), without network round trips.
//!
//! `cargo run --release --example kx_handshake -- [ROUNDS]` (default 300 per group).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hashgrad::net::Identity;
use hashgrad::net::tls::{self, KeyExchange};
use rustls::pki_types::ServerName;

fn handshake(client: Arc<rustls::ClientConfig>, server: Arc<rustls::ServerConfig>) -> Duration {
    let started = Instant::now();
    let name = ServerName::try_from(tls::SERVER_NAME).expect("name");
    let mut client = rustls::ClientConnection::new(client, name).expect("client");
    let mut server = rustls::ServerConnection::new(server).expect("server");
    while client.is_handshaking() || server.is_handshaking() {
        let mut bytes = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut bytes).expect("client write");
        }
        let mut slice = &bytes[..];
        while !slice.is_empty() {
            server.read_tls(&mut slice).expect("server read");
            server.process_new_packets().expect("server handshake");
        }
        let mut bytes = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut bytes).expect("server write");
        }
        let mut slice = &bytes[..];
        while !slice.is_empty() {
            client.read_tls(&mut slice).expect("client read");
            client.process_new_packets().expect("client handshake");
        }
    }
    started.elapsed()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let a = Identity::generate().expect("identity");
    let b = Identity::generate().expect("identity");
    let configs = |kx: KeyExchange| {
        (
            Arc::new(tls::client_tls(&a, &[], kx).expect("client config")),
            Arc::new(tls::server_tls(&b, &[], kx).expect("server config")),
        )
    };
    let hybrid = configs(KeyExchange::X25519MlKem768);
    let classical = configs(KeyExchange::X25519);
    // Warm up both, then alternate.
    for _ in 0..20 {
        handshake(hybrid.0.clone(), hybrid.1.clone());
        handshake(classical.0.clone(), classical.1.clone());
    }
    let (mut h, mut c) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        h.push(handshake(hybrid.0.clone(), hybrid.1.clone()));
        c.push(handshake(classical.0.clone(), classical.1.clone()));
    }
    let (h, c) = (median(h), median(c));
    println!(
        "median mutual TLS 1.3 handshake over {rounds} rounds: X25519MLKEM768 {:.1} µs, \
         X25519 {:.1} µs, ratio {:.2}×",
        h.as_secs_f64() * 1e6,
        c.as_secs_f64() * 1e6,
        h.as_secs_f64() / c.as_secs_f64()
    );
}
