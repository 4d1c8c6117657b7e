"""The witness: the server's own unavailability, measured apart from the clients (DESIGN.md, "Recovery,
defined").

One probe process per data node (targets/witness_probe.py) PINGs it over a raw socket on a fixed
period, on a clock the load generator's busy gevent hub cannot delay, and reports every stretch
without a timely reply. :meth:`Witness.outage` then says, for a fault window, when the server's
longest such stretch began and how long it lasted.

Gaps are kept in a bounded deque (the newest :data:`MAX_GAPS`): a gap is an outage or a late reply
of the probe itself, so they grow with faults and time, never with requests.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import gevent
import gevent.event
import redis
from redis.sentinel import SentinelConnectionPool

from targets.embedded import die_with_parent
from targets.greenlets import OnCrash, spawn_reported, stop

MAX_GAPS: Final = 4096
READY_TIMEOUT_S: Final = 5.0
STOP_TIMEOUT_S: Final = 3.0


class WitnessError(Exception):
    """The probe could not start (its node refused it, or it printed no READY in time)."""


@dataclass(frozen=True)
class Gap:
    """No timely reply from ``start`` (send time of the first failed or late probe) to ``end`` (the
    first reply after it); both on ``time.monotonic()``."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


TLS_KEYS: Final = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")


@dataclass(frozen=True)
class Node:
    """A data node as the witness reaches it: its address, the admin's credentials and TLS."""

    host: str
    port: int
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: tuple[tuple[str, Any], ...] | None = None  # redis-py ``ssl_*`` arguments; None: plain TCP

    @property
    def key(self) -> str:
        return f"{self.host}:{self.port}"


def node_of(client: redis.Redis) -> Node:
    """The node ``client`` talks to (on a Sentinel-managed client: the primary the sentinels name now),
    with its credentials and TLS."""
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    if isinstance(pool, SentinelConnectionPool):
        host, port = pool.get_master_address()
    else:
        host, port = kwargs.get("host", "127.0.0.1"), kwargs.get("port", 6379)
    tls = None
    if getattr(pool.connection_class, "__name__", "").startswith("SSL") or kwargs.get("ssl"):
        tls = tuple((k, kwargs[k]) for k in TLS_KEYS if kwargs.get(k) is not None)
    return Node(str(host), int(port), kwargs.get("username"), kwargs.get("password"), tls)


