//! Raft messages and their compact binary encoding (little-endian, versioned). The decoder
//! never panics and bounds every size before allocating; it must not know about sockets.

use super::types::{Entry, EntryKind, NodeId, Snapshot, SnapshotMeta};

/// Wire format version; a different first byte is refused.
pub const WIRE_VERSION: u8 = 1;
/// Most entries one append may carry.
pub const MAX_ENTRIES: usize = 65_536;
/// Largest single command.
pub const MAX_ENTRY_BYTES: usize = 16 << 20;
/// Largest snapshot carried in one message.
pub const MAX_SNAPSHOT_BYTES: usize = 256 << 20;
/// Most voters a snapshot may list.
pub const MAX_VOTERS: usize = 1024;

/// One Raft message between two nodes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    /// Sender.
    pub from: NodeId,
    /// Destination.
    pub to: NodeId,
    /// The sender's term (for a pre-vote: the term it would campaign in).
    pub term: u64,
    /// What it says.
    pub body: MessageBody,
}

/// The kinds of Raft message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageBody {
    /// "Would you vote for me in `term`?" Changes no state at the receiver.
    PreVote {
        /// Candidate's last log index.
        last_index: u64,
        /// Candidate's last log term.
        last_term: u64,
    },
    /// Answer to a pre-vote.
    PreVoteResponse {
        /// True when refused.
        reject: bool,
    },
    /// A real vote request.
    Vote {
        /// Candidate's last log index.
        last_index: u64,
        /// Candidate's last log term.
        last_term: u64,
        /// Set by a leadership transfer: the receiver ignores its leader lease.
        transfer: bool,
    },
    /// Answer to a vote request.
    VoteResponse {
        /// True when refused.
        reject: bool,
    },
    /// Log entries (none for a heartbeat) after `(prev_index, prev_term)`.
    Append {
        /// Index just before `entries`.
        prev_index: u64,
        /// Its term; the follower must have it (consistency check).
        prev_term: u64,
        /// New entries, consecutive from `prev_index + 1`.
        entries: Vec<Entry>,
        /// Leader's commit index.
        commit: u64,
        /// Heartbeat round, echoed back; confirms leadership for ReadIndex.
        read_round: u64,
    },
    /// Answer to an append or a snapshot.
    AppendResponse {
        /// True when the consistency check failed.
        reject: bool,
        /// On success the follower's matching index; on reject its last index (a hint).
        index: u64,
        /// The `read_round` being answered.
        read_round: u64,
    },
    /// The leader's snapshot, for a follower whose next entry was compacted away.
    InstallSnapshot {
        /// The snapshot.
        snapshot: Snapshot,
    },
    /// Leadership transfer: "start an election now, skipping pre-vote".
    TimeoutNow,
    /// A follower forwards a read request to the leader.
    ReadIndex {
        /// The caller's request id.
        request: u64,
    },
    /// The leader's answer: the read may be served once `index` is applied.
    ReadIndexResponse {
        /// The caller's request id.
        request: u64,
        /// The commit index confirmed by a quorum.
        index: u64,
    },
}

/// Why a byte string is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The input ended early.
    #[error("raft message truncated at byte {offset}: needed {needed} more bytes")]
    Truncated {
        /// Where it ended.
        offset: usize,
        /// How much was missing.
        needed: usize,
    },
    /// Wrong version byte.
    #[error(
        "raft wire version {found} is not supported (this node speaks {WIRE_VERSION}); upgrade the older node"
    )]
    Version {
        /// What the peer sent.
        found: u8,
    },
    /// An unknown tag.
    #[error("unknown raft {what} tag {tag} at byte {offset}")]
    Tag {
        /// Which tag.
        what: &'static str,
        /// The value.
        tag: u8,
        /// Where.
        offset: usize,
    },
    /// A length beyond its bound.
    #[error("raft {what} length {len} at byte {offset} exceeds the limit {limit}")]
    TooLong {
        /// Which field.
        what: &'static str,
        /// Declared length.
        len: u64,
        /// The bound.
        limit: usize,
        /// Where.
        offset: usize,
    },
    /// A structurally valid message with inconsistent fields.
    #[error("raft message invalid at byte {offset}: {reason}")]
    Invalid {
        /// Where.
        offset: usize,
        /// What.
        reason: &'static str,
    },
    /// Bytes after the message.
    #[error("{0} trailing bytes after a raft message")]
    Trailing(usize),
}

