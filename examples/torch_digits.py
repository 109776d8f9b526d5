"""A PyTorch worker: a small CNN on the 8x8 digits set the crate embeds, trained by a hashgrad
cluster (one worker per node; the aggregator reduces and steps in Rust).

    pip install ./python torch
    python examples/torch_digits.py --node http://127.0.0.1:7180 --data-dir d0

``--local`` runs the same script in one process with torch.optim.Adam instead (the baseline
of docs/perf.md's overhead figure).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from hashgrad import data


class Net(nn.Module):
    """conv 1→16 3x3, conv 16→32 3x3, max-pool, fc 128→64→10 (about 15 k parameters)."""

    def __init__(self, width: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16 * width, 3, padding=1)
        self.conv2 = nn.Conv2d(16 * width, 32 * width, 3, padding=1)
        self.fc1 = nn.Linear(32 * width * 4 * 4, 64 * width)
        self.fc2 = nn.Linear(64 * width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple:
    with torch.no_grad():
        out = model(x)
        return float((out.argmax(1) == y).float().mean()), float(F.cross_entropy(out, y))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--node", default="http://127.0.0.1:7180")
    ap.add_argument("--data-dir")
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--eval-every", type=int, default=20)
    ap.add_argument("--width", type=int, default=1, help="widen every layer (a bigger model)")
    ap.add_argument("--local", action="store_true", help="one process, torch.optim.Adam")
    ap.add_argument("--workers", type=int, default=3, help="--local: shards drawn per step")
    ap.add_argument("--lr", type=float, default=0.002, help="--local: Adam's rate")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(7)
    feats, labels = data.digits()
    x_all = torch.from_numpy(feats / 16.0).float().reshape(-1, 1, 8, 8)
    y_all = torch.from_numpy(labels)
    model = Net(args.width)
    params = sum(p.numel() for p in model.parameters())
    start = time.monotonic()
    samples = 0
    if args.local:
        train, test = data.split(len(labels), args.seed)
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        for r in range(1, args.rounds + 1):
            rows = np.concatenate([data.batch_indices(train, args.seed, r, w, args.workers, 32)
                                   for w in range(args.workers)])
            opt.zero_grad()
            F.cross_entropy(model(x_all[rows]), y_all[rows]).backward()
            opt.step()
            samples += len(rows)
    else:
        import hashgrad.torch as hg

        opt = hg.Optimizer(model, node=args.node, data_dir=args.data_dir)
        train, test = data.split(len(labels), opt.job.seed)  # type: ignore[union-attr]
        while not opt.finished and opt.job.round <= args.rounds:  # type: ignore[union-attr]
            job = opt.job
            assert job is not None
            if job.round % args.eval_every == 1:
                acc, loss = evaluate(model, x_all[test], y_all[test])
                opt.report(acc, loss)
                print(f"round {job.round - 1}: accuracy {acc:.4f}", flush=True)
            rows = data.batch_indices(train, job.seed, job.round, job.worker_index, job.workers,
                                      job.batch_size)
            loss = F.cross_entropy(model(x_all[rows]), y_all[rows])
            loss.backward()
            opt.step(float(loss))
            opt.zero_grad()
            samples += len(rows) * job.workers
    elapsed = time.monotonic() - start
    acc, loss = evaluate(model, x_all[test], y_all[test])
    if not args.local:
        opt.report(acc, loss)  # type: ignore[union-attr]
    print(f"final: accuracy {acc:.4f} params {params} rounds {args.rounds} "
          f"seconds {elapsed:.2f} samples/s {samples / elapsed:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
