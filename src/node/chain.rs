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

mod dialer;
mod mining;
mod syncing;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, mpsc, watch};
use tracing::{debug, info, warn};

use super::seen::SeenCache;
use super::sync::{self, SyncReport};
use super::{ChainCommand, ChainEvent, NodeError};
use crate::api::Metrics;
use crate::config::NodeConfig;
use crate::events::{EventKind, EventLog};
use crate::hash::reference::sha256d;
use crate::net::{Message, NetEvent, Network, NodeId};
use crate::pow::{
    Accepted, Block, BlockHash, Chain, ChainError, ChainStore, MAX_BLOCK_BYTES, ReceiptPool,
};
use crate::stratum::session::Offer;
use crate::views::ChainView;
use dialer::Dialer;
use mining::MinerControl;
use syncing::Syncing;

/// Receipt bytes a pool holds at most.
const POOL_BYTES: usize = 64 << 20;
/// Block hashes the seen-cache remembers.
const SEEN_CAPACITY: usize = 16_384;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The service's state: the chain and what persists it, the pool and seen-cache, and the
/// three parts that own their own tasks (dialer, sync rounds, miner).
struct ChainService {
    config: NodeConfig,
    chain: Chain,
    store: ChainStore,
    pool: ReceiptPool,
    seen: SeenCache,
    net: Network,
    dialer: Dialer,
    syncing: Syncing,
    miner: MinerControl,
    /// Who this node's coinbases pay (its own fingerprint).
    miner_id: NodeId,
    metrics: Metrics,
    view: watch::Sender<ChainView>,
    events: broadcast::Sender<ChainEvent>,
    event_log: EventLog,
    /// Where templates for the Stratum server go, when it runs.
    offers: Option<watch::Sender<Option<Offer>>>,
    /// The last offer's generation (bumped on every new parent) and parent.
    offered: (u64, BlockHash),
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
    /// Where the service publishes its view.
    pub view: watch::Sender<ChainView>,
    pub events: broadcast::Sender<ChainEvent>,
    /// The node's event log (blocks found, received and reorganised; hash rate).
    pub event_log: EventLog,
    /// Where the Stratum server takes its templates from (`None`: no server).
    pub offers: Option<watch::Sender<Option<Offer>>>,
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
        view,
        events,
        event_log,
        offers,
    } = parts;
    let (found, found_rx) = mpsc::unbounded_channel();
    let (sync_reports, sync_rx) = mpsc::channel(64);
    let (commands, commands_rx) = mpsc::channel(256);

    let mut dialer = Dialer::default();
    for peer in &config.net.peers {
        dialer.learn(peer.addr, peer.pin);
    }
    for (addr, _) in store.peers()? {
        if let Ok(addr) = addr.parse() {
            dialer.learn(addr, None);
        }
    }
    let mut service = ChainService {
        miner: MinerControl::new(config.mining.clone(), found),
        miner_id: net.id(),
        config,
        chain,
        store,
        pool: ReceiptPool::new(POOL_BYTES),
        seen: SeenCache::new(SEEN_CAPACITY),
        net,
        dialer,
        syncing: Syncing::new(sync_reports),
        metrics,
        view,
        events,
        event_log,
        offers,
        offered: (0, BlockHash([0; 32])),
    };
    if service.miner.wanted() {
        service.miner.open()?;
    }
    service.publish();
    let receivers = Receivers {
        net: net_events,
        found: found_rx,
        sync: sync_rx,
        commands: commands_rx,
    };
    let task = tokio::spawn(async move { service.run(receivers).await });
    Ok((commands, task))
}

struct Receivers {
    net: mpsc::Receiver<NetEvent>,
    found: mpsc::UnboundedReceiver<Block>,
    sync: mpsc::Receiver<SyncReport>,
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
                Some(dialed) = self.dialer.next() => {
                    self.dialer.finished(dialed);
                    Ok(())
                }
                command = rx.commands.recv() => match command {
                    Some(ChainCommand::Shutdown) | None => break Ok(()),
                    Some(command) => self.on_command(command),
                },
                _ = redial.tick() => {
                    self.dialer.redial(&self.net);
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
        self.miner.stop();
        info!("chain service stopped");
        result
    }

