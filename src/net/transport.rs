//! The QUIC transport: one endpoint that dials and accepts, the handshake on each new
//! connection, the peer table with bans and duplicate-connection resolution, a long-lived
//! gossip stream per peer and one bidirectional stream per request. Everything a peer sends
//! reaches the node as a `NetEvent`, on the receiver of the service whose frame type range it
//! belongs to (chain, Raft, training; see `frame::Service`). A frame of a known range is never
//! a reason to ban (a range with no subscriber drops it); an unknown type or a malformed frame
//! is.
//!
//! Owns sockets and tasks; must not interpret block bytes.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::events::EventLog;

use super::frame::{self, FrameType, Hello, MAX_GET_BLOCKS, Message, Service, ServiceFrame};
use super::handshake::check_hello;
use super::identity::{Identity, NodeId};
use super::tls::KeyExchange;
use super::wire::{ReadFailure, read_frame, write_message};
use super::{NetConfig, NetError, PROTOCOL_VERSION, close_code, stamp, tls};

/// Something a peer did that the node must handle.
#[derive(Debug)]
#[non_exhaustive]
pub enum NetEvent {
    /// A handshake completed; the peer can be gossiped to and asked.
    Connected {
        /// The peer's certificate fingerprint.
        peer: NodeId,
        /// The address the connection comes from (or was dialled to).
        remote: SocketAddr,
        /// Where the peer accepts connections (its address with its announced port).
        listen_addr: Option<SocketAddr>,
    },
    /// The connection to a peer ended.
    Disconnected {
        /// The peer whose connection ended.
        peer: NodeId,
        /// Why, for logs (stream closed, bad frame, the peer's close reason).
        reason: String,
    },
    /// A handshake was refused, by this node or by the peer; `reason` is what the user sees.
    Refused {
        /// The other side's address.
        remote: SocketAddr,
        /// The other side's fingerprint, when the TLS handshake revealed it.
        peer: Option<NodeId>,
        /// Why the handshake was refused.
        reason: String,
    },
    /// A block arrived on a peer's gossip stream.
    Block {
        /// The peer that sent it.
        peer: NodeId,
        /// The encoded block, not yet decoded or validated.
        bytes: Vec<u8>,
    },
    /// A Raft- or training-range frame arrived on a peer's gossip stream (`send_to` or
    /// `broadcast` on its side).
    Frame {
        /// The peer that sent it.
        peer: NodeId,
        /// The frame's type byte and opaque payload.
        frame: ServiceFrame,
    },
    /// A peer asks something (`GetHeaders`, `GetBlocks`, or a service-range frame on its own
    /// stream); answer through `reply`.
    Request {
        /// The peer asking.
        peer: NodeId,
        /// What it asks.
        request: Message,
        /// Where the answer's frames go.
        reply: Responder,
    },
}

/// Where the node sends the frames that answer a request (dropping it ends the stream empty).
pub type Responder = oneshot::Sender<Vec<Message>>;

/// A connected peer, for status pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSummary {
    /// The peer's certificate fingerprint.
    pub id: NodeId,
    /// The address the connection comes from (or was dialled to).
    pub remote: SocketAddr,
    /// Where the peer accepts connections (`None` when it announced port 0).
    pub listen_addr: Option<SocketAddr>,
    /// True when this node dialed the connection.
    pub outbound: bool,
    /// The key-exchange group of the connection's handshake. Each node offers and accepts
    /// exactly one group, so a completed handshake used this node's configured group.
    pub key_exchange: KeyExchange,
}

struct Peer {
    connection: quinn::Connection,
    /// Frames to write in order; one item is a frame with its stamp, if any.
    gossip: mpsc::UnboundedSender<Vec<Arc<[u8]>>>,
    remote: SocketAddr,
    listen_addr: Option<SocketAddr>,
    dialed_by: NodeId,
}

#[derive(Default)]
struct State {
    peers: HashMap<NodeId, Peer>,
    bans: HashMap<NodeId, Instant>,
    cut: HashSet<NodeId>,
    /// Addresses that turned out to be this node itself.
    self_addrs: HashSet<SocketAddr>,
}

