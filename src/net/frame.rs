//! The wire format between nodes: length-prefixed, typed frames with a per-type size limit.
//!
//! A frame is `type: u8 | length: u32 LE | payload`. The decoder checks the type and the
//! length against that type's limit before it allocates, and never panics on any input (see the
//! proptest below and `fuzz/fuzz_targets/frame.rs`). It knows the shape of messages, not their
//! meaning: block bytes are opaque here and decoded by the chain.
//!
//! Type byte ranges (keep new messages inside their range so old nodes can name them):
//! - `0x01..=0x0f` session (hello, reject, the event-log stamp that may precede any frame)
//! - `0x10..=0x2f` chain (blocks, headers, sync)
//! - `0x30..=0x4f` Raft messages, opaque here (`Message::Service`, decoded by the consensus
//!   service)
//! - `0x50..=0x6f` training rounds and content-addressed blobs, opaque here
//! - `0x00`, `0x70..=0xff` reserved

use std::fmt;

use crate::codec::{DecodeError, Reader, Writer};
use crate::events::VectorClock;

/// Bytes in a frame header: the type byte and the u32 payload length.
pub const FRAME_HEADER_LEN: usize = 5;
/// Largest encoded block a frame may carry: the chain's own bound, so a larger block is refused
/// before its bytes are read.
pub const MAX_BLOCK_BYTES: usize = crate::pow::MAX_BLOCK_BYTES;
/// Most block hashes in one locator.
pub const MAX_LOCATOR: usize = 64;
/// Most headers in one `Headers` answer.
pub const MAX_HEADERS: usize = 2000;
/// Most blocks asked for in one `GetBlocks`.
pub const MAX_GET_BLOCKS: usize = 500;
/// Longest network name.
pub const MAX_NETWORK_NAME: usize = 32;
/// Longest reject reason.
pub const MAX_REASON: usize = 512;

/// Most entries in a stamp's vector clock (one per node the sender has heard of).
pub const MAX_CLOCK_ENTRIES: usize = 256;
/// Longest node name in a stamp's vector clock.
pub const MAX_CLOCK_NAME: usize = 64;

/// A 32-byte block hash in the byte order sha256d produced it.
pub type HashBytes = [u8; 32];
/// An 80-byte block header.
pub type HeaderBytes = [u8; 80];

/// Largest Raft-range frame (an append batch or a snapshot of the round log; large payloads
/// travel as blobs).
pub const MAX_RAFT_FRAME: usize = 32 << 20;
/// Largest training-range frame (a gradient or a parameter blob of a large model).
pub const MAX_TRAINING_FRAME: usize = 64 << 20;

/// The subsystem a frame type belongs to, by its type byte's range. Frames of the Raft and
/// training ranges are opaque here: the transport hands them to that service's subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// `0x01..=0x2f`: the session (hello, reject) and the chain (blocks, headers, sync).
    Chain,
    /// `0x30..=0x4f`: Raft messages.
    Raft,
    /// `0x50..=0x6f`: training rounds and content-addressed blobs.
    Training,
}

impl Service {
    /// Every service, in range order.
    pub const ALL: [Service; 3] = [Service::Chain, Service::Raft, Service::Training];

    /// The service owning type byte `code`, if it lies in a known range.
    pub fn of(code: u8) -> Option<Service> {
        match code {
            0x01..=0x2f => Some(Service::Chain),
            0x30..=0x4f => Some(Service::Raft),
            0x50..=0x6f => Some(Service::Training),
            _ => None,
        }
    }
}

