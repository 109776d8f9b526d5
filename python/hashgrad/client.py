"""The node's worker API over HTTP/1.1 with keep-alive (``http.client``, no dependency).

Writes carry the node's token (``Authorization: Bearer``), read from ``DATA_DIR/.cookie``.
Tensors travel as raw little-endian f32; the model's layout and initial values as a
safetensors file. Every refusal raises :class:`NodeError` with the node's reason.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .checkpoint import encode_safetensors

Layout = List[Tuple[str, Tuple[int, ...]]]


class NodeError(Exception):
    """The node refused a request: ``status`` is the HTTP status, ``reason`` its words."""

    def __init__(self, status: int, reason: str, path: str) -> None:
        super().__init__(f"{path}: {status} {reason}")
        self.status = status
        self.reason = reason
        self.path = path


class NodeUnreachable(Exception):
    """The node did not answer (stopped, restarting, wrong address)."""


@dataclass(frozen=True)
class Registration:
    """A worker session: ``worker`` names it in every later request."""

    worker: int
    params_hash: str
    created: bool


@dataclass(frozen=True)
class Job:
    """The gradient to compute next: at params ``params_hash``, for ``round``, on shard
    ``worker_index`` of ``workers``, ``batch_size`` rows drawn from ``seed`` (see
    :func:`hashgrad.data.batch_indices`)."""

    round: int
    params_hash: str
    worker_index: int
    workers: int
    batch_size: int
    seed: int


def read_token(data_dir: str) -> str:
    """The node's API token from ``data_dir/.cookie``."""
    with open(os.path.join(data_dir, ".cookie"), "r", encoding="ascii") as f:
        return f.read().strip()


class Client:
    """One node's worker API.

    ``node`` is its HTTP address (``http://127.0.0.1:7180``). The token is ``token``, else
    the cookie in ``data_dir``, else ``$HASHGRAD_TOKEN``, else the cookie in
    ``$HASHGRAD_DATA_DIR``; without one, reads still work and writes raise NodeError(401).
    """

    def __init__(
        self,
        node: str = "http://127.0.0.1:7180",
        *,
        token: Optional[str] = None,
        data_dir: Optional[str] = None,
        timeout: float = 90.0,
    ) -> None:
        url = urllib.parse.urlsplit(node if "//" in node else "http://" + node)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"node must be http://HOST:PORT, not {node!r}")
        self.host = url.hostname
        self.port = url.port or 80
        self.timeout = timeout
        self.data_dir = data_dir or os.environ.get("HASHGRAD_DATA_DIR")
        self._token = token or os.environ.get("HASHGRAD_TOKEN")
        self._conn: Optional[http.client.HTTPConnection] = None

    # -- plumbing -------------------------------------------------------------------------

    def _auth(self) -> Dict[str, str]:
        token = self._token
        if token is None and self.data_dir:
            try:
                token = read_token(self.data_dir)
            except OSError:
                token = None
        return {"Authorization": f"Bearer {token}"} if token else {}

    def reload_token(self) -> None:
        """Forget a token given at construction so the next write rereads the cookie (a
        restarted node writes a new one)."""
        if self.data_dir:
            self._token = None

    def close(self) -> None:
        """Closes the kept-alive connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        body: Optional[bytes] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> Tuple[int, Dict[str, str], bytes]:
        """One request on the kept-alive connection (reconnecting once if the node closed
        it); returns status, headers and body. Raises NodeUnreachable."""
        all_headers = {"Connection": "keep-alive"}
        if method != "GET":
            all_headers.update(self._auth())
        all_headers.update(headers or {})
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request(method, path, body=body, headers=all_headers)
                response = self._conn.getresponse()
                data = response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, data
            except (OSError, http.client.HTTPException) as e:
                self.close()
                if attempt == 1:
                    raise NodeUnreachable(f"{self.host}:{self.port}{path}: {e}") from e
        raise AssertionError("unreachable")

    def _checked(self, method: str, path: str, body: Optional[bytes] = None,
                 headers: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, str], bytes]:
        status, head, data = self.request(method, path, body, headers)
        if status >= 400:
            try:
                reason = json.loads(data.decode("utf-8")).get("error", "")
            except (ValueError, UnicodeDecodeError, AttributeError):
                reason = data[:200].decode("utf-8", "replace")
            raise NodeError(status, reason, path.split("?")[0])
        return status, head, data

    # -- the worker API -------------------------------------------------------------------

    def status(self) -> Dict[str, Any]:
        """``GET /status`` as a dict."""
        return json.loads(self._checked("GET", "/status")[2])

    def register(self, layout: Layout, values: np.ndarray) -> Registration:
        """Registers this worker's model: ``layout`` (names and shapes in vector order) and
        its initial values. The first registration in the cluster becomes round 0; a later
        one must have the same layout (NodeError 409 names the difference)."""
        body = encode_safetensors(layout, np.asarray(values, dtype=np.float32))
        answer = json.loads(self._checked("POST", "/train/register", body)[2])
        return Registration(int(answer["worker"]), str(answer["params_hash"]), bool(answer["created"]))

    def job(self, after: int = 0, wait_ms: int = 30_000) -> Optional[Job]:
        """The next job of a round after ``after``, or None if none opened within ``wait_ms``."""
        status, _, data = self._checked("GET", f"/train/job?after={after}&wait_ms={wait_ms}")
        if status == 204:
            return None
        j = json.loads(data)
        return Job(int(j["round"]), str(j["params_hash"]), int(j["worker_index"]),
                   int(j["workers"]), int(j["batch_size"]), int(j["seed"]))

    def params(self, params_hash: str, wait_ms: int = 10_000) -> np.ndarray:
        """The params with this hash, as a flat float32 vector."""
        _, _, data = self._checked("GET", f"/train/params/{params_hash}?wait_ms={wait_ms}")
        if len(data) % 4:
            raise NodeError(200, f"params body of {len(data)} bytes is not whole f32 values",
                            "/train/params")
        return np.frombuffer(data, dtype="<f4").astype(np.float32, copy=True)

    def submit(self, worker: int, job: Job, loss: float, gradient: np.ndarray) -> None:
        """Sends the gradient of ``job`` (flat, laid out like the params)."""
        g = np.ascontiguousarray(gradient, dtype="<f4").reshape(-1)
        query = urllib.parse.urlencode({"worker": worker, "round": job.round,
                                        "params_hash": job.params_hash, "loss": repr(float(loss))})
        self._checked("POST", f"/train/gradient?{query}", memoryview(g).cast("B").tobytes(),
                      {"Content-Type": "application/octet-stream"})

    def report(self, worker: int, round: int, accuracy: Optional[float] = None,
               loss: Optional[float] = None) -> None:
        """Reports evaluation metrics of the params after ``round`` (shown in /status)."""
        body = json.dumps({"worker": worker, "round": round, "accuracy": accuracy, "loss": loss})
        self._checked("POST", "/train/report", body.encode(), {"Content-Type": "application/json"})

    def checkpoint(self) -> bytes:
        """The committed params the node holds, as a safetensors file."""
        return self._checked("GET", "/train/checkpoint")[2]


def wait_until(check: Any, timeout: float, what: str, every: float = 0.2) -> Any:
    """Calls ``check`` until it returns something truthy; raises TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (NodeUnreachable, NodeError) as e:
            last = e
        time.sleep(every)
    raise TimeoutError(f"{what} not within {timeout} s (last: {last!r})")


def flat_size(layout: Sequence[Tuple[str, Sequence[int]]]) -> int:
    """Values in a layout."""
    return int(sum(int(np.prod(shape)) if len(shape) else 1 for _, shape in layout))
