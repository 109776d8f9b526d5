//! Opens the mining backend the config names, through the search engine's `hash::select`.

use crate::gpu::{AdapterChoice, DeviceChoice};
use crate::hash::Backend;
use crate::hash::select::open_backend;

use super::NodeError;

/// The backend for `mining.backend` (`cpu`, `gpu`, `auto`) with `threads` CPU threads.
pub(super) fn open(name: &str, threads: usize) -> Result<Box<dyn Backend>, NodeError> {
    let choice: DeviceChoice = name.parse()?;
    open_backend(choice, &AdapterChoice::Auto, Some(threads)).map_err(|source| NodeError::Backend {
        name: name.to_string(),
        source,
    })
}