/// The kinds of frame this version speaks: each chain message by its type byte, and any type
/// byte of the Raft and training ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameType {
    /// `0x01`: the opening handshake message.
    Hello,
    /// `0x02`: the sender refuses the connection, with a reason.
    Reject,
    /// The sender's vector clock for its event log, sent just before the frame it stamps.
    Stamp,
    /// `0x10`: one encoded block.
    Block,
    /// `0x11`: a locator asking for the headers after the fork point.
    GetHeaders,
    /// `0x12`: up to `MAX_HEADERS` 80-byte headers answering `GetHeaders`.
    Headers,
    /// `0x13`: block hashes whose bodies the sender wants.
    GetBlocks,
    /// `0x14`: a requested block the answerer does not have.
    NotFound,
    /// A Raft-range frame (`0x30..=0x4f`).
    Raft(u8),
    /// A training-range frame (`0x50..=0x6f`).
    Training(u8),
}

impl FrameType {
    /// The frame type for a type byte, if this version knows it.
    pub fn from_code(code: u8) -> Option<FrameType> {
        Some(match code {
            0x01 => FrameType::Hello,
            0x02 => FrameType::Reject,
            0x03 => FrameType::Stamp,
            0x10 => FrameType::Block,
            0x11 => FrameType::GetHeaders,
            0x12 => FrameType::Headers,
            0x13 => FrameType::GetBlocks,
            0x14 => FrameType::NotFound,
            0x30..=0x4f => FrameType::Raft(code),
            0x50..=0x6f => FrameType::Training(code),
            _ => return None,
        })
    }

    /// The type byte.
    pub fn code(self) -> u8 {
        match self {
            FrameType::Hello => 0x01,
            FrameType::Reject => 0x02,
            FrameType::Stamp => 0x03,
            FrameType::Block => 0x10,
            FrameType::GetHeaders => 0x11,
            FrameType::Headers => 0x12,
            FrameType::GetBlocks => 0x13,
            FrameType::NotFound => 0x14,
            FrameType::Raft(code) | FrameType::Training(code) => code,
        }
    }

    /// The service whose subscriber receives frames of this type.
    pub fn service(self) -> Service {
        match self {
            FrameType::Raft(_) => Service::Raft,
            FrameType::Training(_) => Service::Training,
            _ => Service::Chain,
        }
    }

    /// The largest payload a frame of this type may have.
    pub fn limit(self) -> usize {
        match self {
            FrameType::Hello => 4 + 1 + MAX_NETWORK_NAME + 32 + 2,
            FrameType::Reject => 2 + MAX_REASON,
            FrameType::Stamp => 2 + MAX_CLOCK_ENTRIES * (1 + MAX_CLOCK_NAME + 8),
            FrameType::Block => MAX_BLOCK_BYTES,
            FrameType::GetHeaders => 4 + 2 + 32 * MAX_LOCATOR,
            FrameType::Headers => 2 + 80 * MAX_HEADERS,
            FrameType::GetBlocks => 2 + 32 * MAX_GET_BLOCKS,
            FrameType::NotFound => 32,
            FrameType::Raft(_) => MAX_RAFT_FRAME,
            FrameType::Training(_) => MAX_TRAINING_FRAME,
        }
    }

    /// The message name event logs use: `block`, `get_headers`, …, `raft_31`, `training_52`.
    pub fn event_name(self) -> String {
        match self {
            FrameType::Hello => "hello".into(),
            FrameType::Reject => "reject".into(),
            FrameType::Stamp => "stamp".into(),
            FrameType::Block => "block".into(),
            FrameType::GetHeaders => "get_headers".into(),
            FrameType::Headers => "headers".into(),
            FrameType::GetBlocks => "get_blocks".into(),
            FrameType::NotFound => "not_found".into(),
            FrameType::Raft(code) => format!("raft_{code:02x}"),
            FrameType::Training(code) => format!("training_{code:02x}"),
        }
    }
}

/// A frame of the Raft or training range: its type byte and opaque payload, which the
/// subscribed service decodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFrame {
    /// The type byte, in `0x30..=0x6f`.
    pub code: u8,
    /// The service's own encoding, at most `MAX_RAFT_FRAME` or `MAX_TRAINING_FRAME` bytes.
    pub payload: Vec<u8>,
}

