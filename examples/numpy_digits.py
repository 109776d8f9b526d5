"""A numpy-only hashgrad worker: an MLP (64-32-10, ReLU, softmax cross-entropy) on the digits
set, one worker per node.

    python examples/numpy_digits.py --node http://127.0.0.1:7180 --data-dir d0

Every worker computes the gradient of its job's batch (its shard, drawn from the cluster's
seed); the node's aggregator reduces and steps; the worker loads the committed params and
reports held-out accuracy every ``--eval-every`` rounds. Flags: --bad sends sign-flipped
gradients (to see a robust rule outvote it), --rounds stops after that round.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Tuple

import numpy as np

import hashgrad
from hashgrad import data

HIDDEN = 32


def layout() -> hashgrad.client.Layout:
    return [("fc1.weight", (HIDDEN, 64)), ("fc1.bias", (HIDDEN,)),
            ("fc2.weight", (10, HIDDEN)), ("fc2.bias", (10,))]


def unpack(p: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    a = HIDDEN * 64
    b = a + HIDDEN
    c = b + 10 * HIDDEN
    return (p[:a].reshape(HIDDEN, 64), p[a:b], p[b:c].reshape(10, HIDDEN), p[c:c + 10])


def initial(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, (2 / 64) ** 0.5, (HIDDEN, 64))
    w2 = rng.normal(0, (2 / HIDDEN) ** 0.5, (10, HIDDEN))
    return np.concatenate([w1.ravel(), np.zeros(HIDDEN), w2.ravel(), np.zeros(10)]).astype(np.float32)


def forward(p: np.ndarray, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    w1, b1, w2, b2 = unpack(p)
    h = np.maximum(x @ w1.T + b1, 0)
    z = h @ w2.T + b2
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return h, e / e.sum(axis=1, keepdims=True)


def gradient(p: np.ndarray, x: np.ndarray, y: np.ndarray) -> Tuple[float, np.ndarray]:
    w1, b1, w2, b2 = unpack(p)
    h, prob = forward(p, x)
    n = x.shape[0]
    loss = float(-np.log(prob[np.arange(n), y] + 1e-12).mean())
    dz = prob.copy()
    dz[np.arange(n), y] -= 1
    dz /= n
    dw2 = dz.T @ h
    db2 = dz.sum(axis=0)
    dh = dz @ w2
    dh[h <= 0] = 0
    dw1 = dh.T @ x
    db1 = dh.sum(axis=0)
    return loss, np.concatenate([dw1.ravel(), db1, dw2.ravel(), db2]).astype(np.float32)


def accuracy(p: np.ndarray, x: np.ndarray, y: np.ndarray) -> Tuple[float, float]:
    _, prob = forward(p, x)
    loss = float(-np.log(prob[np.arange(len(y)), y] + 1e-12).mean())
    return float((prob.argmax(axis=1) == y).mean()), loss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--node", default="http://127.0.0.1:7180")
    ap.add_argument("--data-dir", help="the node's data dir (its .cookie is the token)")
    ap.add_argument("--init-seed", type=int, default=7, help="seed of the initial weights")
    ap.add_argument("--rounds", type=int, help="stop after this round")
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--bad", action="store_true", help="send sign-flipped gradients")
    ap.add_argument("--idle-s", type=float, default=30.0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(message)s")
    features, labels = data.digits()
    features = features / 16.0
    client = hashgrad.Client(args.node, data_dir=args.data_dir)
    session = hashgrad.Session(client, layout(), initial(args.init_seed), idle_s=args.idle_s)
    params = session.start()
    train = test = None
    while params is not None:
        job = session.job
        assert job is not None
        if train is None:
            train, test = data.split(len(labels), job.seed)
        if args.rounds is not None and job.round > args.rounds:
            break
        if job.round % args.eval_every == 1 or args.eval_every == 1:
            acc, test_loss = accuracy(params, features[test], labels[test])
            session.report(acc, test_loss)
            print(f"round {job.round - 1}: accuracy {acc:.4f} test loss {test_loss:.4f}", flush=True)
        rows = data.batch_indices(train, job.seed, job.round, job.worker_index, job.workers,
                                  job.batch_size)
        loss, grad = gradient(params, features[rows], labels[rows])
        if args.bad:
            grad = -10.0 * grad
        params = session.step(loss, grad)
    if session.params is not None and test is not None:
        acc, test_loss = accuracy(session.params, features[test], labels[test])
        session.report(acc, test_loss)
        print(f"final: accuracy {acc:.4f} test loss {test_loss:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
