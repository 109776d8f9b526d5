"""3 real nodes + 3 real Python workers: training to a target, failover, a worker restart, a
Byzantine worker under median, checkpoints, and hostile bodies."""

from __future__ import annotations

import http.client
import json
import os
import struct
import sys
import time

import numpy as np

from conftest import REPO, wait_for

sys.path.insert(0, os.path.join(REPO, "examples"))
import numpy_digits as model  # noqa: E402

import hashgrad  # noqa: E402
from hashgrad import data  # noqa: E402


def test_data_helpers_are_deterministic() -> None:
    train, test = data.split(1797, 1)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 1797
    a = data.batch_indices(train, 1, 5, 2, 3, 32)
    assert np.array_equal(a, data.batch_indices(train, 1, 5, 2, 3, 32))
    assert not np.array_equal(a, data.batch_indices(train, 1, 6, 2, 3, 32))
    assert set(a) <= set(data.shard(train, 2, 3))


def test_safetensors_round_trip() -> None:
    values = np.arange(8, dtype=np.float32)
    blob = hashgrad.encode_safetensors([("w", (2, 3)), ("b", (2,))], values, {"round": "3"})
    tensors, meta, order = hashgrad.load_safetensors(blob)
    assert order == ["w", "b"] and meta == {"round": "3"}
    assert np.array_equal(tensors["w"].ravel(), values[:6])


def accuracy_of(params: np.ndarray) -> float:
    x, y = data.digits()
    _, test = data.split(len(y), 1)
    return model.accuracy(params, x[test] / 16.0, y[test])[0]


def committed(c, i: int) -> int:  # type: ignore[no-untyped-def]
    return int(c.training(i).get("rounds_committed", 0))