impl ServiceFrame {
    /// The service this frame goes to (`None` when `code` is outside the service ranges).
    pub fn service(&self) -> Option<Service> {
        Service::of(self.code).filter(|s| *s != Service::Chain)
    }
}

/// What a node says first on a connection; both sides must agree on all but `listen_port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The sender's wire protocol version (`PROTOCOL_VERSION`).
    pub version: u32,
    /// The sender's network name, at most `MAX_NETWORK_NAME` bytes.
    pub network: String,
    /// Hash of the sender's genesis block.
    pub genesis: HashBytes,
    /// The UDP port the sender accepts connections on (0: it does not listen).
    pub listen_port: u16,
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// The handshake's first message on a connection.
    Hello(Hello),
    /// The sender refuses the connection; the reason is shown to the user on both sides.
    Reject {
        /// Why, for a person; cut to `MAX_REASON` bytes when encoded.
        reason: String,
    },
    /// The sender's vector clock after logging the send of the frame that follows on the same
    /// stream (only nodes that keep an event log send it).
    Stamp(VectorClock),
    /// An encoded block (`pow::Block::encode`), on the gossip stream or answering `GetBlocks`.
    Block(Vec<u8>),
    /// Asks for up to `max` headers of the sender's best chain after the locator's fork point.
    GetHeaders {
        /// Hashes of the asker's best chain, newest first and ever sparser back to the
        /// genesis; at most `MAX_LOCATOR`.
        locator: Vec<HashBytes>,
        /// Most headers wanted; the answerer sends no more than `MAX_HEADERS` whatever it says.
        max: u32,
    },
    /// Headers of the answerer's best chain after the locator's fork point, oldest first.
    Headers(Vec<HeaderBytes>),
    /// Asks for the blocks with these hashes (at most `MAX_GET_BLOCKS`); each is answered by a
    /// `Block` or a `NotFound`.
    GetBlocks(Vec<HashBytes>),
    /// The answerer does not have this block.
    NotFound(HashBytes),
    /// A Raft- or training-range frame, opaque to the transport.
    Service(ServiceFrame),
}

impl Message {
    /// The frame type this message travels as.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Message::Hello(_) => FrameType::Hello,
            Message::Reject { .. } => FrameType::Reject,
            Message::Stamp(_) => FrameType::Stamp,
            Message::Block(_) => FrameType::Block,
            Message::GetHeaders { .. } => FrameType::GetHeaders,
            Message::Headers(_) => FrameType::Headers,
            Message::GetBlocks(_) => FrameType::GetBlocks,
            Message::NotFound(_) => FrameType::NotFound,
            Message::Service(frame) => match Service::of(frame.code) {
                Some(Service::Raft) => FrameType::Raft(frame.code),
                // Encoding refuses codes outside the service ranges (see `encode`).
                _ => FrameType::Training(frame.code),
            },
        }
    }
}

/// Why bytes are not a frame. Every variant means the peer misbehaved (or speaks another
/// version); the connection is closed and the peer banned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The header's type byte is reserved or unknown to this version; holds the byte.
    #[error("unknown frame type {0:#04x}; the peer speaks another protocol version")]
    UnknownType(u8),
    /// The header announces a payload longer than its type's limit; refused before reading it.
    #[error("{kind:?} frame of {len} bytes exceeds its limit of {limit} bytes")]
    Oversized {
        /// The frame's type.
        kind: FrameType,
        /// The payload length the header announces, in bytes.
        len: usize,
        /// The type's limit (`FrameType::limit`), in bytes.
        limit: usize,
    },
    /// The payload does not decode as its type's fields (cut short, a count over its limit,
    /// bad UTF-8, trailing bytes).
    #[error("malformed {kind:?} frame: {source}")]
    Malformed {
        /// The frame's type.
        kind: FrameType,
        /// Which field failed and how.
        #[source]
        source: DecodeError,
    },
    /// A message to send breaks its type's limit; holds the offending size (bytes, or for a
    /// stamp the entry count or node-name length).
    #[error(
        "message too large to encode: {0} is over its limit (payload or name bytes, or clock entries)"
    )]
    TooLargeToEncode(usize),
    /// A `ServiceFrame` to send has a type byte outside `0x30..=0x6f`; holds the byte.
    #[error("frame type {0:#04x} is outside the Raft and training ranges (0x30..=0x6f)")]
    NotAServiceType(u8),
}

