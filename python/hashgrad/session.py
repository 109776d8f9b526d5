"""A worker's life with its node: register, take a job, fetch its params, send the gradient,
take the next job — and carry on through a node restart (new token, new session) or a round
the cluster moved past (a stale gradient is dropped, the next job taken)."""

from __future__ import annotations

import logging
import time
from typing import Optional

import numpy as np

from .client import Client, Job, Layout, NodeError, NodeUnreachable, Registration

log = logging.getLogger("hashgrad")


class Session:
    """Drives one worker. ``start()`` returns the params of the first job; each ``step(loss,
    gradient)`` sends the gradient of the current job and returns the params of the next
    (None when no job came within ``idle_s``: the cluster stopped)."""

    def __init__(self, client: Client, layout: Layout, initial: np.ndarray, *,
                 idle_s: float = 60.0, retry_s: float = 120.0) -> None:
        self.client = client
        self.layout = layout
        self.initial = np.asarray(initial, dtype=np.float32).reshape(-1)
        self.idle_s = idle_s
        self.retry_s = retry_s
        self.registration: Optional[Registration] = None
        self.job: Optional[Job] = None
        self.params: Optional[np.ndarray] = None
        self.refused = 0

    def _retrying(self, what: str, call):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + self.retry_s
        while True:
            try:
                return call()
            except NodeUnreachable as e:
                error: Exception = e
                self.client.reload_token()
                self.registration = None
            except NodeError as e:
                if e.status == 404 and "worker" in e.reason:
                    self.registration = None
                elif e.status in (401, 403):
                    self.client.reload_token()
                elif e.status != 503:
                    raise
                error = e
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: the node kept refusing for {self.retry_s} s: {error}")
            time.sleep(0.25)

    def register(self) -> Registration:
        """Registers (again) with the node."""
        def call() -> Registration:
            return self.client.register(self.layout, self.initial)
        self.registration = self._retrying("register", call)
        log.info("registered as worker %d (round 0 %s)", self.registration.worker,
                 "created here" if self.registration.created else "already committed")
        return self.registration

    def _next(self, after: int) -> Optional[np.ndarray]:
        deadline = time.monotonic() + self.idle_s
        while time.monotonic() < deadline:
            if self.registration is None:
                self.register()
            job = self._retrying("job", lambda: self.client.job(after, wait_ms=5_000))
            if job is None:
                continue
            try:
                params = self.client.params(job.params_hash)
            except (NodeError, NodeUnreachable) as e:
                log.info("params of round %d not fetched (%s); waiting for the next job", job.round, e)
                continue
            self.job, self.params = job, params
            return params
        return None

    def start(self) -> Optional[np.ndarray]:
        """Registers and returns the params of the first job."""
        self.register()
        return self._next(0)

    def step(self, loss: float, gradient: np.ndarray) -> Optional[np.ndarray]:
        """Sends the current job's gradient and returns the next job's params."""
        job = self.job
        if job is None:
            raise RuntimeError("no job: call start() first")
        if self.registration is None:
            self.register()
        try:
            assert self.registration is not None
            self.client.submit(self.registration.worker, job, loss, gradient)
        except NodeError as e:
            if e.status in (404, 409, 503):
                self.refused += 1
                log.info("gradient of round %d not taken: %s", job.round, e.reason)
                if e.status == 404:
                    self.registration = None
            else:
                raise
        except NodeUnreachable as e:
            self.refused += 1
            log.info("node unreachable while sending round %d: %s", job.round, e)
            self.registration = None
        return self._next(job.round)

    def report(self, accuracy: Optional[float] = None, loss: Optional[float] = None) -> None:
        """Reports metrics of the current params (errors are logged, not raised)."""
        if self.registration is None or self.job is None:
            return
        try:
            self.client.report(self.registration.worker, self.job.round - 1, accuracy, loss)
        except (NodeError, NodeUnreachable) as e:
            log.info("report not taken: %s", e)
