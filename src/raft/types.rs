//! Plain Raft data types shared by the core, the wire format and storage: entries, hard state,
//! snapshots, membership changes. No behaviour beyond small accessors.

/// A node's identity in the cluster; `0` is reserved for "nobody". In a running node it is
/// derived from the network fingerprint by `crate::node_id::NodeId::raft_id` (the first 8
/// bytes big-endian), and `crate::node_id::RaftIds` maps it back; the core itself only sees
/// the `u64`.
pub type RaftId = u64;

/// What an entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// An application command (opaque bytes).
    Normal,
    /// The empty entry a new leader appends to commit entries of earlier terms.
    Noop,
    /// A membership change; `data` is an encoded [`ConfChange`].
    ConfChange,
}

impl EntryKind {
    pub(crate) fn code(self) -> u8 {
        match self {
            EntryKind::Normal => 0,
            EntryKind::Noop => 1,
            EntryKind::ConfChange => 2,
        }
    }
    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(EntryKind::Normal),
            1 => Some(EntryKind::Noop),
            2 => Some(EntryKind::ConfChange),
            _ => None,
        }
    }
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Position in the log, from 1.
    pub index: u64,
    /// Term of the leader that created it.
    pub term: u64,
    /// What `data` means.
    pub kind: EntryKind,
    /// The payload.
    pub data: Vec<u8>,
}

/// What must survive a crash besides the log: current term, vote in it, commit index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: u64,
    /// Whom this node voted for in `term` (0: nobody).
    pub vote: RaftId,
    /// The highest index known committed.
    pub commit: u64,
}

/// Where a snapshot ends and who the voters were at that point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SnapshotMeta {
    /// Index of the last entry the snapshot covers.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
    /// The voters in effect at `index`, sorted.
    pub voters: Vec<RaftId>,
}

/// A state machine snapshot: the application's bytes plus the log position they cover.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Snapshot {
    /// Position and membership.
    pub meta: SnapshotMeta,
    /// The state machine's own encoding.
    pub data: Vec<u8>,
}

/// A single-server membership change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfChange {
    /// Add a voter (it should first catch up as a follower; the leader replicates to it at once).
    AddVoter(RaftId),
    /// Remove a voter (a removed leader steps down once the change commits).
    RemoveVoter(RaftId),
}

impl ConfChange {
    /// Nine bytes: a tag and the node id, little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let (tag, id) = match *self {
            ConfChange::AddVoter(id) => (0u8, id),
            ConfChange::RemoveVoter(id) => (1u8, id),
        };
        let mut out = Vec::with_capacity(9);
        out.push(tag);
        out.extend_from_slice(&id.to_le_bytes());
        out
    }

    /// Decodes [`ConfChange::encode`]'s output; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (&tag, rest) = bytes.split_first()?;
        let id = u64::from_le_bytes(rest.try_into().ok()?);
        match tag {
            0 => Some(ConfChange::AddVoter(id)),
            1 => Some(ConfChange::RemoveVoter(id)),
            _ => None,
        }
    }
}
