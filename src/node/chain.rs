//! The chain service: one task that owns the chain, the store, the receipt pool, the miner,
//! headers-first sync, relay and redialling known peers, and reacts to the transport's chain
//! events, found blocks, sync reports, its command channel and timers. Every block mined,
//! gossiped or submitted goes through `accept`: validate (the chain), persist (one store
//! transaction), update the pool, relay, replace the mining job. Synced blocks come in batches
//! (`accept_synced`): validated one by one, persisted in one transaction per batch, relayed
//! when the batch extended the tip.
//!
//! Must not open the data dir, bind sockets or serve HTTP (`node::start` does, and composes
//! this service with the others).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use tokio::sync::{broadcast, mpsc, watch};
use tracing::{debug, info, warn};

use super::miner::Miner;
use super::seen::SeenCache;
use super::sync::{self, SyncReport};
use super::{ChainCommand, ChainEvent, NodeError, backend};
use crate::api::{Metrics, NodeStatus, PeerStatus};
use crate::config::NodeConfig;
use crate::events::{EventKind, EventLog};
use crate::hash::reference::sha256d;
use crate::net::{Message, NetEvent, Network, NodeId};
use crate::pow::{
    Accepted, Block, BlockHash, Chain, ChainError, ChainStore, MAX_BLOCK_BYTES, ReceiptPool,
};

/// Receipt bytes a pool holds at most.
const POOL_BYTES: usize = 64 << 20;
/// Block hashes the seen-cache remembers.
const SEEN_CAPACITY: usize = 16_384;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct ChainService {
    config: NodeConfig,
    chain: Chain,
    store: ChainStore,
    pool: ReceiptPool,
    net: Network,
    miner: Option<Miner>,
    found: mpsc::UnboundedSender<Block>,
    backend_name: String,
    mining: bool,
    miner_id: NodeId,
    seen: SeenCache,
    metrics: Metrics,
    status: watch::Sender<NodeStatus>,
    events: broadcast::Sender<ChainEvent>,
    event_log: EventLog,
    sync_reports: mpsc::Sender<SyncReport>,
    syncing: HashSet<NodeId>,
    resync: HashSet<NodeId>,
    known: HashMap<SocketAddr, Option<NodeId>>,
    dialing: HashSet<SocketAddr>,
    dialed: mpsc::UnboundedSender<(SocketAddr, Result<NodeId, String>)>,
    blocks_mined: u64,
    rate_sample: (Instant, u64),
    hash_rate: f64,
    pace: Duration,
}

/// What the chain service is built from; `node::start` opens them.
pub(super) struct ChainParts {
    pub config: NodeConfig,
    pub chain: Chain,
    pub store: ChainStore,
    pub net: Network,
    /// The transport's chain events (`Network::bind`'s receiver).
    pub net_events: mpsc::Receiver<NetEvent>,
    pub metrics: Metrics,
    pub status: watch::Sender<NodeStatus>,
    pub events: broadcast::Sender<ChainEvent>,
    /// The node's event log (blocks found, received and reorganised; hash rate).
    pub event_log: EventLog,
}

/// The chain service's task; it ends when the service stops.
pub(super) type ChainTask = tokio::task::JoinHandle<Result<(), NodeError>>;