def test_three_numpy_workers_train_to_target_and_checkpoint(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    c = cluster_factory(consistency="all")
    rounds = 60
    for i in range(3):
        c.worker(i, "--rounds", str(rounds))
    wait_for(lambda: all(committed(c, i) >= rounds for i in range(3)), 240, "60 rounds everywhere")
    for proc in c.workers.values():
        assert proc.wait(timeout=60) == 0
    hashes = {c.training(i)["params_hash"] for i in range(3)}
    rounds_seen = {committed(c, i) for i in range(3)}
    assert len(rounds_seen) > 1 or len(hashes) == 1, (hashes, rounds_seen)
    blob = hashgrad.Client(c.url(0)).checkpoint()
    tensors, meta, _ = hashgrad.load_safetensors(blob)
    assert meta["params_hash"] == c.training(0)["params_hash"] or int(meta["round"]) >= rounds
    flat = np.concatenate([tensors[n].ravel() for n, _ in model.layout()])
    acc = accuracy_of(flat)
    assert acc >= 0.9, acc
    status = c.training(0)
    assert status["external"] and status["accuracy"] is not None
    assert abs(status["accuracy"] - acc) < 0.05 or status["evaluated_round"] < int(meta["round"])


def test_a_killed_leader_loses_no_round_and_workers_carry_on(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    c = cluster_factory(consistency="quorum", deadline=2000)
    for i in range(3):
        c.worker(i)
    for kill in range(2):
        before = wait_for(lambda: max(committed(c, i) for i in range(3) if c.procs[i]) >= 10 * (kill + 1)
                          and max(committed(c, i) for i in range(3) if c.procs[i]), 180, "rounds")
        wait_for(lambda: c.leader() is not None, 30, "a leader")
        leader = c.leader()
        assert leader is not None
        c.kill(leader)
        wait_for(lambda: any(committed(c, i) > before for i in range(3) if c.procs[i]), 120,
                 "rounds after the leader died")
        c.start(leader)
        c.wait_up(leader)
        wait_for(lambda: committed(c, leader) >= before, 120, "the restarted node catching up")
    target = max(committed(c, i) for i in range(3)) + 5
    wait_for(lambda: all(committed(c, i) >= target for i in range(3)), 180, "rounds on every node")
    for proc in c.workers.values():
        assert proc.poll() is None, "a worker gave up"


def test_a_restarted_worker_rejoins(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    c = cluster_factory(consistency="quorum", deadline=1500)
    for i in range(3):
        c.worker(i)
    wait_for(lambda: committed(c, 0) >= 5, 120, "5 rounds")
    c.kill_worker(2)
    after_kill = committed(c, 0)
    wait_for(lambda: committed(c, 0) >= after_kill + 5, 120, "rounds without worker 2")
    refused = c.training(2)["gradients_refused"]
    c.worker(2)
    wait_for(lambda: c.training(2).get("worker_connected"), 60, "worker 2 registered again")
    mark = committed(c, 0)
    wait_for(lambda: committed(c, 0) >= mark + 5, 120, "rounds with worker 2 back")
    assert c.training(2)["gradients_refused"] >= refused


def test_median_outvotes_a_sign_flipping_worker(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    c = cluster_factory(consistency="all", rule="median")
    rounds = 60
    c.worker(0, "--rounds", str(rounds))
    c.worker(1, "--rounds", str(rounds))
    c.worker(2, "--rounds", str(rounds), "--bad")
    wait_for(lambda: committed(c, 0) >= rounds, 240, "60 rounds")
    tensors, _, _ = hashgrad.load_safetensors(hashgrad.Client(c.url(0)).checkpoint())
    flat = np.concatenate([tensors[n].ravel() for n, _ in model.layout()])
    assert accuracy_of(flat) >= 0.85


def raw(c, i: int, method: str, path: str, body: bytes = b"", token: bool = True,  # type: ignore[no-untyped-def]
        headers: dict | None = None) -> tuple:
    conn = http.client.HTTPConnection("127.0.0.1", c.http[i], timeout=30)
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + hashgrad.read_token(c.dirs[i])
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    out = (r.status, r.read())
    conn.close()
    return out


def test_hostile_bodies_are_refused(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    c = cluster_factory(consistency="quorum")
    layout = model.layout()
    init = model.initial(7)
    good = hashgrad.encode_safetensors(layout, init)
    assert raw(c, 0, "POST", "/train/register", good, token=False)[0] == 401
    assert raw(c, 0, "POST", "/train/register", good[: len(good) // 2])[0] == 400
    f16 = good.replace(b'"F32"', b'"F16"', 1)
    assert raw(c, 0, "POST", "/train/register", f16)[0] == 400
    client = hashgrad.Client(c.url(0), data_dir=c.dirs[0])
    reg = client.register(layout, init)
    other = hashgrad.Client(c.url(1), data_dir=c.dirs[1])
    try:
        other.register([("w", (3,))], np.zeros(3, np.float32))
        raise AssertionError("a different layout was accepted")
    except hashgrad.NodeError as e:
        assert e.status == 409 and "tensor" in e.reason
    job = wait_for(lambda: client.job(0, wait_ms=2000), 60, "a job")
    q = f"worker={reg.worker}&round={job.round}&params_hash={job.params_hash}&loss=1.0"
    n = hashgrad.client.flat_size(layout)
    before = c.training(0)["gradients_refused"]
    cases = [
        (f"/train/gradient?{q}", b"\0" * (4 * n - 2), 400, "whole"),
        (f"/train/gradient?{q}", b"\0" * (4 * (n - 1)), 400, "values"),
        (f"/train/gradient?{q}", struct.pack("<f", float("nan")) * n, 400, "finite"),
        (f"/train/gradient?worker=1&round={job.round}&params_hash={job.params_hash}&loss=1",
         b"\0" * (4 * n), 404, "worker"),
        (f"/train/gradient?worker={reg.worker}&round={job.round + 5}&params_hash={job.params_hash}&loss=1",
         b"\0" * (4 * n), 409, "round"),
    ]
    for path, body, status, word in cases:
        got, text = raw(c, 0, "POST", path, body)
        assert got == status, (path, got, text)
        assert word in json.loads(text)["error"], text
    assert raw(c, 0, "POST", f"/train/gradient?{q}", b"\0" * (4 * n), token=False)[0] == 401
    try:
        oversized = raw(c, 0, "POST", f"/train/gradient?{q}", b"\0" * ((256 << 20) + 4))[0]
    except (ConnectionError, OSError):
        oversized = 413  # the node answered 413 and closed before the body was all sent
    assert oversized == 413
    assert c.training(0)["gradients_refused"] >= before + 4
    client.submit(reg.worker, job, 1.0, np.zeros(n, np.float32))