/// Reads the frame header: the type and the payload length, checked against the type's limit.
pub fn decode_header(header: [u8; FRAME_HEADER_LEN]) -> Result<(FrameType, usize), FrameError> {
    let [code, l0, l1, l2, l3] = header;
    let kind = FrameType::from_code(code).ok_or(FrameError::UnknownType(code))?;
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    if len > kind.limit() {
        return Err(FrameError::Oversized {
            kind,
            len,
            limit: kind.limit(),
        });
    }
    Ok((kind, len))
}

/// Decodes one frame from the front of `buf`: `Ok(None)` when more bytes are needed, else the
/// message and how many bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, FrameError> {
    let Some(header) = buf.first_chunk::<FRAME_HEADER_LEN>() else {
        return Ok(None);
    };
    let (kind, len) = decode_header(*header)?;
    let Some(payload) = buf[FRAME_HEADER_LEN..].get(..len) else {
        return Ok(None);
    };
    Ok(Some((
        decode_payload(kind, payload)?,
        FRAME_HEADER_LEN + len,
    )))
}

/// The header of a service frame, checked as `encode` checks it; its payload follows as is
/// (so a large gradient or blob is written without a copy into a frame buffer).
pub fn service_header(frame: &ServiceFrame) -> Result<[u8; FRAME_HEADER_LEN], FrameError> {
    let Some(service) = frame.service() else {
        return Err(FrameError::NotAServiceType(frame.code));
    };
    let kind = match service {
        Service::Raft => FrameType::Raft(frame.code),
        _ => FrameType::Training(frame.code),
    };
    let len = frame.payload.len();
    if len > kind.limit() {
        return Err(FrameError::TooLargeToEncode(len));
    }
    let mut header = [0u8; FRAME_HEADER_LEN];
    header[0] = frame.code;
    header[1..].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(header)
}

/// Encodes a message as one frame; fails only when it would break its type's limit.
pub fn encode(message: &Message) -> Result<Vec<u8>, FrameError> {
    let kind = message.frame_type();
    let mut out = Writer::new();
    if let Message::Service(frame) = message
        && frame.service().is_none()
    {
        return Err(FrameError::NotAServiceType(frame.code));
    }
    out.u8(kind.code()).u32(0);
    match message {
        Message::Hello(hello) => {
            let name = hello.network.as_bytes();
            if name.len() > MAX_NETWORK_NAME {
                return Err(FrameError::TooLargeToEncode(name.len()));
            }
            out.u32(hello.version)
                .u8(name.len() as u8)
                .raw(name)
                .raw(&hello.genesis)
                .u16(hello.listen_port);
        }
        Message::Reject { reason } => {
            // Cut an over-long reason at a character boundary rather than refuse to send it.
            let mut end = reason.len().min(MAX_REASON);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            out.u16(end as u16).raw(&reason.as_bytes()[..end]);
        }
        Message::Stamp(clock) => {
            let count = clock.entries().count();
            if count > MAX_CLOCK_ENTRIES {
                return Err(FrameError::TooLargeToEncode(count));
            }
            out.u16(count as u16);
            for (node, value) in clock.entries() {
                if node.is_empty() || node.len() > MAX_CLOCK_NAME {
                    return Err(FrameError::TooLargeToEncode(node.len()));
                }
                out.u8(node.len() as u8).raw(node.as_bytes()).u64(value);
            }
        }
        Message::Block(bytes) => {
            out.raw(bytes);
        }
        Message::GetHeaders { locator, max } => {
            out.u32(*max);
            put_list(&mut out, locator, MAX_LOCATOR)?;
        }
        Message::Headers(headers) => put_list(&mut out, headers, MAX_HEADERS)?,
        Message::GetBlocks(hashes) => put_list(&mut out, hashes, MAX_GET_BLOCKS)?,
        Message::NotFound(hash) => {
            out.raw(hash);
        }
        Message::Service(frame) => {
            out.raw(&frame.payload);
        }
    }
    let mut out = out.into_bytes();
    let len = out.len() - FRAME_HEADER_LEN;
    if len > kind.limit() {
        return Err(FrameError::TooLargeToEncode(len));
    }
    out[1..FRAME_HEADER_LEN].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(out)
}

