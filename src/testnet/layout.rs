//! Where everything of a local testnet lives: node ports, relay addresses and each node's
//! config. Pure.
//!
//! Node `i` listens on `127.0.0.1:port[i]`. The relay for the directed link `a → b` (a dials
//! b) listens on `127.1.(a+1).(b+1):port[b]` and sends to b from `127.1.(b+1).(a+1)`. So b sees
//! a's connection coming from IP `127.1.(b+1).(a+1)`; when b combines that IP with the listen
//! port in a's Hello to redial a, it gets `127.1.(b+1).(a+1):port[a]`, which is exactly the
//! relay for `b → a`. A node can learn no address that bypasses the relays.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use crate::config::{NodeConfig, PeerAddr};
use crate::net::NodeId;

/// Where node `index` listens for QUIC.
pub fn node_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn link_ip(a: usize, b: usize) -> Ipv4Addr {
    // Indexes are below plan::MAX_NODES (16), so both octets fit.
    Ipv4Addr::new(127, 1, a as u8 + 1, b as u8 + 1)
}

/// The address node `from` dials to reach node `to`.
pub fn relay_front(from: usize, to: usize, ports: &[u16]) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(link_ip(from, to)), ports[to])
}

/// The address the relay `from → to` sends to node `to` from.
pub fn relay_back_ip(from: usize, to: usize) -> IpAddr {
    IpAddr::V4(link_ip(to, from))
}

/// Node `index`'s config: the base with its own data dir, listen address, HTTP on a free
/// port, every other node as a pinned peer behind its relay, and only the testnet's keys
/// allowed.
pub fn node_config(
    base: &NodeConfig,
    index: usize,
    data_dir: &Path,
    ports: &[u16],
    ids: &[NodeId],
) -> NodeConfig {
    let mut config = base.clone();
    config.data_dir = data_dir.to_path_buf();
    config.net.listen = node_addr(ports[index]);
    config.net.peers = (0..ports.len())
        .filter(|&other| other != index)
        .map(|other| PeerAddr {
            addr: relay_front(index, other, ports),
            pin: Some(ids[other]),
        })
        .collect();
    config.net.pinned = ids.to_vec();
    config.http.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    if let Some(train) = &mut config.train {
        // Every testnet node votes and works; the lists are the same on every node.
        train.voters = ids.to_vec();
        train.workers = Vec::new();
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redial_from_the_hello_port_lands_on_the_reverse_relay() {
        let ports = [7300, 7301, 7302];
        for a in 0..3 {
            for b in (0..3).filter(|&b| b != a) {
                // b sees a's connection from the relay's back IP, and a's listen port in Hello.
                let learned = SocketAddr::new(relay_back_ip(a, b), ports[a]);
                assert_eq!(learned, relay_front(b, a, &ports));
                assert_ne!(learned, node_addr(ports[a]));
            }
        }
    }

    #[test]
    fn configs_pin_every_node_and_dial_through_relays() {
        let ports = [7300, 7301];
        let ids = [NodeId([1; 32]), NodeId([2; 32])];
        let config = node_config(&NodeConfig::default(), 0, Path::new("d0"), &ports, &ids);
        assert_eq!(config.net.listen, node_addr(7300));
        let peers: Vec<String> = config.net.peers.iter().map(ToString::to_string).collect();
        assert_eq!(peers, vec![format!("{}@127.1.1.2:7301", ids[1])]);
        assert_eq!(config.net.pinned.len(), 2);
        config.validate().expect("valid");
        assert!(config.train.is_none());
    }

    #[test]
    fn a_training_config_makes_every_node_a_voter() {
        let ports = [7300, 7301, 7302];
        let ids = [NodeId([1; 32]), NodeId([2; 32]), NodeId([3; 32])];
        let base = NodeConfig {
            train: Some(crate::config::TrainSection {
                workers: vec![ids[0]],
                ..Default::default()
            }),
            ..NodeConfig::default()
        };
        for index in 0..3 {
            let config = node_config(&base, index, Path::new("d"), &ports, &ids);
            let train = config.train.as_ref().expect("train");
            assert_eq!(train.voters, ids);
            assert!(train.workers.is_empty());
            config.validate().expect("valid");
            // The file the node process reads loads back to the same config.
            let text = toml::to_string(&config).expect("written");
            let read = NodeConfig::from_toml(&text, Path::new("node.toml")).expect("read back");
            assert_eq!(read, config, "{text}");
        }
    }
}