/// Starts the miner (when enabled) and spawns the service; returns its command channel.
pub(super) fn spawn(
    parts: ChainParts,
) -> Result<(mpsc::Sender<ChainCommand>, ChainTask), NodeError> {
    let ChainParts {
        config,
        chain,
        store,
        net,
        net_events,
        metrics,
        status,
        events,
        event_log,
    } = parts;
    let (found, found_rx) = mpsc::unbounded_channel();
    let (sync_reports, sync_rx) = mpsc::channel(64);
    let (dialed, dialed_rx) = mpsc::unbounded_channel();
    let (commands, commands_rx) = mpsc::channel(256);

    let mut known = HashMap::new();
    for peer in &config.net.peers {
        known.insert(peer.addr, peer.pin);
    }
    for (addr, _) in store.peers()? {
        if let Ok(addr) = addr.parse::<SocketAddr>() {
            known.entry(addr).or_insert(None);
        }
    }
    let id = net.id();
    let mut service = ChainService {
        pace: Duration::from_millis(config.mining.pace_ms),
        mining: config.mining.enabled,
        config,
        chain,
        store,
        pool: ReceiptPool::new(POOL_BYTES),
        net,
        miner: None,
        found,
        backend_name: "none".into(),
        miner_id: id,
        seen: SeenCache::new(SEEN_CAPACITY),
        metrics,
        status,
        events,
        event_log,
        sync_reports,
        syncing: HashSet::new(),
        resync: HashSet::new(),
        known,
        dialing: HashSet::new(),
        dialed,
        blocks_mined: 0,
        rate_sample: (Instant::now(), 0),
        hash_rate: 0.0,
    };
    if service.mining {
        service.open_miner()?;
    }
    service.publish();
    let receivers = Receivers {
        net: net_events,
        found: found_rx,
        sync: sync_rx,
        dialed: dialed_rx,
        commands: commands_rx,
    };
    let task = tokio::spawn(async move { service.run(receivers).await });
    Ok((commands, task))
}

struct Receivers {
    net: mpsc::Receiver<NetEvent>,
    found: mpsc::UnboundedReceiver<Block>,
    sync: mpsc::Receiver<SyncReport>,
    dialed: mpsc::UnboundedReceiver<(SocketAddr, Result<NodeId, String>)>,
    commands: mpsc::Receiver<ChainCommand>,
}

impl ChainService {
    async fn run(&mut self, mut rx: Receivers) -> Result<(), NodeError> {
        let mut redial = tokio::time::interval(self.config.redial());
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        self.new_job();
        let result = loop {
            let step = tokio::select! {
                Some(event) = rx.net.recv() => self.on_net(event),
                Some(block) = rx.found.recv() => self.on_mined(block),
                Some(report) = rx.sync.recv() => self.on_sync(report),
                Some((addr, result)) = rx.dialed.recv() => {
                    self.on_dialed(addr, result);
                    Ok(())
                }
                command = rx.commands.recv() => match command {
                    Some(ChainCommand::Shutdown) | None => break Ok(()),
                    Some(command) => self.on_command(command),
                },
                _ = redial.tick() => {
                    self.redial();
                    Ok(())
                }
                _ = tick.tick() => {
                    self.publish();
                    Ok(())
                }
            };
            if let Err(error) = step {
                break Err(error);
            }
        };
        // Stop hashing; `node::start`'s supervisor closes the connections, and the store
        // closes when the service drops.
        self.miner = None;
        info!("chain service stopped");
        result
    }

    fn open_miner(&mut self) -> Result<(), NodeError> {
        if self.miner.is_some() {
            return Ok(());
        }
        let backend = backend::open(self.config.mining.backend, self.config.mining.threads)?;
        let info = backend.info();
        self.backend_name = format!(
            "{:?}: {} on {} ({} threads)",
            info.kind, info.path, info.device, info.threads
        )
        .to_lowercase();
        info!(backend = %self.backend_name, "mining");
        self.miner = Some(Miner::start(backend, self.found.clone()));
        Ok(())
    }

    /// A fresh template on the tip for the miner, paced when the config asks for it.
    fn new_job(&mut self) {
        if !self.mining {
            return;
        }
        let Some(miner) = &self.miner else {
            return;
        };
        let receipts = self.pool.select(MAX_BLOCK_BYTES / 2);
        let template = self.chain.template(self.miner_id, receipts, unix_now());
        let pace = self.pace.as_millis() as u64;
        let delay = if pace == 0 {
            0
        } else {
            rand::rng().random_range(0..=2 * pace)
        };
        miner.replace(template, Instant::now() + Duration::from_millis(delay));
    }

