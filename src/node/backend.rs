//! Opens the mining backend the config names, through the search engine's `hash::select`.

use crate::gpu::{AdapterChoice, DeviceChoice};
use crate::hash::Backend;
use crate::hash::select::open_backend;

use super::NodeError;

/// The backend for `mining.backend` (`cpu`, `gpu`, `auto`) with `threads` CPU threads.
pub(super) fn open(choice: DeviceChoice, threads: usize) -> Result<Box<dyn Backend>, NodeError> {
    open_backend(choice, &AdapterChoice::Auto, Some(threads)).map_err(|source| NodeError::Backend {
        name: choice.to_string(),
        source,
    })
}
