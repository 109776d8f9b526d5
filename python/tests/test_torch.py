"""The torch CNN on 3 real nodes with 3 real torch workers (skipped without torch)."""

from __future__ import annotations

import os
import re

import pytest

from conftest import wait_for

torch = pytest.importorskip("torch")


def test_three_torch_workers_train_the_cnn_to_97_percent(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    c = cluster_factory(consistency="all", lr=0.002)
    rounds = 300
    for i in range(3):
        c.worker(i, "--rounds", str(rounds), script="torch_digits.py")
    wait_for(lambda: all(not p.poll() is None for p in c.workers.values()) or None, 600,
             "the torch workers to finish")
    for i, proc in c.workers.items():
        assert proc.returncode == 0, open(os.path.join(c.root, f"worker{i}.log")).read()[-2000:]
    with open(os.path.join(c.root, "worker0.log")) as f:
        final = [line for line in f if line.startswith("final:")][-1]
    accuracy = float(re.search(r"accuracy ([0-9.]+)", final).group(1))  # type: ignore[union-attr]
    assert accuracy >= 0.97, final