    fn on_net(&mut self, event: NetEvent) -> Result<(), NodeError> {
        match event {
            NetEvent::Connected {
                peer, listen_addr, ..
            } => {
                if let Some(addr) = listen_addr {
                    self.known.entry(addr).or_insert(None);
                    if let Err(error) = self.store.put_peer(&addr.to_string(), unix_now()) {
                        warn!(%error, "cannot record peer");
                    }
                }
                self.start_sync(peer);
                self.publish();
            }
            NetEvent::Disconnected { .. } => self.publish(),
            NetEvent::Block { peer, bytes } => {
                self.on_block_bytes(&bytes, peer)?;
            }
            NetEvent::Request { request, reply, .. } => {
                let _ = reply.send(sync::answer(&self.chain, &request));
            }
            _ => {}
        }
        Ok(())
    }

    /// A block from a peer: drop it if seen, ban the peer if it does not decode, else accept.
    fn on_block_bytes(&mut self, bytes: &[u8], peer: NodeId) -> Result<bool, NodeError> {
        let Some(header) = bytes.get(..80) else {
            self.misbehaved(peer, "sent a block shorter than a header");
            return Ok(false);
        };
        let hash = BlockHash(sha256d(header));
        if self.seen.contains(&hash) {
            self.metrics.duplicates_dropped.inc();
            return Ok(true);
        }
        let block = match Block::decode(bytes) {
            Ok(block) => block,
            Err(error) => {
                self.misbehaved(peer, &format!("sent a malformed block: {error}"));
                return Ok(false);
            }
        };
        Ok(self.accept(block, Some(peer))?.is_ok())
    }

    /// Validates, stores, relays; the outer error is fatal (the store failed).
    fn accept(
        &mut self,
        block: Block,
        from: Option<NodeId>,
    ) -> Result<Result<Accepted, ChainError>, NodeError> {
        let hash = block.hash();
        let accepted = match self.chain.accept_block(block, unix_now()) {
            Ok(accepted) => accepted,
            Err(error) => {
                self.refused(&error, from, "block");
                return Ok(Err(error));
            }
        };
        if let Some(stored) = self.chain.block(&hash) {
            self.store
                .store_block_and_tip(stored, &accepted, &self.chain)?;
        }
        if self.applied(hash, &accepted, from) {
            self.relay_tip(from);
            self.new_job();
            self.publish();
        }
        if let (Accepted::Orphan { missing_parent }, Some(peer)) = (&accepted, from) {
            debug!(%hash, %missing_parent, "orphan block; syncing from its sender");
            self.start_sync(peer);
        }
        Ok(Ok(accepted))
    }

    /// A refused block or header: ban the peer that sent it, unless it may be clock skew.
    fn refused(&mut self, error: &ChainError, from: Option<NodeId>, what: &str) {
        self.metrics.blocks_rejected.inc();
        match from {
            // A block from the future may be clock skew, not malice.
            Some(_) if matches!(error, ChainError::TimeTooNew { .. }) => {
                warn!(%error, "{what} from a peer refused");
            }
            Some(peer) => self.misbehaved(peer, &format!("sent an invalid {what}: {error}")),
            None => warn!(%error, "local {what} refused"),
        }
    }

    /// What follows a stored block (or a duplicate): pool, seen-cache, metrics, the chain
    /// event. True when the block became the tip.
    fn applied(&mut self, hash: BlockHash, accepted: &Accepted, from: Option<NodeId>) -> bool {
        match accepted {
            Accepted::NewTip { .. } | Accepted::SideBranch => {}
            Accepted::Duplicate => {
                self.seen.insert(hash);
                return false;
            }
            Accepted::Orphan { .. } => return false,
        }
        self.pool.update(accepted, &self.chain);
        self.seen.insert(hash);
        if from.is_some() {
            self.metrics.blocks_received.inc();
        }
        let tip = matches!(accepted, Accepted::NewTip { .. });
        let height = self.chain.height_of(&hash).unwrap_or(0);
        let parent = self
            .chain
            .block(&hash)
            .map(|block| block.header.prev.to_string())
            .unwrap_or_default();
        self.event_log.record(match from {
            Some(peer) => EventKind::BlockReceived {
                hash: hash.to_string(),
                height,
                from: peer.short(),
                parent,
            },
            None => EventKind::BlockFound {
                hash: hash.to_string(),
                height,
                parent,
            },
        });
        if let Accepted::NewTip { reorg: Some(reorg) } = accepted {
            self.metrics.reorgs.inc();
            info!(
                depth = reorg.disconnected.len(),
                returned_receipts = reorg.returned_receipts.len(),
                tip = %hash, "reorganised to a branch with more work"
            );
            self.event_log.record(EventKind::BlockReorged {
                old_tip: reorg
                    .disconnected
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                new_tip: hash.to_string(),
                depth: reorg.disconnected.len() as u64,
            });
        }
        let event = ChainEvent {
            hash,
            height,
            tip,
            from,
            at: Instant::now(),
        };
        let _ = self.events.send(event);
        tip
    }