struct Inner {
    endpoint: quinn::Endpoint,
    identity: Identity,
    config: NetConfig,
    hello: Hello,
    state: Mutex<State>,
    /// Where each service's events go; the chain's is set by `bind`, others by `subscribe`.
    subscribers: Mutex<HashMap<Service, mpsc::Sender<NetEvent>>>,
}

/// A handle on the node's QUIC endpoint and its peers; cheap to clone.
#[derive(Clone)]
pub struct Network {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").finish_non_exhaustive()
    }
}

/// The fault-injection hook: cuts this node off from chosen peers (their connections close, new
/// ones are refused in both directions) until `heal`.
#[derive(Clone, Debug)]
pub struct PartitionControl {
    network: Network,
}

impl PartitionControl {
    /// Drops and refuses all traffic with `peers`.
    pub fn cut(&self, peers: &[NodeId]) {
        let inner = &self.network.inner;
        let mut state = inner.lock();
        for peer in peers {
            state.cut.insert(*peer);
            if let Some(entry) = state.peers.get(peer) {
                entry
                    .connection
                    .close(close_code::PARTITIONED.into(), b"partitioned by a test");
            }
        }
    }

    /// Lets traffic with every peer flow again (the node redials its known peers).
    pub fn heal(&self) {
        self.network.inner.lock().cut.clear();
    }

    /// True while `peer` is cut off.
    pub fn is_cut(&self, peer: &NodeId) -> bool {
        self.network.inner.lock().cut.contains(peer)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the peer table inconsistent in a way that
        // matters more than stopping the node would; keep going with the data.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn subscriber(&self, service: Service) -> Option<mpsc::Sender<NetEvent>> {
        self.subscribers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&service)
            .cloned()
    }

    /// Hands an event to `service`'s subscriber (waiting while its queue is full); false when
    /// that service has none or it has gone.
    async fn deliver(&self, service: Service, event: NetEvent) -> bool {
        match self.subscriber(service) {
            Some(events) => events.send(event).await.is_ok(),
            None => false,
        }
    }

    /// Tells every subscriber about a connection change; `make` builds each one's copy.
    async fn announce(&self, make: impl Fn() -> NetEvent) {
        let subscribers: Vec<_> = self
            .subscribers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect();
        for events in subscribers {
            let _ = events.send(make()).await;
        }
    }

    fn banned(&self, peer: &NodeId) -> Option<Duration> {
        let mut state = self.lock();
        let until = *state.bans.get(peer)?;
        let now = Instant::now();
        if until <= now {
            state.bans.remove(peer);
            return None;
        }
        Some(until - now)
    }
}

impl Network {
    /// Binds the endpoint and starts accepting. The chain's events (and every service's
    /// connection events) arrive on the returned receiver; other services take theirs with
    /// `subscribe`. The network stops when `shutdown` is called or every handle is dropped.
    pub fn bind(
        identity: Identity,
        config: NetConfig,
    ) -> Result<(Network, mpsc::Receiver<NetEvent>), NetError> {
        let server = tls::server_config_with(
            &identity,
            &config.pins,
            config.idle_timeout,
            config.key_exchange,
        )?;
        let mut endpoint = quinn::Endpoint::server(server, config.listen)
            .map_err(|e| NetError::Bind(config.listen, e))?;
        endpoint.set_default_client_config(tls::client_config_with(
            &identity,
            &config.pins,
            config.idle_timeout,
            config.key_exchange,
        )?);
        let listen_port = endpoint
            .local_addr()
            .map_err(|e| NetError::Bind(config.listen, e))?
            .port();
        let hello = Hello {
            version: PROTOCOL_VERSION,
            network: config.network.clone(),
            genesis: config.genesis,
            listen_port,
        };
        let (events, receiver) = mpsc::channel(4096);
        let inner = Arc::new(Inner {
            endpoint,
            identity,
            config,
            hello,
            state: Mutex::new(State::default()),
            subscribers: Mutex::new(HashMap::from([(Service::Chain, events)])),
        });
        let accepting = Arc::downgrade(&inner);
        let endpoint = inner.endpoint.clone();
        tokio::spawn(async move {
            while let Some(incoming) = endpoint.accept().await {
                let Some(inner) = accepting.upgrade() else {
                    break;
                };
                tokio::spawn(async move {
                    let remote = incoming.remote_address();
                    if let Err(error) = accept(inner, incoming).await {
                        debug!(%remote, %error, "inbound connection failed");
                    }
                });
            }
        });
        Ok((Network { inner }, receiver))
    }