class Witness:
    """The probe of one node. :meth:`start`, then :meth:`outage` per window, then :meth:`stop`."""

    def __init__(
        self,
        host: str,
        port: int,
        name: str,
        user: str | None = None,
        password: str | None = None,
        period_ms: float = 2.0,
        late_ms: float = 10.0,
        tls: tuple[tuple[str, Any], ...] | None = None,
        publish: bool = False,
    ) -> None:
        self.host, self.port, self.name = host, port, name
        self.user, self.password, self.tls = user, password, tls
        self.publish = publish  # probe with PUBLISH (held by WRITE pauses too), else PING
        self.period_ms, self.late_ms = period_ms, late_ms
        self.gaps: deque[Gap] = deque(maxlen=MAX_GAPS)
        self.process: subprocess.Popen[bytes] | None = None
        self.reader: gevent.Greenlet | None = None
        self.ready = gevent.event.Event()
        self.crash: str | None = None
        self.down_since: float | None = None  # an outage going on (no reply yet), since then

    def start(self, on_crash: OnCrash | None = None) -> Witness:
        args = [
            sys.executable,
            "-m",
            "targets.witness_probe",
            self.host,
            str(self.port),
            "--name",
            self.name,
            "--period-ms",
            str(self.period_ms),
            "--late-ms",
            str(self.late_ms),
        ]
        if self.user:
            args += ["--user", self.user]
        if self.tls is not None:
            args += ["--tls", json.dumps(dict(self.tls))]
        if self.publish:
            args.append("--publish")
        env = {**os.environ, "RR_WITNESS_PASSWORD": self.password} if self.password is not None else None
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            preexec_fn=die_with_parent,
        )
        self.reader = spawn_reported(on_crash or self._crashed, self._read)
        if not self.ready.wait(READY_TIMEOUT_S):
            self.stop()
            raise WitnessError(f"the witness of {self.host}:{self.port} got no reply within {READY_TIMEOUT_S:g}s")
        return self

    def _crashed(self, exc: BaseException) -> None:
        self.crash = f"{type(exc).__name__}: {exc}"

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:
            kind, *times = raw.decode().split()
            if kind == "READY":
                self.publish = times[1:] == ["PUBLISH"]  # what the probe ended up using
                self.ready.set()
            elif kind == "DOWN":
                self.down_since = float(times[0])
            elif kind == "GAP":
                self.down_since = None
                self.gaps.append(Gap(float(times[0]), float(times[1])))

    def outage(self, window_start: float, window_end: float) -> Gap | None:
        """The longest gap overlapping ``[window_start, window_end]`` (it may begin before the window:
        a server stalls before the fault's injection call returns), or None. An outage still going on
        counts until ``window_end``."""
        overlapping = [g for g in self.gaps if g.end >= window_start and g.start <= window_end]
        if self.down_since is not None and self.down_since <= window_end:
            overlapping.append(Gap(self.down_since, window_end))
        return max(overlapping, key=lambda g: g.seconds, default=None)

    def stop(self) -> None:
        """Close the probe's stdin (it exits between probes), then kill it if it has not (idempotent)."""
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(OSError):
                assert process.stdin is not None
                process.stdin.close()
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while process.poll() is None and time.monotonic() < deadline:
                gevent.sleep(0.02)
            if process.poll() is None:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        stop(self.reader)
        self.reader = None


class Witnesses:
    """The witnesses of a target's data nodes: one per node that has been a primary while they ran.

    :param nodes: the target's primaries now (a Sentinel's primary moves with a failover, a
        cluster's with its slots); :meth:`refresh` starts a witness for each one not yet watched
    :param name: the witnesses' ``CLIENT SETNAME`` (``rrwitness-<run>``)
    :param publish: probe with ``PUBLISH`` (not on a cluster, where a PUBLISH reaches every node)
    """

    def __init__(
        self,
        nodes: Callable[[], list[Node]],
        name: str,
        period_ms: float = 2.0,
        late_ms: float = 10.0,
        on_crash: OnCrash | None = None,
        publish: bool = False,
    ) -> None:
        self.nodes, self.name, self.publish = nodes, name, publish
        self.period_ms, self.late_ms = period_ms, late_ms
        self.on_crash = on_crash
        self.witnesses: dict[str, Witness] = {}
        self.primaries: tuple[str, ...] = ()  # the nodes the clients depend on, as last refreshed

    def refresh(self) -> tuple[str, ...]:
        """Watch every primary of the target now; their keys (``host:port``)."""
        keys = []
        for node in self.nodes():
            if node.key not in self.witnesses:
                self.witnesses[node.key] = Witness(
                    node.host,
                    node.port,
                    self.name,
                    node.user,
                    node.password,
                    self.period_ms,
                    self.late_ms,
                    node.tls,
                    self.publish,
                ).start(self.on_crash)
            keys.append(node.key)
        self.primaries = tuple(keys)
        return self.primaries

    def outage(self, keys: tuple[str, ...], window_start: float, window_end: float) -> Gap | None:
        """The longest gap of the nodes ``keys`` overlapping the window (see :meth:`Witness.outage`)."""
        gaps = [w.outage(window_start, window_end) for k, w in self.witnesses.items() if k in keys]
        return max((g for g in gaps if g is not None), key=lambda g: g.seconds, default=None)

    def close(self) -> None:
        witnesses, self.witnesses = self.witnesses, {}
        for witness in witnesses.values():
            witness.stop()