    /// A fresh template on the tip for the miner, paced when the config asks for it.
    fn new_job(&mut self) {
        let (chain, pool, miner_id) = (&self.chain, &self.pool, self.miner_id);
        self.miner
            .replace(|| chain.template(miner_id, pool.select(MAX_BLOCK_BYTES / 2), unix_now()));
        self.offer_template();
    }

    /// A fresh template for the Stratum server's miners; a new parent makes it a clean job
    /// of a new generation (older jobs' shares become stale).
    fn offer_template(&mut self) {
        let Some(offers) = &self.offers else {
            return;
        };
        let template = self.chain.template(
            self.miner_id,
            self.pool.select(MAX_BLOCK_BYTES / 2),
            unix_now(),
        );
        let prev = template.header().prev;
        let clean = prev != self.offered.1 || self.offered.0 == 0;
        if clean {
            self.offered = (self.offered.0 + 1, prev);
        }
        offers.send_replace(Some(Offer {
            template: Arc::new(template),
            generation: self.offered.0,
            clean,
        }));
    }

    fn on_net(&mut self, event: NetEvent) -> Result<(), NodeError> {
        match event {
            NetEvent::Connected {
                peer, listen_addr, ..
            } => {
                if let Some(addr) = listen_addr {
                    self.dialer.learn(addr, None);
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
                self.miner.found_one();
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
        let chain = &self.chain;
        self.syncing.start(&self.net, peer, || {
            chain.locator().into_iter().map(|h| h.0).collect()
        });
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
                let again = self.syncing.ended(peer, more);
                match result {
                    Ok(count) if count > 0 => {
                        debug!(peer = %peer.short(), count, "sync round done")
                    }
                    Ok(_) => {}
                    Err(error) => debug!(peer = %peer.short(), %error, "sync round failed"),
                }
                if again {
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

    fn on_command(&mut self, command: ChainCommand) -> Result<(), NodeError> {
        match command {
            ChainCommand::SubmitBlock(block, reply) => {
                let result = self.accept(block, None)?;
                let _ = reply.send(result);
            }
            ChainCommand::SubmitReceipt(receipt, reply) => {
                let added = self.pool.insert(receipt);
                let _ = reply.send(added);
                if added {
                    let (chain, pool, miner_id) = (&self.chain, &self.pool, self.miner_id);
                    self.miner.refresh(|| {
                        chain.template(miner_id, pool.select(MAX_BLOCK_BYTES / 2), unix_now())
                    });
                    self.offer_template();
                }
            }
            ChainCommand::Inspect(inspect) => inspect(&self.chain),
            ChainCommand::SetMining(on) => {
                self.miner.set_wanted(on)?;
                self.new_job();
            }
            ChainCommand::Shutdown => {}
        }
        Ok(())
    }

    /// Refreshes metrics and publishes the chain's view.
    fn publish(&mut self) {
        if let Some((hashes, mining)) = self.miner.sample() {
            self.metrics.hashes.inc_by(hashes);
            if mining {
                self.event_log.record(EventKind::HashRate {
                    hashes_per_sec: self.miner.hash_rate(),
                });
            }
        }
        let peers = self.net.peers();
        self.metrics.height.set(self.chain.height() as i64);
        self.metrics.peers.set(peers.len() as i64);
        self.metrics.hash_rate.set(self.miner.hash_rate());
        self.metrics.receipts_pooled.set(self.pool.len() as i64);
        let view = ChainView {
            network: self.config.network.clone(),
            node: self.net.id(),
            height: self.chain.height(),
            tip: self.chain.tip(),
            total_work: self.chain.total_work(),
            peers,
            hash_rate: self.miner.hash_rate(),
            backend: self.miner.backend_name().to_string(),
            mining: self.miner.running(),
            blocks_mined: self.miner.blocks_mined(),
            receipts_pooled: self.pool.len(),
            listen: self.net.local_addr(),
        };
        self.view.send_replace(view);
    }
}