/// Appends a u16 count and the fixed-size items.
fn put_list<const N: usize>(
    out: &mut Writer,
    items: &[[u8; N]],
    max: usize,
) -> Result<(), FrameError> {
    if items.len() > max {
        return Err(FrameError::TooLargeToEncode(items.len() * N));
    }
    out.u16(items.len() as u16);
    for item in items {
        out.raw(item);
    }
    Ok(())
}

/// Decodes a payload whose type and length the header already checked.
pub fn decode_payload(kind: FrameType, payload: &[u8]) -> Result<Message, FrameError> {
    decode_fields(kind, payload).map_err(|source| FrameError::Malformed { kind, source })
}

fn decode_fields(kind: FrameType, payload: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader::new(payload);
    let message = match kind {
        FrameType::Hello => {
            let version = r.u32("version")?;
            let offset = r.offset();
            let name_len = r.u8("network name length")?;
            let name_len = r.check_count(
                "network name",
                u64::from(name_len),
                MAX_NETWORK_NAME,
                1,
                offset,
            )?;
            let network = std::str::from_utf8(r.take(name_len, "network name")?)
                .map_err(|_| DecodeError::Invalid {
                    what: "network name",
                    reason: "not UTF-8",
                    offset: offset + 1,
                })?
                .to_string();
            let genesis = r.array("genesis hash")?;
            let listen_port = r.u16("listen port")?;
            Message::Hello(Hello {
                version,
                network,
                genesis,
                listen_port,
            })
        }
        FrameType::Reject => {
            let offset = r.offset();
            let len = r.u16("reason length")?;
            let len = r.check_count("reason", u64::from(len), MAX_REASON, 1, offset)?;
            let reason = String::from_utf8_lossy(r.take(len, "reason")?).into_owned();
            Message::Reject { reason }
        }
        FrameType::Stamp => Message::Stamp(stamp_clock(&mut r)?),
        FrameType::Block => {
            if payload.is_empty() {
                return Err(r.invalid("block", "empty"));
            }
            Message::Block(r.take(payload.len(), "block")?.to_vec())
        }
        FrameType::GetHeaders => {
            let max = r.u32("max headers")?;
            let locator = list(&mut r, "locator", MAX_LOCATOR)?;
            Message::GetHeaders { locator, max }
        }
        FrameType::Headers => Message::Headers(list(&mut r, "headers", MAX_HEADERS)?),
        FrameType::GetBlocks => Message::GetBlocks(list(&mut r, "block hashes", MAX_GET_BLOCKS)?),
        FrameType::NotFound => Message::NotFound(r.array("block hash")?),
        FrameType::Raft(code) | FrameType::Training(code) => Message::Service(ServiceFrame {
            code,
            payload: r.take(payload.len(), "service payload")?.to_vec(),
        }),
    };
    r.finish()?;
    Ok(message)
}