impl Message {
    /// Encodes the message (version byte first).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(WIRE_VERSION);
        put_u64(&mut out, self.from);
        put_u64(&mut out, self.to);
        put_u64(&mut out, self.term);
        match &self.body {
            MessageBody::PreVote {
                last_index,
                last_term,
            } => {
                out.push(0);
                put_u64(&mut out, *last_index);
                put_u64(&mut out, *last_term);
            }
            MessageBody::PreVoteResponse { reject } => {
                out.push(1);
                out.push(u8::from(*reject));
            }
            MessageBody::Vote {
                last_index,
                last_term,
                transfer,
            } => {
                out.push(2);
                put_u64(&mut out, *last_index);
                put_u64(&mut out, *last_term);
                out.push(u8::from(*transfer));
            }
            MessageBody::VoteResponse { reject } => {
                out.push(3);
                out.push(u8::from(*reject));
            }
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
                read_round,
            } => {
                out.push(4);
                put_u64(&mut out, *prev_index);
                put_u64(&mut out, *prev_term);
                put_u64(&mut out, *commit);
                put_u64(&mut out, *read_round);
                put_u64(&mut out, entries.len() as u64);
                for entry in entries {
                    put_u64(&mut out, entry.term);
                    out.push(entry.kind.code());
                    put_bytes(&mut out, &entry.data);
                }
            }
            MessageBody::AppendResponse {
                reject,
                index,
                read_round,
            } => {
                out.push(5);
                out.push(u8::from(*reject));
                put_u64(&mut out, *index);
                put_u64(&mut out, *read_round);
            }
            MessageBody::InstallSnapshot { snapshot } => {
                out.push(6);
                put_u64(&mut out, snapshot.meta.index);
                put_u64(&mut out, snapshot.meta.term);
                put_u64(&mut out, snapshot.meta.voters.len() as u64);
                for voter in &snapshot.meta.voters {
                    put_u64(&mut out, *voter);
                }
                put_bytes(&mut out, &snapshot.data);
            }
            MessageBody::TimeoutNow => out.push(7),
            MessageBody::ReadIndex { request } => {
                out.push(8);
                put_u64(&mut out, *request);
            }
            MessageBody::ReadIndexResponse { request, index } => {
                out.push(9);
                put_u64(&mut out, *request);
                put_u64(&mut out, *index);
            }
        }
        out
    }

    /// Decodes one message occupying all of `bytes`. Never panics; allocates only what the
    /// input can back.
    pub fn decode(bytes: &[u8]) -> Result<Message, MessageError> {
        let mut r = Reader { bytes, offset: 0 };
        let version = r.u8()?;
        if version != WIRE_VERSION {
            return Err(MessageError::Version { found: version });
        }
        let from = r.u64()?;
        let to = r.u64()?;
        let term = r.u64()?;
        let tag_offset = r.offset;
        let body = match r.u8()? {
            0 => MessageBody::PreVote {
                last_index: r.u64()?,
                last_term: r.u64()?,
            },
            1 => MessageBody::PreVoteResponse { reject: r.bool()? },
            2 => MessageBody::Vote {
                last_index: r.u64()?,
                last_term: r.u64()?,
                transfer: r.bool()?,
            },
            3 => MessageBody::VoteResponse { reject: r.bool()? },
            4 => {
                let prev_index = r.u64()?;
                let prev_term = r.u64()?;
                let commit = r.u64()?;
                let read_round = r.u64()?;
                // Each entry takes at least 17 bytes, so the count is bounded by the input too.
                let count = r.len("entry count", MAX_ENTRIES, 17)?;
                let mut entries = Vec::with_capacity(count);
                for i in 0..count as u64 {
                    let entry_term = r.u64()?;
                    let kind_offset = r.offset;
                    let code = r.u8()?;
                    let kind = EntryKind::from_code(code).ok_or(MessageError::Tag {
                        what: "entry kind",
                        tag: code,
                        offset: kind_offset,
                    })?;
                    let data = r.bytes("entry data", MAX_ENTRY_BYTES)?;
                    let index = prev_index.checked_add(i + 1).ok_or(MessageError::Invalid {
                        offset: kind_offset,
                        reason: "entry index overflows",
                    })?;
                    entries.push(Entry {
                        index,
                        term: entry_term,
                        kind,
                        data,
                    });
                }
                MessageBody::Append {
                    prev_index,
                    prev_term,
                    entries,
                    commit,
                    read_round,
                }
            }
            5 => MessageBody::AppendResponse {
                reject: r.bool()?,
                index: r.u64()?,
                read_round: r.u64()?,
            },
            6 => {
                let index = r.u64()?;
                let snap_term = r.u64()?;
                let count = r.len("voter count", MAX_VOTERS, 8)?;
                let mut voters = Vec::with_capacity(count);
                for _ in 0..count {
                    voters.push(r.u64()?);
                }
                let data = r.bytes("snapshot data", MAX_SNAPSHOT_BYTES)?;
                MessageBody::InstallSnapshot {
                    snapshot: Snapshot {
                        meta: SnapshotMeta {
                            index,
                            term: snap_term,
                            voters,
                        },
                        data,
                    },
                }
            }
            7 => MessageBody::TimeoutNow,
            8 => MessageBody::ReadIndex { request: r.u64()? },
            9 => MessageBody::ReadIndexResponse {
                request: r.u64()?,
                index: r.u64()?,
            },
            tag => {
                return Err(MessageError::Tag {
                    what: "message",
                    tag,
                    offset: tag_offset,
                });
            }
        };
        if r.offset != bytes.len() {
            return Err(MessageError::Trailing(bytes.len() - r.offset));
        }
        Ok(Message {
            from,
            to,
            term,
            body,
        })
    }
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, data: &[u8]) {
    put_u64(out, data.len() as u64);
    out.extend_from_slice(data);
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], MessageError> {
        let rest = self.bytes.get(self.offset..).unwrap_or_default();
        let slice = rest.get(..n).ok_or(MessageError::Truncated {
            offset: self.offset,
            needed: n.saturating_sub(rest.len()),
        })?;
        self.offset += n;
        Ok(slice)
    }
    fn u8(&mut self) -> Result<u8, MessageError> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }
    fn bool(&mut self) -> Result<bool, MessageError> {
        let offset = self.offset;
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(MessageError::Tag {
                what: "bool",
                tag,
                offset,
            }),
        }
    }
    fn u64(&mut self) -> Result<u64, MessageError> {
        let mut word = [0u8; 8];
        word.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(word))
    }
    /// A count bounded by `limit` and by what the remaining input can hold at `min_item` bytes
    /// per item.
    fn len(
        &mut self,
        what: &'static str,
        limit: usize,
        min_item: usize,
    ) -> Result<usize, MessageError> {
        let offset = self.offset;
        let len = self.u64()?;
        let remaining = self.bytes.len().saturating_sub(self.offset);
        let backed = remaining / min_item.max(1);
        if len > limit as u64 {
            return Err(MessageError::TooLong {
                what,
                len,
                limit,
                offset,
            });
        }
        if len > backed as u64 {
            return Err(MessageError::Truncated {
                offset,
                needed: (len as usize)
                    .saturating_mul(min_item)
                    .saturating_sub(remaining),
            });
        }
        Ok(len as usize)
    }
    fn bytes(&mut self, what: &'static str, limit: usize) -> Result<Vec<u8>, MessageError> {
        let len = self.len(what, limit, 1)?;
        Ok(self.take(len)?.to_vec())
    }
}