    /// Sends the tip block to every peer but `from`.
    fn relay_tip(&self, from: Option<NodeId>) {
        if let Some(tip) = self.chain.block(&self.chain.tip()) {
            self.net.broadcast(&Message::Block(tip.encode()), from);
        }
    }

    /// A batch of synced blocks from `peer`: accept them in order, store those accepted in ONE
    /// transaction, then apply them; relay the tip when the batch extended it. False when a
    /// block was refused (the round stops); the outer error is fatal (the store failed).
    fn accept_synced(&mut self, peer: NodeId, blocks: Vec<Block>) -> Result<bool, NodeError> {
        let mut accepted = Vec::with_capacity(blocks.len());
        let mut complete = true;
        for block in blocks {
            let hash = block.hash();
            match self.chain.accept_block(block, unix_now()) {
                // Headers were checked first, so an orphan means the peer reorganised.
                Ok(Accepted::Orphan { .. }) => {
                    complete = false;
                    break;
                }
                Ok(outcome) => accepted.push((hash, outcome)),
                Err(error) => {
                    self.refused(&error, Some(peer), "block");
                    complete = false;
                    break;
                }
            }
        }
        let stored: Vec<(&Block, &Accepted)> = accepted
            .iter()
            .filter_map(|(hash, outcome)| self.chain.block(hash).map(|b| (b, outcome)))
            .collect();
        self.store.store_blocks_and_tip(&stored, &self.chain)?;
        let mut new_tip = false;
        for (hash, outcome) in &accepted {
            new_tip |= self.applied(*hash, outcome, Some(peer));
        }
        if new_tip {
            self.relay_tip(Some(peer));
            self.new_job();
            self.publish();
        }
        Ok(complete)
    }

    fn on_mined(&mut self, block: Block) -> Result<(), NodeError> {
        let hash = block.hash();
        match self.accept(block, None)? {
            Ok(Accepted::NewTip { .. }) => {
                self.blocks_mined += 1;
                self.metrics.blocks_mined.inc();
                info!(height = self.chain.height(), %hash, "mined a block");
            }
            other => {
                debug!(?other, "mined block did not become the tip");
                self.new_job();
            }
        }
        Ok(())
    }

    fn start_sync(&mut self, peer: NodeId) {
        if !self.syncing.insert(peer) {
            self.resync.insert(peer);
            return;
        }
        let locator = self.chain.locator().into_iter().map(|h| h.0).collect();
        tokio::spawn(sync::run_round(
            self.net.clone(),
            peer,
            locator,
            self.sync_reports.clone(),
        ));
    }

    fn on_sync(&mut self, report: SyncReport) -> Result<(), NodeError> {
        match report {
            SyncReport::Headers {
                peer,
                headers,
                verdict,
            } => {
                let result = self.chain.check_headers(&headers, unix_now());
                if let Err(error) = &result {
                    self.refused(error, Some(peer), "header");
                }
                let _ = verdict.send(result);
            }
            SyncReport::Blocks {
                peer,
                blocks,
                stored,
            } => {
                let go_on = self.accept_synced(peer, blocks)?;
                let _ = stored.send(go_on);
            }
            SyncReport::Done { peer, result, more } => {
                self.syncing.remove(&peer);
                match result {
                    Ok(count) if count > 0 => {
                        debug!(peer = %peer.short(), count, "sync round done")
                    }
                    Ok(_) => {}
                    Err(error) => debug!(peer = %peer.short(), %error, "sync round failed"),
                }
                if more || self.resync.remove(&peer) {
                    self.start_sync(peer);
                }
            }
        }
        Ok(())
    }