    /// This node's fingerprint.
    pub fn id(&self) -> NodeId {
        self.inner.identity.id()
    }

    /// The node's event log (the one frames are stamped with), for the services' own events.
    pub fn event_log(&self) -> EventLog {
        self.inner.config.events.clone()
    }

    /// A receiver for `service`'s frames and requests, plus every connection event (replacing
    /// an earlier subscriber of that service). Until a service subscribes, its frames are
    /// dropped and its requests answered with an empty stream.
    pub fn subscribe(&self, service: Service) -> mpsc::Receiver<NetEvent> {
        let (events, receiver) = mpsc::channel(4096);
        self.inner
            .subscribers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(service, events);
        receiver
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner
            .endpoint
            .local_addr()
            .unwrap_or(self.inner.config.listen)
    }

    /// The handle tests use to partition this node from peers.
    pub fn partition(&self) -> PartitionControl {
        PartitionControl {
            network: self.clone(),
        }
    }

    /// Connects to `addr` and completes the handshake; `pin` demands that fingerprint.
    pub async fn dial(&self, addr: SocketAddr, pin: Option<NodeId>) -> Result<NodeId, NetError> {
        let inner = &self.inner;
        let connecting = if let Some(pin) = pin {
            let config = tls::client_config_with(
                &inner.identity,
                &[pin],
                inner.config.idle_timeout,
                inner.config.key_exchange,
            )?;
            inner.endpoint.connect_with(config, addr, tls::SERVER_NAME)
        } else {
            inner.endpoint.connect(addr, tls::SERVER_NAME)
        }
        .map_err(|e| NetError::Connect(addr, e.into()))?;
        let timeout = inner.config.request_timeout;
        let connection = tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| NetError::ConnectTimeout(addr, timeout))?
            .map_err(|e| NetError::Connect(addr, e.into()))?;
        let peer = tls::peer_id(&connection)?;
        if peer == self.id() {
            inner.lock().self_addrs.insert(addr);
            connection.close(close_code::REJECTED.into(), b"connected to itself");
            return Err(NetError::RefusedHere {
                addr,
                reason: "this address is the node itself".into(),
            });
        }
        if let Some(reason) = refusal(inner, &peer) {
            connection.close(close_code::REJECTED.into(), reason.as_bytes());
            return Err(NetError::RefusedHere { addr, reason });
        }
        let handshake = async {
            let (mut send, mut recv) = connection
                .open_bi()
                .await
                .map_err(|e| NetError::Connect(addr, e.into()))?;
            write_message(&mut send, &Message::Hello(inner.hello.clone()))
                .await
                .map_err(|e| failure(peer, e))?;
            let answer = read_frame(&mut recv).await;
            Ok::<_, NetError>((send, recv, answer))
        };
        let (send, recv, answer) = tokio::time::timeout(inner.config.request_timeout, handshake)
            .await
            .map_err(|_| NetError::Timeout(peer, inner.config.request_timeout))??;
        let theirs = match answer {
            Ok(Some(Message::Hello(theirs))) => theirs,
            Ok(Some(Message::Reject { reason })) => {
                let reason = format!("refused by the peer: {reason}");
                connection.close(close_code::REJECTED.into(), b"refused");
                refused(inner, addr, Some(peer), &reason).await;
                return Err(NetError::Refused { addr, reason });
            }
            other => {
                let reason = match connection.close_reason() {
                    Some(quinn::ConnectionError::ApplicationClosed(close)) => {
                        String::from_utf8_lossy(&close.reason).into_owned()
                    }
                    _ => format!("no hello from the peer ({other:?})"),
                };
                connection.close(close_code::REJECTED.into(), b"no hello");
                return Err(NetError::Refused { addr, reason });
            }
        };
        if let Err(reason) = check_hello(&inner.hello, &theirs) {
            reject(inner, &connection, send, addr, peer, reason.clone()).await;
            return Err(NetError::RefusedHere { addr, reason });
        }
        let listen_addr = Some(addr);
        register(inner, connection, send, recv, peer, self.id(), listen_addr).await;
        Ok(peer)
    }

    /// Queues `message` on the gossip stream of every peer except `except`; returns how many.
    pub fn broadcast(&self, message: &Message, except: Option<NodeId>) -> usize {
        let Ok(bytes) = super::frame::encode(message) else {
            return 0;
        };
        let bytes: Arc<[u8]> = bytes.into();
        let kind = message.frame_type();
        let len = stamp::payload_len(&bytes);
        let events = &self.inner.config.events;
        let state = self.inner.lock();
        state
            .peers
            .iter()
            .filter(|(id, _)| Some(**id) != except && !state.cut.contains(*id))
            .filter(|(id, peer)| {
                let frames = stamp::stamped(stamp::stamp_for(events, id, kind, len), &bytes);
                peer.gossip.send(frames).is_ok()
            })
            .count()
    }

    /// Queues `message` on `peer`'s gossip stream (in order with everything else sent to it).
    pub fn send_to(&self, peer: NodeId, message: &Message) -> Result<(), NetError> {
        let bytes: Arc<[u8]> = super::frame::encode(message)
            .map_err(|error| NetError::Encode(peer, error))?
            .into();
        let state = self.inner.lock();
        if state.cut.contains(&peer) {
            return Err(NetError::NotConnected(peer));
        }
        let connected = state.peers.get(&peer).ok_or(NetError::NotConnected(peer))?;
        let events = &self.inner.config.events;
        let len = stamp::payload_len(&bytes);
        let stamp = stamp::stamp_for(events, &peer, message.frame_type(), len);
        connected
            .gossip
            .send(stamp::stamped(stamp, &bytes))
            .map_err(|_| NetError::NotConnected(peer))
    }

    /// Sends one request on its own stream and collects the answer's frames.
    pub async fn request(&self, peer: NodeId, message: Message) -> Result<Vec<Message>, NetError> {
        let connection = {
            let state = self.inner.lock();
            if state.cut.contains(&peer) {
                return Err(NetError::NotConnected(peer));
            }
            state
                .peers
                .get(&peer)
                .map(|p| p.connection.clone())
                .ok_or(NetError::NotConnected(peer))?
        };
        let timeout = self.inner.config.request_timeout;
        let events = &self.inner.config.events;
        let exchange = async {
            let (mut send, mut recv) = connection
                .open_bi()
                .await
                .map_err(|e| NetError::Stream(peer, e.into()))?;
            write_stamp(&mut send, events, &peer, &message)
                .await
                .map_err(|e| failure(peer, e))?;
            write_message(&mut send, &message)
                .await
                .map_err(|e| failure(peer, e))?;
            let _ = send.finish();
            let mut answer = Vec::new();
            while let Some(frame) = stamp::read_logged(&mut recv, events, &peer)
                .await
                .map_err(|e| failure(peer, e))?
            {
                answer.push(frame);
                if answer.len() > MAX_GET_BLOCKS + 1 {
                    return Err(NetError::TooManyFrames(peer, MAX_GET_BLOCKS + 1));
                }
            }
            Ok(answer)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Err(NetError::Frame(peer, error))) => {
                self.ban(peer, &format!("sent a bad frame: {error}"));
                Err(NetError::Frame(peer, error))
            }
            Ok(result) => result,
            Err(_) => Err(NetError::Timeout(peer, timeout)),
        }
    }

    /// Disconnects `peer` and refuses it for the configured ban time.
    pub fn ban(&self, peer: NodeId, reason: &str) {
        ban(&self.inner, peer, reason);
    }

    /// True while `peer` is banned.
    pub fn is_banned(&self, peer: &NodeId) -> bool {
        self.inner.banned(peer).is_some()
    }

    /// The connected peers.
    pub fn peers(&self) -> Vec<PeerSummary> {
        let state = self.inner.lock();
        let mut peers: Vec<PeerSummary> = state
            .peers
            .iter()
            .map(|(id, peer)| PeerSummary {
                id: *id,
                remote: peer.remote,
                listen_addr: peer.listen_addr,
                outbound: peer.dialed_by == self.id(),
                key_exchange: self.inner.config.key_exchange,
            })
            .collect();
        peers.sort_by_key(|p| p.id);
        peers
    }

    /// True when some connected peer listens on `addr`, or `addr` is this node.
    pub fn knows_addr(&self, addr: SocketAddr) -> bool {
        let state = self.inner.lock();
        state.self_addrs.contains(&addr)
            || state
                .peers
                .values()
                .any(|p| p.listen_addr == Some(addr) || p.remote == addr)
    }

    /// Closes every connection and the endpoint.
    pub fn shutdown(&self) {
        self.inner
            .endpoint
            .close(close_code::SHUTDOWN.into(), b"node shutting down");
    }
}

