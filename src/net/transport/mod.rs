//! The QUIC transport: one endpoint that dials and accepts, the handshake on each new
//! connection, the peer table with bans and duplicate-connection resolution, a long-lived
//! gossip stream per peer and one bidirectional stream per request. Everything a peer sends
//! reaches the node as a `NetEvent`, on the receiver of the service whose frame type range it
//! belongs to (chain, Raft, training; see `frame::Service`). A frame of a known range is never
//! a reason to ban (a range with no subscriber drops it); an unknown type or a malformed frame
//! is.
//!
//! Each peer's gossip frames wait in a bounded outbox (`outbox`); a peer that stops reading
//! is disconnected once its outbox is full, and `broadcast`/`send_to` never wait. Every task
//! the transport starts (the accept loop, handshakes, each connection's writer, reader and
//! request server) belongs to the network's task set and is aborted by `shutdown`.
//!
//! Owns sockets and tasks; must not interpret block bytes.

mod connection;
mod duplicate;
mod outbox;
#[cfg(feature = "testing")]
mod partition;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::events::EventLog;

use super::frame::{self, Hello, MAX_GET_BLOCKS, Message, Service, ServiceFrame};
use super::handshake::check_hello;
use super::identity::{Identity, NodeId};
use super::tls::KeyExchange;
use super::wire::{ReadFailure, read_frame, write_message};
use super::{NetConfig, NetError, PROTOCOL_VERSION, close_code, stamp, tls};
use connection::{Handshaken, register};
use outbox::{OutboxBound, OutboxSender, Push};

pub use outbox::DEFAULT_OUTBOX_BYTES;
#[cfg(feature = "testing")]
pub use partition::PartitionControl;

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
    gossip: OutboxSender,
    remote: SocketAddr,
    listen_addr: Option<SocketAddr>,
    dialed_by: NodeId,
}

#[derive(Default)]
struct State {
    peers: HashMap<NodeId, Peer>,
    bans: HashMap<NodeId, Instant>,
    #[cfg(feature = "testing")]
    cut: partition::Cut,
    /// Addresses that turned out to be this node itself.
    self_addrs: HashSet<SocketAddr>,
}

impl State {
    /// True while a test partition cuts this node off from `peer` (never without the
    /// `testing` feature, so release builds check nothing).
    fn is_cut(&self, peer: &NodeId) -> bool {
        #[cfg(feature = "testing")]
        return self.cut.contains(peer);
        #[cfg(not(feature = "testing"))]
        {
            let _ = peer;
            false
        }
    }
}

struct Inner {
    endpoint: quinn::Endpoint,
    identity: Identity,
    config: NetConfig,
    hello: Hello,
    state: Mutex<State>,
    /// Where each service's events go; the chain's is set by `bind`, others by `subscribe`.
    subscribers: Mutex<HashMap<Service, mpsc::Sender<NetEvent>>>,
    /// Every task the transport started; aborted by `shutdown` or when the last handle goes.
    tasks: Mutex<JoinSet<()>>,
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

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the peer table inconsistent in a way that
        // matters more than stopping the node would; keep going with the data.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts `task` in the network's task set (reaping the ones that have finished).
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// The bound each new peer's outbox gets.
    fn outbox_bound(&self) -> OutboxBound {
        OutboxBound {
            bytes: self.config.gossip_outbox_bytes,
        }
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
            tasks: Mutex::new(JoinSet::new()),
        });
        inner.spawn(accept_connections(
            Arc::downgrade(&inner),
            inner.endpoint.clone(),
        ));
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
    #[cfg(feature = "testing")]
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
        if let Err(mismatch) = check_hello(&inner.hello, &theirs) {
            let reason = mismatch.to_string();
            reject(inner, &connection, send, addr, peer, reason.clone()).await;
            return Err(NetError::RefusedHere { addr, reason });
        }
        let handshaken = Handshaken {
            connection,
            send,
            recv,
            peer,
            dialed_by: self.id(),
            listen_addr: Some(addr),
        };
        register(inner, handshaken).await;
        Ok(peer)
    }

    /// Queues `message` on the gossip stream of every peer except `except`; returns how many.
    /// Never waits: a peer whose outbox is full is disconnected and not counted.
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
            .filter(|(id, _)| Some(**id) != except && !state.is_cut(id))
            .filter(|(id, peer)| {
                let frames = stamp::stamped(stamp::stamp_for(events, id, kind, len), &bytes);
                queue(**id, peer, frames).is_ok()
            })
            .count()
    }

    /// Queues `message` on `peer`'s gossip stream (in order with everything else sent to it).
    /// Never waits: when the peer's outbox is full the peer is disconnected and this fails.
    pub fn send_to(&self, peer: NodeId, message: &Message) -> Result<(), NetError> {
        let bytes: Arc<[u8]> = super::frame::encode(message)
            .map_err(|error| NetError::Encode(peer, error))?
            .into();
        let state = self.inner.lock();
        if state.is_cut(&peer) {
            return Err(NetError::NotConnected(peer));
        }
        let connected = state.peers.get(&peer).ok_or(NetError::NotConnected(peer))?;
        let events = &self.inner.config.events;
        let len = stamp::payload_len(&bytes);
        let stamp = stamp::stamp_for(events, &peer, message.frame_type(), len);
        queue(peer, connected, stamp::stamped(stamp, &bytes))
    }

    /// Sends one request on its own stream and collects the answer's frames.
    pub async fn request(&self, peer: NodeId, message: Message) -> Result<Vec<Message>, NetError> {
        let connection = {
            let state = self.inner.lock();
            if state.is_cut(&peer) {
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

    /// Closes every connection and the endpoint, and aborts the transport's tasks.
    pub fn shutdown(&self) {
        self.inner
            .endpoint
            .close(close_code::SHUTDOWN.into(), b"node shutting down");
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .abort_all();
    }
}

/// Pushes one item onto `peer`'s outbox; a full outbox closes the connection (once) and the
/// push fails.
fn queue(peer: NodeId, entry: &Peer, pieces: Vec<Arc<[u8]>>) -> Result<(), NetError> {
    match entry.gossip.push(pieces) {
        Push::Queued => Ok(()),
        Push::Full { queued, first } => {
            if first {
                connection::close_slow_peer(peer, entry, queued);
            }
            Err(NetError::OutboxFull(peer, queued))
        }
        Push::Closed => Err(NetError::NotConnected(peer)),
    }
}

/// The accept loop: a handshake task per incoming connection, until the endpoint closes.
async fn accept_connections(inner: std::sync::Weak<Inner>, endpoint: quinn::Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        let Some(inner) = inner.upgrade() else {
            break;
        };
        let handshaking = inner.clone();
        inner.spawn(async move {
            let remote = incoming.remote_address();
            if let Err(error) = accept(handshaking, incoming).await {
                debug!(%remote, %error, "inbound connection failed");
            }
        });
    }
}

/// Why this node will not talk to `peer` right now, if it will not.
fn refusal(inner: &Inner, peer: &NodeId) -> Option<String> {
    if inner.lock().is_cut(peer) {
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
    if inner.lock().is_cut(&peer) {
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
        refusal(&inner, &peer).or_else(|| {
            check_hello(&inner.hello, &theirs)
                .err()
                .map(|mismatch| mismatch.to_string())
        })
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
    let handshaken = Handshaken {
        connection,
        send,
        recv,
        peer,
        dialed_by: peer,
        listen_addr,
    };
    register(&inner, handshaken).await;
    Ok(())
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
