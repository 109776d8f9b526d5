//! Tests of the Raft core: seeded simulation, scenarios named after the cases,
//! mutation sanity, the wire codec and the storage backends.

mod codec;
mod features;
mod mutation;
mod scenarios;
mod simulation;
mod storage;