/// Why this node will not talk to `peer` right now, if it will not.
fn refusal(inner: &Inner, peer: &NodeId) -> Option<String> {
    if inner.lock().cut.contains(peer) {
        return Some("partitioned".into());
    }
    inner.banned(peer).map(|left| {
        format!(
            "peer {} is banned for another {} s after misbehaving",
            peer.short(),
            left.as_secs()
        )
    })
}

fn failure(peer: NodeId, failure: ReadFailure) -> NetError {
    match failure {
        ReadFailure::Frame(error) => NetError::Frame(peer, error),
        ReadFailure::Stream(reason) => NetError::Stream(peer, reason),
    }
}

async fn refused(inner: &Inner, remote: SocketAddr, peer: Option<NodeId>, reason: &str) {
    warn!(%remote, peer = ?peer, %reason, "handshake refused");
    inner
        .announce(|| NetEvent::Refused {
            remote,
            peer,
            reason: reason.to_string(),
        })
        .await;
}

/// Sends `Reject { reason }`, gives the peer a moment to read it, then closes with the reason.
async fn reject(
    inner: &Inner,
    connection: &quinn::Connection,
    mut send: quinn::SendStream,
    remote: SocketAddr,
    peer: NodeId,
    reason: String,
) {
    refused(inner, remote, Some(peer), &reason).await;
    let message = Message::Reject {
        reason: reason.clone(),
    };
    if write_message(&mut send, &message).await.is_ok() {
        let _ = send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(2), connection.closed()).await;
    }
    connection.close(close_code::REJECTED.into(), reason.as_bytes());
}

