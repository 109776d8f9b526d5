"""Data helpers every worker of a cluster uses the same way: the digits set the crate embeds,
a seeded train/test split and the rows of a job's batch (derived from the cluster's seed, the
round and the worker's shard, so a single-process run draws the same batches)."""

from __future__ import annotations

import gzip
import os
from typing import Optional, Tuple

import numpy as np

_DIGITS = os.path.join(os.path.dirname(__file__), "digits.csv.gz")


def digits(path: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The 1797 8×8 digits: features (float32, 0..16) and labels (int64)."""
    with gzip.open(path or _DIGITS, "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.float64)
    return rows[:, :-1].astype(np.float32), rows[:, -1].astype(np.int64)


def split(n: int, seed: int, test_fraction: float = 0.2) -> Tuple[np.ndarray, np.ndarray]:
    """Train and test row indices of ``n`` rows, the same for every worker with ``seed``."""
    order = np.random.default_rng([seed, 0x5EED]).permutation(n)
    test = max(1, int(round(n * test_fraction)))
    return np.sort(order[test:]), np.sort(order[:test])


def shard(train: np.ndarray, worker_index: int, workers: int) -> np.ndarray:
    """The train rows of shard ``worker_index`` of ``workers`` (interleaved)."""
    return train[worker_index::workers]


def batch_indices(train: np.ndarray, seed: int, round: int, worker_index: int, workers: int,
                  batch_size: int) -> np.ndarray:
    """The rows of ``round``'s batch on shard ``worker_index``: drawn without replacement from
    the shard by a generator seeded with (seed, round, shard)."""
    rows = shard(train, worker_index, workers)
    rng = np.random.default_rng([seed, round, worker_index])
    return rows[rng.choice(rows.size, size=min(batch_size, rows.size), replace=False)]