/// A stamp's clock: a u16 count (≤ `MAX_CLOCK_ENTRIES`) of (u8 name length, name, u64).
/// Names are non-empty UTF-8 without whitespace, each at most once.
fn stamp_clock(r: &mut Reader<'_>) -> Result<VectorClock, DecodeError> {
    let offset = r.offset();
    let count = r.u16("clock entries")?;
    let count = r.check_count(
        "clock entries",
        u64::from(count),
        MAX_CLOCK_ENTRIES,
        1 + 1 + 8,
        offset,
    )?;
    let mut clock = VectorClock::new();
    for _ in 0..count {
        let offset = r.offset();
        let len = r.u8("node name length")?;
        let len = r.check_count("node name", u64::from(len), MAX_CLOCK_NAME, 1, offset)?;
        let name = std::str::from_utf8(r.take(len, "node name")?)
            .ok()
            .filter(|name| !name.is_empty() && !name.chars().any(char::is_whitespace))
            .ok_or(DecodeError::Invalid {
                what: "node name",
                reason: "empty, not UTF-8 or with whitespace",
                offset: offset + 1,
            })?;
        if clock.get(name) != 0 {
            return Err(DecodeError::Invalid {
                what: "clock entries",
                reason: "a node named twice",
                offset,
            });
        }
        let value = r.u64("clock value")?;
        clock.set(name, value);
    }
    Ok(clock)
}