/// The inbound side of a connection: TLS, then read the dialer's hello and answer.
async fn accept(inner: Arc<Inner>, incoming: quinn::Incoming) -> Result<(), NetError> {
    let remote = incoming.remote_address();
    let timeout = inner.config.request_timeout;
    let connection = tokio::time::timeout(timeout, async {
        incoming
            .await
            .map_err(|e| NetError::Connect(remote, e.into()))
    })
    .await
    .map_err(|_| NetError::ConnectTimeout(remote, timeout))??;
    let peer = tls::peer_id(&connection)?;
    if inner.lock().cut.contains(&peer) {
        connection.close(close_code::PARTITIONED.into(), b"partitioned");
        return Ok(());
    }
    let (send, mut recv) = tokio::time::timeout(timeout, connection.accept_bi())
        .await
        .map_err(|_| NetError::Timeout(peer, timeout))?
        .map_err(|e| NetError::Stream(peer, e.into()))?;
    let theirs = match tokio::time::timeout(timeout, read_frame(&mut recv)).await {
        Ok(Ok(Some(Message::Hello(hello)))) => hello,
        Ok(Err(ReadFailure::Frame(error))) => {
            ban(&inner, peer, &format!("sent a bad hello: {error}"));
            return Err(NetError::Frame(peer, error));
        }
        _ => {
            connection.close(close_code::REJECTED.into(), b"expected a hello frame first");
            return Err(NetError::NoHello(peer));
        }
    };
    let refusal = if peer == inner.identity.id() {
        Some("connected to itself".to_string())
    } else {
        refusal(&inner, &peer).or_else(|| check_hello(&inner.hello, &theirs).err())
    };
    if let Some(reason) = refusal {
        reject(&inner, &connection, send, remote, peer, reason.clone()).await;
        return Err(NetError::RefusedHere {
            addr: remote,
            reason,
        });
    }
    let mut send = send;
    write_message(&mut send, &Message::Hello(inner.hello.clone()))
        .await
        .map_err(|e| failure(peer, e))?;
    let listen_addr =
        (theirs.listen_port != 0).then(|| SocketAddr::new(remote.ip(), theirs.listen_port));
    register(&inner, connection, send, recv, peer, peer, listen_addr).await;
    Ok(())
}

