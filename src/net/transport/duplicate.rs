//! The keep-or-replace rule for a second connection to a peer already in the peer table (both
//! nodes dialled each other at once, or one side redialled). Pure: both nodes apply it to the
//! same facts and keep the same connection. Must not touch connections; the transport closes
//! the loser.

use crate::net::identity::NodeId;

/// The connection already in the peer table, as the rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Existing {
    /// The node that dialled it.
    pub(super) dialed_by: NodeId,
    /// False once it has closed (a dead connection never beats a live one).
    pub(super) open: bool,
}

/// Which connection survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Survivor {
    /// Keep the connection in the table; close the newcomer.
    Existing,
    /// Close the connection in the table; the newcomer replaces it.
    Newcomer,
}

/// Which of two connections between `own` and `peer` survives: `existing` in the table, or the
/// newcomer dialled by `newcomer_dialed_by`.
///
/// Two connections dialled from opposite sides: both nodes keep the one dialled by the smaller
/// id, so a simultaneous dial leaves exactly one whatever order each side registers them in.
/// Dialled from the same side: the newcomer wins (the dialler redialled because it lost the
/// old one, which this side may not have noticed yet). A closed existing connection always
/// loses.
pub(super) fn survivor(
    own: NodeId,
    peer: NodeId,
    existing: Existing,
    newcomer_dialed_by: NodeId,
) -> Survivor {
    let preferred_dialer = own.min(peer);
    let keep_existing = existing.open
        && existing.dialed_by != newcomer_dialed_by
        && existing.dialed_by == preferred_dialer;
    if keep_existing {
        Survivor::Existing
    } else {
        Survivor::Newcomer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: NodeId = NodeId([1; 32]);
    const LARGE: NodeId = NodeId([2; 32]);

    #[test]
    fn every_case_of_the_rule() {
        use Survivor::{Existing as Keep, Newcomer as Replace};
        // (own, peer, existing dialled by, existing open, newcomer dialled by, survivor)
        let cases = [
            // Opposite dialers, both open: the one dialled by the smaller id stays.
            (SMALL, LARGE, SMALL, true, LARGE, Keep),
            (SMALL, LARGE, LARGE, true, SMALL, Replace),
            (LARGE, SMALL, SMALL, true, LARGE, Keep),
            (LARGE, SMALL, LARGE, true, SMALL, Replace),
            // Same dialer: a redial replaces the old connection.
            (SMALL, LARGE, SMALL, true, SMALL, Replace),
            (SMALL, LARGE, LARGE, true, LARGE, Replace),
            (LARGE, SMALL, SMALL, true, SMALL, Replace),
            (LARGE, SMALL, LARGE, true, LARGE, Replace),
            // A closed existing connection loses, even the preferred one.
            (SMALL, LARGE, SMALL, false, LARGE, Replace),
            (SMALL, LARGE, LARGE, false, SMALL, Replace),
            (LARGE, SMALL, SMALL, false, LARGE, Replace),
            (LARGE, SMALL, LARGE, false, SMALL, Replace),
            (SMALL, LARGE, SMALL, false, SMALL, Replace),
            (SMALL, LARGE, LARGE, false, LARGE, Replace),
            (LARGE, SMALL, SMALL, false, SMALL, Replace),
            (LARGE, SMALL, LARGE, false, LARGE, Replace),
        ];
        for (own, peer, dialed_by, open, newcomer, expected) in cases {
            let existing = Existing { dialed_by, open };
            assert_eq!(
                survivor(own, peer, existing, newcomer),
                expected,
                "own {own:?}, peer {peer:?}, existing {existing:?}, newcomer dialled by {newcomer:?}"
            );
        }
    }

    /// The connection a node keeps after registering `first` then `second` (each named by its
    /// dialer), both open.
    fn kept(own: NodeId, peer: NodeId, first: NodeId, second: NodeId) -> NodeId {
        let existing = Existing {
            dialed_by: first,
            open: true,
        };
        match survivor(own, peer, existing, second) {
            Survivor::Existing => first,
            Survivor::Newcomer => second,
        }
    }

    #[test]
    fn a_simultaneous_dial_leaves_the_same_connection_on_both_sides_in_any_order() {
        let orders = [(SMALL, LARGE), (LARGE, SMALL)];
        for (small_first, small_second) in orders {
            for (large_first, large_second) in orders {
                let on_small = kept(SMALL, LARGE, small_first, small_second);
                let on_large = kept(LARGE, SMALL, large_first, large_second);
                assert_eq!(on_small, on_large, "both sides keep one connection");
                assert_eq!(on_small, SMALL, "the one dialled by the smaller id");
            }
        }
    }
}
