"""Real ``hashgrad node`` processes on loopback and real Python workers for the package's
tests. The binary is ``$HASHGRAD_BIN``, else ``$CARGO_TARGET_DIR/debug/hashgrad``, else the
repository's ``target/debug/hashgrad`` (``cargo build`` first)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Dict, List, Optional

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON_DIR = os.path.join(REPO, "python")


def binary() -> str:
    if os.environ.get("HASHGRAD_BIN"):
        return os.environ["HASHGRAD_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    path = os.path.join(target, "debug", "hashgrad")
    if not os.path.exists(path):
        pytest.skip(f"no hashgrad binary at {path}; run cargo build --bin hashgrad")
    return path


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONFIG = """network = "regtest"
[mining]
enabled = true
backend = "cpu"
threads = 1
[train]
model = "external"
tick_ms = 50
election_ticks = 10
heartbeat_ticks = 2
seed = 1
optimizer = "adam"
learning_rate = {lr}
rule = "{rule}"
consistency = "{consistency}"
round_deadline_ms = {deadline}
batch_size = 32
{extra}
"""


class Cluster:
    """N nodes, each with a data dir, ports and a log under ``root``."""

    def __init__(self, root: str, n: int = 3, *, rule: str = "mean", consistency: str = "quorum",
                 lr: float = 0.01, deadline: int = 3000, extra: str = "") -> None:
        self.root = root
        self.bin = binary()
        self.config = os.path.join(root, "node.toml")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(lr=lr, rule=rule, consistency=consistency, deadline=deadline,
                                  extra=extra))
        self.dirs = [os.path.join(root, f"d{i}") for i in range(n)]
        self.udp = [free_port(socket.SOCK_DGRAM) for _ in range(n)]
        self.http = [free_port(socket.SOCK_STREAM) for _ in range(n)]
        self.ids = [subprocess.run([self.bin, "id", "--data-dir", d], check=True,
                                   capture_output=True, text=True).stdout.strip() for d in self.dirs]
        self.procs: List[Optional[subprocess.Popen]] = [None] * n
        self.workers: Dict[int, subprocess.Popen] = {}
        for i in range(n):
            self.start(i)
        for i in range(n):
            self.wait_up(i)
        deadline = time.monotonic() + 60
        while self.leader() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no training leader elected; see {root}/node*.log")
            time.sleep(0.2)

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.http[i]}"

    def start(self, i: int) -> None:
        args = [self.bin, "node", "--config", self.config, "--data-dir", self.dirs[i],
                "--listen", f"127.0.0.1:{self.udp[i]}", "--http", f"127.0.0.1:{self.http[i]}",
                "--stop-on-stdin-eof"]
        for fp in self.ids:
            args += ["--voter", fp]
        for j, port in enumerate(self.udp):
            if j != i:
                args += ["--peer", f"127.0.0.1:{port}"]
        cookie = os.path.join(self.dirs[i], ".cookie")
        if os.path.exists(cookie):
            os.remove(cookie)
        log = open(os.path.join(self.root, f"node{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=log, stderr=log,
                                         env={**os.environ, "RUST_LOG": "info"})

    def wait_up(self, i: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(os.path.join(self.dirs[i], ".cookie")) and self.try_status(i):
                return
            time.sleep(0.2)
        raise TimeoutError(f"node {i} did not start; see {self.root}/node{i}.log")

    def try_status(self, i: int) -> Optional[dict]:
        try:
            with urllib.request.urlopen(self.url(i) + "/status", timeout=5) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def training(self, i: int) -> dict:
        status = self.try_status(i)
        return (status or {}).get("training") or {}

    def leader(self) -> Optional[int]:
        for i in range(len(self.dirs)):
            if self.procs[i] is not None and self.training(i).get("role") == "leader":
                return i
        return None

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self.procs[i] = None

    def worker(self, i: int, *extra: str, script: str = "numpy_digits.py") -> subprocess.Popen:
        args = [sys.executable, os.path.join(REPO, "examples", script), "--node", self.url(i),
                "--data-dir", self.dirs[i], *extra]
        log = open(os.path.join(self.root, f"worker{i}.log"), "ab")
        env = {**os.environ, "PYTHONPATH": PYTHON_DIR}
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.workers[i] = proc
        return proc

    def kill_worker(self, i: int) -> None:
        proc = self.workers.pop(i, None)
        if proc is not None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        for i in list(self.workers):
            self.kill_worker(i)
        for i, proc in enumerate(self.procs):
            if proc is not None:
                try:
                    proc.stdin.close()  # type: ignore[union-attr]
                    proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    proc.kill()
                    proc.wait()
                self.procs[i] = None


@pytest.fixture
def cluster_factory(tmp_path):  # type: ignore[no-untyped-def]
    made: List[Cluster] = []

    def make(**kwargs) -> Cluster:  # type: ignore[no-untyped-def]
        c = Cluster(str(tmp_path), **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


def wait_for(check, timeout: float, what: str, every: float = 0.3):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what} not within {timeout} s (last: {last!r})")