/// Adds a handshaken connection to the peer table (or drops it when a better duplicate exists)
/// and starts its gossip writer, gossip reader and request server.
async fn register(
    inner: &Arc<Inner>,
    connection: quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: NodeId,
    dialed_by: NodeId,
    listen_addr: Option<SocketAddr>,
) {
    let own = inner.identity.id();
    let remote = connection.remote_address();
    let (gossip, mut outbox) = mpsc::unbounded_channel::<Vec<Arc<[u8]>>>();
    {
        let mut state = inner.lock();
        if let Some(existing) = state.peers.get(&peer) {
            // Both sides keep the connection dialed by the smaller id, so a simultaneous dial
            // leaves exactly one.
            let preferred = own.min(peer);
            let keep_existing = existing.dialed_by != dialed_by
                && existing.dialed_by == preferred
                && existing.connection.close_reason().is_none();
            if keep_existing {
                connection.close(close_code::DUPLICATE.into(), b"duplicate connection");
                return;
            }
            existing
                .connection
                .close(close_code::DUPLICATE.into(), b"duplicate connection");
        }
        state.peers.insert(
            peer,
            Peer {
                connection: connection.clone(),
                gossip,
                remote,
                listen_addr,
                dialed_by,
            },
        );
    }
    info!(
        peer = %peer.short(), %remote, key_exchange = inner.config.key_exchange.name(),
        "peer connected"
    );
    inner
        .announce(|| NetEvent::Connected {
            peer,
            remote,
            listen_addr,
        })
        .await;

    // Gossip writer: frames queued by `broadcast`, in order.
    tokio::spawn(async move {
        'writing: while let Some(pieces) = outbox.recv().await {
            for piece in pieces {
                if send.write_all(&piece).await.is_err() {
                    break 'writing;
                }
            }
        }
    });

    // Request server: one task per incoming bidirectional stream.
    let serving = Arc::downgrade(inner);
    let requests = connection.clone();
    tokio::spawn(async move {
        while let Ok((send, recv)) = requests.accept_bi().await {
            let Some(inner) = serving.upgrade() else {
                break;
            };
            tokio::spawn(serve_request(inner, peer, send, recv));
        }
    });

    // Gossip reader: lives as long as the connection; cleans up the peer table at the end.
    let reading = Arc::downgrade(inner);
    let events = inner.config.events.clone();
    tokio::spawn(async move {
        let reason = loop {
            let frame = stamp::read_logged(&mut recv, &events, &peer).await;
            let Some(inner) = reading.upgrade() else {
                return;
            };
            match frame {
                Ok(Some(message)) => {
                    if inner.lock().cut.contains(&peer) {
                        continue;
                    }
                    let kind = message.frame_type();
                    let event = match message {
                        Message::Block(bytes) => NetEvent::Block { peer, bytes },
                        Message::Service(frame) => NetEvent::Frame { peer, frame },
                        other => {
                            // A known frame in the wrong place: the peer's mistake, not
                            // malice worth a ban.
                            debug!(peer = %peer.short(), kind = %other.frame_type(), "frame ignored on the gossip stream");
                            continue;
                        }
                    };
                    if !inner.deliver(kind.service(), event).await {
                        debug!(peer = %peer.short(), %kind, "no subscriber; frame dropped");
                    }
                }
                Ok(None) => break "gossip stream closed".to_string(),
                Err(ReadFailure::Frame(error)) => {
                    let reason = format!("sent a bad frame: {error}");
                    ban(&inner, peer, &reason);
                    break reason;
                }
                Err(ReadFailure::Stream(reason)) => {
                    break match connection.close_reason() {
                        Some(quinn::ConnectionError::ApplicationClosed(close)) => format!(
                            "closed by the peer: {}",
                            String::from_utf8_lossy(&close.reason)
                        ),
                        _ => reason.to_string(),
                    };
                }
            }
        };
        let Some(inner) = reading.upgrade() else {
            return;
        };
        let removed = {
            let mut state = inner.lock();
            let ours = state
                .peers
                .get(&peer)
                .is_some_and(|p| p.connection.stable_id() == connection.stable_id());
            ours && state.peers.remove(&peer).is_some()
        };
        connection.close(close_code::SHUTDOWN.into(), b"gossip stream ended");
        if removed {
            info!(peer = %peer.short(), %reason, "peer disconnected");
            inner
                .announce(|| NetEvent::Disconnected {
                    peer,
                    reason: reason.clone(),
                })
                .await;
        }
    });
}

