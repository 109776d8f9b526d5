//! hashgrad: a compute node for proof-of-work mining and data-parallel training.
//!
//! Layered, lowest first: pure cores that take events and `now` and return actions (`codec`,
//! `target`, `node_id`, `raft`, `pow`, `cluster`, `train`, `check`; only `pow::store` and
//! `raft::storage`'s redb file touch a file), engines that run work on the hardware (`hash`,
//! `gpu`), I/O shells that own sockets, files, tasks and clocks (`events`, `net`, `config`,
//! `views`, `api`, `node`), and the tools (`report`, `testnet`, `cli`). ARCHITECTURE.md is
//! the map: what each module owns, which way imports go, and how a block, a Raft message, a
//! training round and a testnet run flow.

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
pub mod stratum;
pub mod target;
pub mod testnet;
pub mod train;
pub mod views;
