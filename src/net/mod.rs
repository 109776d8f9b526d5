//! Peer-to-peer networking over QUIC (quinn + rustls): node identity and certificates, the
//! frame codec, the handshake, connection management with bans, gossip and request/response
//! streams with a bounded outbox per peer, and (feature `testing`) a partition hook for tests.
//!
//! Moves bytes and names peers; must not judge blocks (the node asks the chain and calls
//! `Network::ban` when a peer sent something invalid).

pub mod frame;
pub mod handshake;
pub mod identity;
mod stamp;
pub mod tls;
pub mod transport;
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use frame::{FrameError, FrameType, Hello, Message, Service, ServiceFrame};
pub use identity::{Identity, NodeId};
#[cfg(feature = "testing")]
pub use transport::PartitionControl;
pub use transport::{DEFAULT_OUTBOX_BYTES, NetEvent, Network, PeerSummary, Responder};

/// The version of the peer protocol this build speaks (in every `Hello`).
pub const PROTOCOL_VERSION: u32 = 1;

/// QUIC application close codes, so the other side can tell why a connection ended.
pub mod close_code {
    /// The node shuts down.
    pub const SHUTDOWN: u32 = 0;
    /// The handshake was refused (network, genesis or version mismatch, banned, self).
    pub const REJECTED: u32 = 1;
    /// The peer misbehaved and is banned.
    pub const BANNED: u32 = 2;
    /// A second connection to the same peer; the other one is kept.
    pub const DUPLICATE: u32 = 3;
    /// A test partition cut the link.
    pub const PARTITIONED: u32 = 4;
    /// The peer stopped reading its gossip stream and its outbox here filled up; it may
    /// connect again.
    pub const OUTBOX_FULL: u32 = 5;
}

/// How the network layer is set up.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// UDP address to accept connections on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Network name; peers on another network are refused.
    pub network: String,
    /// Genesis block hash; peers with another genesis are refused.
    pub genesis: [u8; 32],
    /// When not empty, only these fingerprints may connect (in either direction).
    pub pins: Vec<NodeId>,
    /// How long a misbehaving peer stays banned.
    pub ban: Duration,
    /// A connection with no traffic for this long is dropped (keep-alives run at a third).
    pub idle_timeout: Duration,
    /// Limit on a handshake or one request/response exchange.
    pub request_timeout: Duration,
    /// The one key-exchange group this node offers and accepts (default X25519MLKEM768).
    pub key_exchange: tls::KeyExchange,
    /// The node's event log: every frame sent and received is logged with a vector clock, and
    /// frames carry a stamp (disabled: nothing is logged or stamped).
    pub events: crate::events::EventLog,
    /// Most bytes of gossip queued for one peer and not yet written to its stream; a peer past
    /// it is disconnected (default `DEFAULT_OUTBOX_BYTES`).
    pub gossip_outbox_bytes: usize,
}

impl NetConfig {
    /// A config with the given listen address, network and genesis, and default timings.
    pub fn new(listen: SocketAddr, network: impl Into<String>, genesis: [u8; 32]) -> NetConfig {
        NetConfig {
            listen,
            network: network.into(),
            genesis,
            pins: Vec::new(),
            ban: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            key_exchange: tls::KeyExchange::default(),
            events: crate::events::EventLog::disabled(),
            gossip_outbox_bytes: DEFAULT_OUTBOX_BYTES,
        }
    }
}

/// Why QUIC could not set up a connection (the source of `NetError::Connect`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectFailure {
    /// The endpoint refused to start the attempt (bad address, endpoint closed, …).
    #[error(transparent)]
    Start(#[from] quinn::ConnectError),
    /// The handshake or the connection failed.
    #[error(transparent)]
    Connection(#[from] quinn::ConnectionError),
}

/// Why a stream on an established connection failed (the source of `NetError::Stream`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamFailure {
    /// The connection under the stream failed or closed.
    #[error(transparent)]
    Connection(#[from] quinn::ConnectionError),
    /// Reading from the stream failed (reset by the peer, connection lost).
    #[error(transparent)]
    Read(#[from] quinn::ReadError),
    /// Writing to the stream failed (stopped by the peer, connection lost).
    #[error(transparent)]
    Write(#[from] quinn::WriteError),
    /// The stream ended in the middle of a frame.
    #[error("the stream ended inside a frame")]
    Truncated,
}

/// Errors of the network layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// Reading or writing the identity key/certificate file (or creating its directory) failed.
    #[error("cannot access {0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    /// A key pair or certificate could not be generated, parsed or self-signed (a stored key
    /// that is not valid PEM, a peer certificate that does not parse).
    #[error("certificate error: {0}")]
    Certificate(String),
    /// The rustls/quinn client or server configuration could not be built, or a key-exchange
    /// name is unknown.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The UDP socket for the listen address could not be bound (port taken, no permission).
    #[error("cannot listen on {0}: {1}; is another node using this port?")]
    Bind(SocketAddr, #[source] std::io::Error),
    /// QUIC could not set up a connection with this address (either direction).
    #[error("cannot connect to {0}: {1}")]
    Connect(SocketAddr, #[source] ConnectFailure),
    /// The QUIC handshake with this address did not finish within the request timeout.
    #[error("cannot connect to {0}: no answer within {1:?}; is a node listening there?")]
    ConnectTimeout(SocketAddr, Duration),
    /// The dialled peer answered the hello with a reject, or closed without a hello.
    #[error("peer {addr} refused the connection: {reason}")]
    Refused {
        /// The address dialled.
        addr: SocketAddr,
        /// The peer's reason, as it sent it.
        reason: String,
    },
    /// This node refused the connection: the peer is itself, banned, not pinned, a duplicate,
    /// or its hello disagrees on version, network or genesis.
    #[error("connection to {addr} refused here: {reason}")]
    RefusedHere {
        /// The peer's address.
        addr: SocketAddr,
        /// Why this node refused it.
        reason: String,
    },
    /// The peer sent bytes that are not a valid frame; it is banned.
    #[error("peer {0:?} sent a bad frame: {1}")]
    Frame(NodeId, #[source] FrameError),
    /// A message for this peer could not be encoded (it breaks its frame type's limit).
    #[error("cannot send to peer {0:?}: {1}")]
    Encode(NodeId, #[source] FrameError),
    /// A stream to this peer could not be opened, read or written.
    #[error("stream to peer {0:?} failed: {1}")]
    Stream(NodeId, #[source] StreamFailure),
    /// An answer to a request had more frames than any request may get (`MAX_GET_BLOCKS` + 1).
    #[error("peer {0:?} answered with more than {1} frames")]
    TooManyFrames(NodeId, usize),
    /// An inbound peer's first frame was not a `Hello`.
    #[error("peer {0:?} did not open with a hello frame")]
    NoHello(NodeId),
    /// No connection to this peer is open (never connected, dropped, or cut by a test
    /// partition).
    #[error("peer {0:?} is not connected")]
    NotConnected(NodeId),
    /// The peer did not finish a handshake or a request/response exchange within the request
    /// timeout.
    #[error("peer {0:?} did not answer within {1:?}")]
    Timeout(NodeId, Duration),
    /// The peer's gossip outbox is full (it stopped reading, with this many bytes waiting); it
    /// has been disconnected and may connect again.
    #[error("peer {0:?} is not reading its gossip ({1} bytes waiting); disconnected it")]
    OutboxFull(NodeId, usize),
    /// The peer answered a request with a frame type that request does not allow.
    #[error("peer {0:?} answered with an unexpected {1} frame")]
    Unexpected(NodeId, FrameType),
}