/// Reads one request, lets the node answer it, writes the answer and ends the stream.
async fn serve_request(
    inner: Arc<Inner>,
    peer: NodeId,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let timeout = inner.config.request_timeout;
    let events = &inner.config.events;
    let request = match tokio::time::timeout(timeout, stamp::read_logged(&mut recv, events, &peer))
        .await
    {
        Ok(Ok(Some(
            request @ (Message::GetHeaders { .. } | Message::GetBlocks(_) | Message::Service(_)),
        ))) => request,
        Ok(Ok(Some(other))) => {
            let kind: FrameType = other.frame_type();
            debug!(peer = %peer.short(), %kind, "frame that is not a request ignored");
            let _ = send.finish();
            return;
        }
        Ok(Err(ReadFailure::Frame(error))) => {
            ban(&inner, peer, &format!("sent a bad request frame: {error}"));
            return;
        }
        _ => return,
    };
    if inner.lock().cut.contains(&peer) {
        return;
    }
    let (reply, answer) = oneshot::channel();
    let service = request.frame_type().service();
    let event = NetEvent::Request {
        peer,
        request,
        reply,
    };
    if !inner.deliver(service, event).await {
        let _ = send.finish();
        return;
    }
    let Ok(Ok(frames)) = tokio::time::timeout(timeout, answer).await else {
        let _ = send.finish();
        return;
    };
    for frame in &frames {
        if write_stamp(&mut send, events, &peer, frame).await.is_err()
            || write_message(&mut send, frame).await.is_err()
        {
            return;
        }
    }
    let _ = send.finish();
}

/// Logs the send of `message` to `peer` and writes its stamp (nothing when the log is off).
async fn write_stamp(
    send: &mut quinn::SendStream,
    events: &EventLog,
    peer: &NodeId,
    message: &Message,
) -> Result<(), ReadFailure> {
    if !events.is_enabled() {
        return Ok(());
    }
    // Blocks and service frames carry their payload as is (an answer of up to 500 blocks is
    // not encoded twice); the small session and sync messages are encoded to measure them.
    let len = match message {
        Message::Service(frame) => frame.payload.len(),
        Message::Block(bytes) => bytes.len(),
        other => frame::encode(other)
            .map(|bytes| stamp::payload_len(&bytes))
            .unwrap_or(0),
    };
    let Some(stamp) = stamp::stamp_for(events, peer, message.frame_type(), len) else {
        return Ok(());
    };
    send.write_all(&stamp)
        .await
        .map_err(|e| ReadFailure::Stream(e.into()))
}

fn ban(inner: &Inner, peer: NodeId, reason: &str) {
    let mut state = inner.lock();
    state.bans.insert(peer, Instant::now() + inner.config.ban);
    warn!(peer = %peer.short(), %reason, ban = ?inner.config.ban, "banning peer");
    if let Some(entry) = state.peers.get(&peer) {
        let message = format!("banned: {reason}");
        entry
            .connection
            .close(close_code::BANNED.into(), message.as_bytes());
    }
}