    fn misbehaved(&mut self, peer: NodeId, reason: &str) {
        self.metrics.bans.inc();
        self.net.ban(peer, reason);
    }

    fn redial(&mut self) {
        let own = self.net.local_addr();
        for (&addr, &pin) in &self.known {
            if addr == own || self.dialing.contains(&addr) || self.net.knows_addr(addr) {
                continue;
            }
            self.dialing.insert(addr);
            let net = self.net.clone();
            let dialed = self.dialed.clone();
            tokio::spawn(async move {
                let result = net.dial(addr, pin).await.map_err(|e| e.to_string());
                let _ = dialed.send((addr, result));
            });
        }
    }

    fn on_dialed(&mut self, addr: SocketAddr, result: Result<NodeId, String>) {
        self.dialing.remove(&addr);
        if let Err(error) = result {
            debug!(%addr, %error, "dial failed; will retry");
        }
    }

    fn on_command(&mut self, command: ChainCommand) -> Result<(), NodeError> {
        match command {
            ChainCommand::SubmitBlock(block, reply) => {
                let result = self.accept(block, None)?;
                let _ = reply.send(result);
            }
            ChainCommand::SubmitReceipt(receipt, reply) => {
                let added = self.pool.insert(receipt);
                let _ = reply.send(added);
                if let Some(miner) = self.miner.as_ref().filter(|_| added && self.mining) {
                    let receipts = self.pool.select(MAX_BLOCK_BYTES / 2);
                    miner.refresh(self.chain.template(self.miner_id, receipts, unix_now()));
                }
            }
            ChainCommand::Inspect(inspect) => inspect(&self.chain),
            ChainCommand::SetMining(on) => {
                self.mining = on;
                if on {
                    self.open_miner()?;
                    self.new_job();
                } else if let Some(miner) = &self.miner {
                    miner.pause();
                }
            }
            ChainCommand::Shutdown => {}
        }
        Ok(())
    }

    /// Refreshes metrics and the chain's fields of the `/status` snapshot.
    fn publish(&mut self) {
        let hashes = self.miner.as_ref().map_or(0, Miner::hashes);
        let (since, before) = self.rate_sample;
        let elapsed = since.elapsed();
        if elapsed >= Duration::from_millis(900) {
            self.hash_rate = (hashes - before) as f64 / elapsed.as_secs_f64();
            self.rate_sample = (Instant::now(), hashes);
            self.metrics.hashes.inc_by(hashes - before);
            if self.miner.is_some() {
                self.event_log.record(EventKind::HashRate {
                    hashes_per_sec: self.hash_rate,
                });
            }
        }
        let peers = self.net.peers();
        self.metrics.height.set(self.chain.height() as i64);
        self.metrics.peers.set(peers.len() as i64);
        self.metrics.hash_rate.set(self.hash_rate);
        self.metrics.receipts_pooled.set(self.pool.len() as i64);
        let status = NodeStatus {
            consensus: None,
            training: None,
            network: self.config.network.clone(),
            node_id: self.net.id().to_string(),
            height: self.chain.height(),
            tip: self.chain.tip().to_string(),
            total_work: self.chain.total_work().0.to_string(),
            peers: peers
                .iter()
                .map(|p| PeerStatus {
                    id: p.id.to_string(),
                    addr: p.listen_addr.unwrap_or(p.remote).to_string(),
                    outbound: p.outbound,
                    key_exchange: p.key_exchange.name().to_string(),
                })
                .collect(),
            hash_rate: self.hash_rate,
            backend: self.backend_name.clone(),
            mining: self.mining && self.miner.is_some(),
            blocks_mined: self.blocks_mined,
            receipts_pooled: self.pool.len(),
            listen: self.net.local_addr().to_string(),
        };
        // Keep the consensus and training services' fields (they write them under the same
        // lock).
        self.status.send_modify(|current| {
            let consensus = current.consensus.take();
            let training = current.training.take();
            *current = NodeStatus {
                consensus,
                training,
                ..status
            };
        });
    }
}
