//! Raft messages and their compact binary encoding (little-endian, versioned). The decoder
//! never panics and bounds every size before allocating; it must not know about sockets.

use crate::codec::{DecodeError, Reader, Writer};

use super::types::{Entry, EntryKind, RaftId, Snapshot, SnapshotMeta};

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
    pub from: RaftId,
    /// Destination.
    pub to: RaftId,
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
    /// Wrong version byte.
    #[error(
        "raft wire version {found} is not supported (this node speaks {WIRE_VERSION}); upgrade the older node"
    )]
    Version {
        /// What the peer sent.
        found: u8,
    },
    /// Cut short, an unknown tag, a length beyond its bound, inconsistent fields or trailing
    /// bytes.
    #[error("malformed raft message: {0}")]
    Codec(#[from] DecodeError),
}

impl Message {
    /// Encodes the message (version byte first).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Writer::with_capacity(64);
        out.u8(WIRE_VERSION);
        out.u64(self.from);
        out.u64(self.to);
        out.u64(self.term);
        match &self.body {
            MessageBody::PreVote {
                last_index,
                last_term,
            } => {
                out.u8(0);
                out.u64(*last_index);
                out.u64(*last_term);
            }
            MessageBody::PreVoteResponse { reject } => {
                out.u8(1);
                out.u8(u8::from(*reject));
            }
            MessageBody::Vote {
                last_index,
                last_term,
                transfer,
            } => {
                out.u8(2);
                out.u64(*last_index);
                out.u64(*last_term);
                out.u8(u8::from(*transfer));
            }
            MessageBody::VoteResponse { reject } => {
                out.u8(3);
                out.u8(u8::from(*reject));
            }
            MessageBody::Append {
                prev_index,
                prev_term,
                entries,
                commit,
                read_round,
            } => {
                out.u8(4);
                out.u64(*prev_index);
                out.u64(*prev_term);
                out.u64(*commit);
                out.u64(*read_round);
                out.u64(entries.len() as u64);
                for entry in entries {
                    out.u64(entry.term);
                    out.u8(entry.kind.code());
                    put_bytes(&mut out, &entry.data);
                }
            }
            MessageBody::AppendResponse {
                reject,
                index,
                read_round,
            } => {
                out.u8(5);
                out.u8(u8::from(*reject));
                out.u64(*index);
                out.u64(*read_round);
            }
            MessageBody::InstallSnapshot { snapshot } => {
                out.u8(6);
                out.u64(snapshot.meta.index);
                out.u64(snapshot.meta.term);
                out.u64(snapshot.meta.voters.len() as u64);
                for voter in &snapshot.meta.voters {
                    out.u64(*voter);
                }
                put_bytes(&mut out, &snapshot.data);
            }
            MessageBody::TimeoutNow => {
                out.u8(7);
            }
            MessageBody::ReadIndex { request } => {
                out.u8(8);
                out.u64(*request);
            }
            MessageBody::ReadIndexResponse { request, index } => {
                out.u8(9);
                out.u64(*request);
                out.u64(*index);
            }
        }
        out.into_bytes()
    }

    /// Decodes one message occupying all of `bytes`. Never panics; allocates only what the
    /// input can back.
    pub fn decode(bytes: &[u8]) -> Result<Message, MessageError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("version")?;
        if version != WIRE_VERSION {
            return Err(MessageError::Version { found: version });
        }
        let from = r.u64("from")?;
        let to = r.u64("to")?;
        let term = r.u64("term")?;
        let tag_offset = r.offset();
        let body = match r.u8("message tag")? {
            0 => MessageBody::PreVote {
                last_index: r.u64("last index")?,
                last_term: r.u64("last term")?,
            },
            1 => MessageBody::PreVoteResponse {
                reject: r.bool("reject")?,
            },
            2 => MessageBody::Vote {
                last_index: r.u64("last index")?,
                last_term: r.u64("last term")?,
                transfer: r.bool("transfer")?,
            },
            3 => MessageBody::VoteResponse {
                reject: r.bool("reject")?,
            },
            4 => {
                let prev_index = r.u64("prev index")?;
                let prev_term = r.u64("prev term")?;
                let commit = r.u64("commit")?;
                let read_round = r.u64("read round")?;
                // Each entry takes at least 17 bytes, so the count is bounded by the input too.
                let count = len(&mut r, "entry count", MAX_ENTRIES, 17)?;
                let mut entries = Vec::with_capacity(count);
                for i in 0..count as u64 {
                    let entry_term = r.u64("entry term")?;
                    let kind_offset = r.offset();
                    let code = r.u8("entry kind")?;
                    let kind = EntryKind::from_code(code).ok_or(DecodeError::BadTag {
                        what: "entry kind",
                        tag: code,
                        offset: kind_offset,
                    })?;
                    let data = bytes_field(&mut r, "entry data", MAX_ENTRY_BYTES)?;
                    let index = prev_index.checked_add(i + 1).ok_or(DecodeError::Invalid {
                        what: "entry index",
                        reason: "overflows u64",
                        offset: kind_offset,
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
                reject: r.bool("reject")?,
                index: r.u64("index")?,
                read_round: r.u64("read round")?,
            },
            6 => {
                let index = r.u64("index")?;
                let snap_term = r.u64("snap term")?;
                let count = len(&mut r, "voter count", MAX_VOTERS, 8)?;
                let mut voters = Vec::with_capacity(count);
                for _ in 0..count {
                    voters.push(r.u64("voter")?);
                }
                let data = bytes_field(&mut r, "snapshot data", MAX_SNAPSHOT_BYTES)?;
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
            8 => MessageBody::ReadIndex {
                request: r.u64("request")?,
            },
            9 => MessageBody::ReadIndexResponse {
                request: r.u64("request")?,
                index: r.u64("index")?,
            },
            tag => {
                return Err(DecodeError::BadTag {
                    what: "message",
                    tag,
                    offset: tag_offset,
                }
                .into());
            }
        };
        r.finish()?;
        Ok(Message {
            from,
            to,
            term,
            body,
        })
    }
}

/// Appends a u64 length and the bytes (this format's lengths are u64, not the codec's u32).
fn put_bytes(out: &mut Writer, data: &[u8]) {
    out.u64(data.len() as u64).raw(data);
}

/// Reads a u64 count bounded by `limit` and by what the remaining input can hold at
/// `min_item` bytes per item.
fn len(
    r: &mut Reader<'_>,
    what: &'static str,
    limit: usize,
    min_item: usize,
) -> Result<usize, DecodeError> {
    let offset = r.offset();
    let count = r.u64(what)?;
    r.check_count(what, count, limit, min_item, offset)
}

/// Reads a u64 length (≤ `limit`) and that many bytes.
fn bytes_field(
    r: &mut Reader<'_>,
    what: &'static str,
    limit: usize,
) -> Result<Vec<u8>, DecodeError> {
    let n = len(r, what, limit, 1)?;
    Ok(r.take(n, what)?.to_vec())
}