/// Takes a u16 count (≤ `max`, backed by the payload) of fixed-size items.
fn list<const N: usize>(
    r: &mut Reader<'_>,
    what: &'static str,
    max: usize,
) -> Result<Vec<[u8; N]>, DecodeError> {
    let offset = r.offset();
    let count = r.u16(what)?;
    let count = r.check_count(what, u64::from(count), max, N, offset)?;
    (0..count).map(|_| r.array(what)).collect()
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (any::<u32>(), "[a-z]{0,32}", any::<[u8; 32]>(), any::<u16>()).prop_map(
                |(version, network, genesis, listen_port)| Message::Hello(Hello {
                    version,
                    network,
                    genesis,
                    listen_port
                })
            ),
            ".{0,100}".prop_map(|reason| Message::Reject { reason }),
            proptest::collection::btree_map("[a-z0-9]{1,12}", 1..u64::MAX, 0..6).prop_map(
                |entries| {
                    let mut clock = VectorClock::new();
                    for (node, value) in entries {
                        clock.set(&node, value);
                    }
                    Message::Stamp(clock)
                }
            ),
            proptest::collection::vec(any::<u8>(), 1..300).prop_map(Message::Block),
            (
                proptest::collection::vec(any::<[u8; 32]>(), 0..10),
                any::<u32>()
            )
                .prop_map(|(locator, max)| Message::GetHeaders { locator, max }),
            proptest::collection::vec(any::<[u8; 32]>(), 0..5).prop_map(|hashes| Message::Headers(
                hashes
                    .iter()
                    .map(|h| {
                        let mut header = [0u8; 80];
                        header[..32].copy_from_slice(h);
                        header
                    })
                    .collect()
            )),
            proptest::collection::vec(any::<[u8; 32]>(), 0..10).prop_map(Message::GetBlocks),
            any::<[u8; 32]>().prop_map(Message::NotFound),
            (
                0x30u8..=0x6f,
                proptest::collection::vec(any::<u8>(), 0..300)
            )
                .prop_map(|(code, payload)| Message::Service(ServiceFrame { code, payload })),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn decoder_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decoder_never_panics_on_valid_headers_with_random_payloads(
            code in prop_oneof![Just(1u8), Just(2), Just(0x10), Just(0x11), Just(0x12), Just(0x13), Just(0x14)],
            payload in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut bytes = vec![code];
            bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&payload);
            let _ = decode(&bytes);
        }

        #[test]
        fn every_message_round_trips(message in arb_message()) {
            let bytes = encode(&message).expect("encodable");
            let (decoded, used) = decode(&bytes).expect("decodes").expect("complete");
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(decoded, message);
            // Every strict prefix is incomplete, never an error or a panic.
            for cut in 0..bytes.len() {
                prop_assert_eq!(decode(&bytes[..cut]), Ok(None));
            }
        }
    }

    #[test]
    fn oversized_lengths_are_refused_before_allocation() {
        let mut bytes = vec![FrameType::NotFound.code()];
        bytes.extend_from_slice(&33u32.to_le_bytes());
        assert!(matches!(
            decode(&bytes),
            Err(FrameError::Oversized { len: 33, .. })
        ));
        let mut huge = vec![FrameType::Block.code()];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&huge), Err(FrameError::Oversized { .. })));
    }

    #[test]
    fn unknown_and_reserved_types_are_errors() {
        for code in [0x00u8, 0x04, 0x15, 0x70, 0xff] {
            let bytes = [code, 0, 0, 0, 0];
            assert_eq!(decode(&bytes), Err(FrameError::UnknownType(code)));
        }
    }

    #[test]
    fn stamps_refuse_bad_node_names_and_repeats() {
        let stamp = |entries: &[(&[u8], u64)]| {
            let mut payload = Writer::new();
            payload.u16(entries.len() as u16);
            for (name, value) in entries {
                payload.u8(name.len() as u8).raw(name).u64(*value);
            }
            let payload = payload.into_bytes();
            let mut frame = vec![0x03];
            frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            frame.extend_from_slice(&payload);
            decode(&frame).map(|m| m.map(|(message, _)| message))
        };
        let Ok(Some(Message::Stamp(clock))) = stamp(&[(b"n0", 3), (b"n1", 1)]) else {
            panic!("a valid stamp");
        };
        assert_eq!((clock.get("n0"), clock.get("n1")), (3, 1));
        for bad in [
            &[(&b"a b"[..], 1)][..],
            &[(&b""[..], 1)][..],
            &[(&b"\xff"[..], 1)][..],
            &[(&b"n0"[..], 1), (&b"n0"[..], 2)][..],
        ] {
            assert!(
                matches!(stamp(bad), Err(FrameError::Malformed { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn service_ranges_decode_as_opaque_frames_of_their_service() {
        for (code, service) in [
            (0x30u8, Service::Raft),
            (0x4f, Service::Raft),
            (0x50, Service::Training),
            (0x6f, Service::Training),
        ] {
            let frame = ServiceFrame {
                code,
                payload: vec![code, 1, 2],
            };
            let bytes = encode(&Message::Service(frame.clone())).expect("encode");
            assert_eq!(bytes[0], code);
            let (message, _) = decode(&bytes).expect("decodes").expect("complete");
            assert_eq!(message.frame_type().service(), service);
            assert_eq!(message, Message::Service(frame));
        }
        let chain_code = Message::Service(ServiceFrame {
            code: 0x10,
            payload: vec![],
        });
        assert_eq!(encode(&chain_code), Err(FrameError::NotAServiceType(0x10)));
        let mut oversized = vec![0x30];
        oversized.extend_from_slice(&((MAX_RAFT_FRAME + 1) as u32).to_le_bytes());
        assert!(matches!(
            decode(&oversized),
            Err(FrameError::Oversized { .. })
        ));
    }

    #[test]
    fn malformed_payloads_name_the_offset() {
        // A Headers frame claiming 3 headers but carrying one.
        let mut bytes = vec![FrameType::Headers.code()];
        let payload: Vec<u8> = [3u8, 0].into_iter().chain([0u8; 80]).collect();
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&payload);
        let error = decode(&bytes).expect_err("malformed");
        assert!(
            matches!(
                error,
                FrameError::Malformed {
                    source: DecodeError::Truncated { offset: 2, .. },
                    ..
                }
            ),
            "{error}"
        );
        // Trailing bytes after a NotFound hash... cannot happen (fixed size), but after a Hello can.
        let mut hello = encode(&Message::Hello(Hello {
            version: 1,
            network: "regtest".into(),
            genesis: [7; 32],
            listen_port: 9,
        }))
        .expect("encode");
        hello.push(0);
        hello[1] += 1;
        assert!(matches!(decode(&hello), Err(FrameError::Malformed { .. })));
    }
}
