//! hashgrad: a compute node for proof-of-work mining and data-parallel training.
//!
//! The crate is organised as sans-IO cores (`pow`, `raft`, `train`'s rules) driven by the only
//! modules that touch sockets, files and clocks (`net`, `node`). See ARCHITECTURE.md.

// A `pub` item must be reachable from outside the crate; anything else says `pub(crate)`.
// (`unsafe_op_in_unsafe_fn` warns by default in edition 2024; CI denies warnings.)
#![warn(unreachable_pub)]
#![warn(missing_docs)]
#![warn(missing_debug_implementations)]

pub mod api;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod events;
pub mod gpu;
pub mod hash;
pub mod net;
pub mod node;
pub mod node_id;
pub mod pow;
pub mod raft;
pub mod report;
pub mod target;
pub mod testnet;
pub mod train;
