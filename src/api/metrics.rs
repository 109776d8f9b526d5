//! The node's Prometheus metrics (via `prometheus-client`): what they are, their registry and
//! their text encoding. The node's services update them; `GET /metrics` encodes them.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Every metric the node exports; clones share the same values.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Height of the best chain's tip.
    pub height: Gauge,
    /// Connected peers.
    pub peers: Gauge,
    /// Blocks this node mined and accepted.
    pub blocks_mined: Counter,
    /// Blocks received from peers (gossip or sync) and accepted.
    pub blocks_received: Counter,
    /// Blocks refused as invalid.
    pub blocks_rejected: Counter,
    /// Relayed blocks dropped by the seen-cache.
    pub duplicates_dropped: Counter,
    /// Reorganisations of the best chain.
    pub reorgs: Counter,
    /// Peers banned for misbehaving.
    pub bans: Counter,
    /// Nonces hashed by the miner.
    pub hashes: Counter,
    /// The miner's recent hash rate in hashes per second.
    pub hash_rate: Gauge<f64, AtomicU64>,
    /// Receipts waiting in the pool.
    pub receipts_pooled: Gauge,
    /// The Raft term this node is in.
    pub raft_term: Gauge,
    /// The highest log index this node knows committed.
    pub raft_commit_index: Gauge,
    /// The highest log index this node applied.
    pub raft_applied_index: Gauge,
    /// 1 while this node leads, else 0.
    pub raft_leader: Gauge,
    /// Index of the latest Raft snapshot (the log before it is compacted away).
    pub raft_snapshot_index: Gauge,
    /// Snapshots a leader installed on this node since it started.
    pub raft_snapshots_installed: Gauge,
    /// The last training round committed.
    pub training_round: Gauge,
    /// Held-out accuracy after the last evaluated round.
    pub training_accuracy: Gauge<f64, AtomicU64>,
    /// Rounds this node abandoned as leader (deadline before the consistency level).
    pub training_rounds_abandoned: Counter,
    /// Gradients this node accepted as leader.
    pub training_gradients_accepted: Counter,
    /// Gradients this node refused as leader (stale, wrong length, non-finite, not a worker).
    pub training_gradients_refused: Counter,
    /// Stratum shares by `worker` and `verdict` (`accepted`, `stale` or a reject reason).
    pub stratum_shares: Family<Vec<(String, String)>, Counter>,
    /// Blocks a Stratum worker's shares made that the chain accepted, by `worker`.
    pub stratum_blocks_found: Family<Vec<(String, String)>, Counter>,
    /// A Stratum worker's estimated hash rate (H/s), by `worker`.
    pub stratum_hash_rate: Family<Vec<(String, String)>, Gauge<f64, AtomicU64>>,
    /// Stratum connections open now.
    pub stratum_connections: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Fresh metrics registered under the `hashgrad` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hashgrad");
        let metrics = Metrics {
            registry: Arc::new(Registry::default()),
            height: Gauge::default(),
            peers: Gauge::default(),
            blocks_mined: Counter::default(),
            blocks_received: Counter::default(),
            blocks_rejected: Counter::default(),
            duplicates_dropped: Counter::default(),
            reorgs: Counter::default(),
            bans: Counter::default(),
            hashes: Counter::default(),
            hash_rate: Gauge::default(),
            receipts_pooled: Gauge::default(),
            raft_term: Gauge::default(),
            raft_commit_index: Gauge::default(),
            raft_applied_index: Gauge::default(),
            raft_leader: Gauge::default(),
            raft_snapshot_index: Gauge::default(),
            raft_snapshots_installed: Gauge::default(),
            training_round: Gauge::default(),
            training_accuracy: Gauge::default(),
            training_rounds_abandoned: Counter::default(),
            training_gradients_accepted: Counter::default(),
            training_gradients_refused: Counter::default(),
            stratum_shares: Family::default(),
            stratum_blocks_found: Family::default(),
            stratum_hash_rate: Family::default(),
            stratum_connections: Gauge::default(),
        };
        let m = &metrics;
        registry.register(
            "chain_height",
            "Height of the best chain's tip",
            m.height.clone(),
        );
        registry.register("peers", "Connected peers", m.peers.clone());
        registry.register(
            "blocks_mined",
            "Blocks mined here and accepted",
            m.blocks_mined.clone(),
        );
        registry.register(
            "blocks_received",
            "Blocks received from peers and accepted",
            m.blocks_received.clone(),
        );
        registry.register(
            "blocks_rejected",
            "Blocks refused as invalid",
            m.blocks_rejected.clone(),
        );
        registry.register(
            "duplicate_blocks_dropped",
            "Relayed blocks dropped by the seen-cache",
            m.duplicates_dropped.clone(),
        );
        registry.register(
            "reorgs",
            "Reorganisations of the best chain",
            m.reorgs.clone(),
        );
        registry.register("peer_bans", "Peers banned for misbehaving", m.bans.clone());
        registry.register("hashes", "Nonces hashed by the miner", m.hashes.clone());
        registry.register(
            "hash_rate",
            "Recent miner hash rate (H/s)",
            m.hash_rate.clone(),
        );
        registry.register(
            "receipts_pooled",
            "Receipts waiting to be mined",
            m.receipts_pooled.clone(),
        );
        registry.register("raft_term", "Raft term of this node", m.raft_term.clone());
        registry.register(
            "raft_commit_index",
            "Highest Raft log index known committed",
            m.raft_commit_index.clone(),
        );
        registry.register(
            "raft_applied_index",
            "Highest Raft log index applied here",
            m.raft_applied_index.clone(),
        );
        registry.register(
            "raft_leader",
            "1 while this node is the Raft leader",
            m.raft_leader.clone(),
        );
        registry.register(
            "raft_snapshot_index",
            "Index of the latest Raft snapshot; the log before it is compacted",
            m.raft_snapshot_index.clone(),
        );
        registry.register(
            "raft_snapshots_installed",
            "Snapshots a leader installed here since the node started",
            m.raft_snapshots_installed.clone(),
        );
        registry.register(
            "training_round",
            "Last training round committed",
            m.training_round.clone(),
        );
        registry.register(
            "training_accuracy",
            "Held-out accuracy after the last evaluated round",
            m.training_accuracy.clone(),
        );
        registry.register(
            "training_rounds_abandoned",
            "Rounds abandoned here as leader",
            m.training_rounds_abandoned.clone(),
        );
        registry.register(
            "training_gradients_accepted",
            "Gradients accepted here as leader",
            m.training_gradients_accepted.clone(),
        );
        registry.register(
            "training_gradients_refused",
            "Gradients refused here as leader",
            m.training_gradients_refused.clone(),
        );
        registry.register(
            "stratum_shares",
            "Stratum shares by worker and verdict",
            m.stratum_shares.clone(),
        );
        registry.register(
            "stratum_blocks_found",
            "Blocks made of a Stratum worker's shares and accepted",
            m.stratum_blocks_found.clone(),
        );
        registry.register(
            "stratum_hash_rate",
            "Estimated hash rate of a Stratum worker (H/s)",
            m.stratum_hash_rate.clone(),
        );
        registry.register(
            "stratum_connections",
            "Stratum connections open now",
            m.stratum_connections.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            ..metrics
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_carries_values() {
        let metrics = Metrics::new();
        metrics.height.set(42);
        metrics.blocks_mined.inc();
        let text = metrics.encode();
        assert!(text.contains("hashgrad_chain_height 42"), "{text}");
        assert!(text.contains("hashgrad_blocks_mined_total 1"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
