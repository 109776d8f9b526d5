//! The chain service's miner control: whether this node mines, the miner thread and its
//! backend, the job on the tip (paced when the profile asks for it), the hash-rate sample and
//! the count of blocks found.
//!
//! Owns the miner; must not accept the blocks it finds (they go to the chain service, which
//! validates them like any other block).

use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::mpsc;
use tracing::info;

use super::super::miner::Miner;
use super::super::{NodeError, backend};
use crate::config::MiningSection;
use crate::pow::{Block, BlockTemplate};

/// How often at most the hash rate is sampled.
const RATE_SAMPLE: Duration = Duration::from_millis(900);

/// The miner, on or off, and what it reports.
pub(super) struct MinerControl {
    settings: MiningSection,
    /// Whether mining is wanted (the config, then `set_mining`).
    wanted: bool,
    miner: Option<Miner>,
    found: mpsc::UnboundedSender<Block>,
    backend_name: String,
    pace: Duration,
    blocks_mined: u64,
    rate_sample: (Instant, u64),
    hash_rate: f64,
}

impl MinerControl {
    /// Off until `open`; found blocks go to `found`.
    pub(super) fn new(
        settings: MiningSection,
        found: mpsc::UnboundedSender<Block>,
    ) -> MinerControl {
        MinerControl {
            wanted: settings.enabled,
            pace: Duration::from_millis(settings.pace_ms),
            settings,
            miner: None,
            found,
            backend_name: "none".into(),
            blocks_mined: 0,
            rate_sample: (Instant::now(), 0),
            hash_rate: 0.0,
        }
    }

    /// Whether mining is wanted.
    pub(super) fn wanted(&self) -> bool {
        self.wanted
    }

    /// Whether the miner thread runs and mining is wanted.
    pub(super) fn running(&self) -> bool {
        self.wanted && self.miner.is_some()
    }

    /// Opens the configured backend and starts the miner thread, once.
    pub(super) fn open(&mut self) -> Result<(), NodeError> {
        if self.miner.is_some() {
            return Ok(());
        }
        let backend = backend::open(self.settings.backend, self.settings.threads)?;
        let info = backend.info();
        self.backend_name = format!(
            "{:?}: {} on {} ({} threads)",
            info.kind, info.path, info.device, info.threads
        )
        .to_lowercase();
        info!(backend = %self.backend_name, "mining");
        self.miner = Some(Miner::start(backend, self.found.clone()));
        Ok(())
    }

    /// Turns mining on (opening the miner) or pauses it.
    pub(super) fn set_wanted(&mut self, on: bool) -> Result<(), NodeError> {
        self.wanted = on;
        if on {
            self.open()?;
        } else if let Some(miner) = &self.miner {
            miner.pause();
        }
        Ok(())
    }

    /// Hands the miner a fresh template, after a random delay of up to twice the pace.
    pub(super) fn replace(&self, template: impl FnOnce() -> BlockTemplate) {
        let Some(miner) = self.miner.as_ref().filter(|_| self.wanted) else {
            return;
        };
        let pace = self.pace.as_millis() as u64;
        let delay = if pace == 0 {
            0
        } else {
            rand::rng().random_range(0..=2 * pace)
        };
        miner.replace(template(), Instant::now() + Duration::from_millis(delay));
    }

    /// Swaps the template the miner works on without delay (new receipts on the same tip).
    pub(super) fn refresh(&self, template: impl FnOnce() -> BlockTemplate) {
        if let Some(miner) = self.miner.as_ref().filter(|_| self.wanted) {
            miner.refresh(template());
        }
    }

    /// Counts a block this node found that became the tip.
    pub(super) fn found_one(&mut self) {
        self.blocks_mined += 1;
    }

    /// Blocks found since start.
    pub(super) fn blocks_mined(&self) -> u64 {
        self.blocks_mined
    }

    /// The backend's description, or `none`.
    pub(super) fn backend_name(&self) -> &str {
        &self.backend_name
    }

    /// The last sampled rate in hashes per second.
    pub(super) fn hash_rate(&self) -> f64 {
        self.hash_rate
    }

    /// Samples the rate when the last sample is old enough; returns the hashes done since it
    /// (for the counter) and whether a miner is running (for the event log).
    pub(super) fn sample(&mut self) -> Option<(u64, bool)> {
        let hashes = self.miner.as_ref().map_or(0, Miner::hashes);
        let (since, before) = self.rate_sample;
        let elapsed = since.elapsed();
        if elapsed < RATE_SAMPLE {
            return None;
        }
        let done = hashes.saturating_sub(before);
        self.hash_rate = done as f64 / elapsed.as_secs_f64();
        self.rate_sample = (Instant::now(), hashes);
        Some((done, self.miner.is_some()))
    }

    /// Stops the miner thread.
    pub(super) fn stop(&mut self) {
        self.miner = None;
    }
}
