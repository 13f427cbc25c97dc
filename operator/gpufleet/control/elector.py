"""The leader election's I/O: read the Lease, write what `Election` decides, on a thread.

One daemon thread per operator. Every `retry_period` (candidates add up to 20 % jitter, as
client-go does, so that standbys do not move in step) it reads the Lease, lets the
election decide, and creates or replaces it with the resourceVersion read. The loop asks
`may_write()` before each batch of writes; that answer turns false by the clock alone, so a
leader whose API server stopped answering stops writing even while a request hangs.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from gpufleet.control.leader import (
    Election,
    ElectionConfig,
    LeaseRecord,
    Status,
    lease_body,
    record_from_lease,
)

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class NotLeaderError(Exception):
    """This replica may not write now: it does not lead, or its renew deadline has passed."""


class LeaderElector:
    def __init__(
        self,
        api_client: Any,
        config: ElectionConfig,
        *,
        on_change: Callable[[bool], None] | None = None,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
    ) -> None:
        self.api_client = api_client
        self.config = config
        self.election = Election(config)
        self.on_change = on_change
        self.clock = clock
        self.wall = wall
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._was_leading = False
        self.transitions_seen = 0  # times this replica became leader

    # -- what the operator asks ---------------------------------------------------------
    def may_write(self) -> bool:
        with self._lock:
            return self.election.may_write(self.clock())

    def check(self) -> None:
        if not self.may_write():
            raise NotLeaderError(f"{self.config.identity} does not hold the lease now")

    def status(self) -> Status:
        with self._lock:
            return self.election.status(self.clock())

    # -- the thread ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gpufleet-leader", daemon=True)
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.config.retry_period + 6)
        if release:
            self._release()
        self._notify()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - the election must outlive any one failure
                log.exception("leader election step failed")
            with self._lock:
                leading = self.election.leading
            period = self.config.retry_period
            # Jitter only spreads standbys' retries apart; nothing secret depends on it.
            jitter = 1 + 0.2 * random.random()  # nosec B311
            self._stop.wait(period if leading else period * jitter)

    def step(self) -> None:
        """One read, and the write it calls for."""
        try:
            record = self._read()
        except Exception as exc:  # noqa: BLE001 - timeouts, resets, refusals: all a failed read
            log.info("could not read the lease %s: %s", self.config.name, exc)
            with self._lock:
                self.election.failed(self.clock())
            self._notify()
            return
        with self._lock:
            self.election.observe(record, self.clock())
            want = self.election.attempt(self.clock(), self.wall())
        if want is not None:
            sent = self.clock()
            try:
                written = self._write(want, create=record is None)
            except Exception as exc:  # noqa: BLE001 - as for the read
                status = getattr(exc, "status", None)
                if status != 409:  # 409: another candidate won the race; nothing to report
                    log.info("could not write the lease %s: %s", self.config.name, exc)
                with self._lock:
                    self.election.failed(self.clock())
            else:
                with self._lock:
                    self.election.succeeded(written, sent)
        else:
            with self._lock:
                self.election.tick(self.clock())
        self._notify()

    def _notify(self) -> None:
        with self._lock:
            leading = self.election.leading
            holder = self.election.observed.holder if self.election.observed else ""
        if leading == self._was_leading:
            return
        self._was_leading = leading
        if leading:
            self.transitions_seen += 1
            log.info("%s now leads (lease %s)", self.config.identity, self.config.name)
        elif self._stop.is_set():
            log.info("%s stopped leading: shutting down", self.config.identity)
        else:
            log.warning(
                "%s stopped leading (lease held by %r); writes stop",
                self.config.identity,
                holder or "nobody",
            )
        if self.on_change is not None:
            self.on_change(leading)

    # -- the API ------------------------------------------------------------------------
    def _timeout(self) -> tuple[float, float]:
        # A request must not outlast the renew deadline; the clock check guards writes anyway.
        return (min(2.0, self.config.retry_period), self.config.renew_deadline / 2)

    def _read(self) -> LeaseRecord | None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        coord = client.CoordinationV1Api(self.api_client)
        try:
            response = coord.read_namespaced_lease(
                self.config.name,
                self.config.namespace,
                _request_timeout=self._timeout(),
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return record_from_lease(json.loads(response.data))

    def _write(self, record: LeaseRecord, *, create: bool) -> LeaseRecord:
        from kubernetes import client

        coord = client.CoordinationV1Api(self.api_client)
        body = lease_body(self.config, record)
        if create:
            response = coord.create_namespaced_lease(
                self.config.namespace,
                body,
                _request_timeout=self._timeout(),
                _preload_content=False,
            )
        else:
            response = coord.replace_namespaced_lease(
                self.config.name,
                self.config.namespace,
                body,
                _request_timeout=self._timeout(),
                _preload_content=False,
            )
        return record_from_lease(json.loads(response.data))

    def _release(self) -> None:
        with self._lock:
            record = self.election.release(self.wall())
        if record is None:
            return
        try:
            self._write(record, create=False)
            log.info("%s released the lease %s", self.config.identity, self.config.name)
        except Exception as exc:  # noqa: BLE001 - the standby takes over when it lapses
            log.info("could not release the lease: %s", exc)
