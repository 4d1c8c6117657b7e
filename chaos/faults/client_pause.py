"""client_pause: the server stops serving clients for a while (``CLIENT PAUSE``), as during a failover
or maintenance.

``WRITE`` mode is one ``CLIENT PAUSE <pause_ms> WRITE``, reverted with ``CLIENT UNPAUSE``.

``ALL`` mode cannot be reverted that way: during a ``CLIENT PAUSE ... ALL`` the server holds every
command of every normal client, ``CLIENT UNPAUSE`` and ``CLIENT KILL`` included (seen on Redis 7.0:
an UNPAUSE sent 0.1 s into a 5 s pause returned after 5 s). So a long ``ALL`` pause is a chain of
slices of at most :data:`SLICE_MS`, sent on a connection of its own, with the next slice always
queued behind the running one: when a slice ends, the server runs the queued ``CLIENT PAUSE``
before the clients held behind it, so the chain has no gap. Reverting closes that connection; the
server drops what was queued on it and the pause ends with the running slice, within
:data:`SLICE_MS` (plus the server's own timer granularity, about 0.1 s at ``hz 10``).

On a cluster, every primary is paused (each ALL pause a chain of its own, all started together).
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import gevent
from pydantic import Field

from chaos.faults.base import FaultBase, FaultParams, FaultTarget, probe
from chaos.faults.registry import register_fault
from targets.greenlets import describe, spawn_reported, stop

if TYPE_CHECKING:
    import redis

SLICE_MS = 500


class ClientPauseParams(FaultParams):
    name: Literal["client_pause"]
    pause_ms: int = Field(1000, ge=1, description="How long clients are paused.")
    mode: Literal["WRITE", "ALL"] = Field("ALL", description="WRITE pauses writes only; ALL every command.")


@register_fault(ClientPauseParams)
class ClientPause(FaultBase):
    name: ClassVar[str] = "client_pause"
    params: ClientPauseParams

    def __init__(self, params: ClientPauseParams, target: FaultTarget) -> None:
        super().__init__(params, target)
        self.hold_s = params.pause_ms / 1000
        self.paused: list[redis.Redis] = []  # WRITE: the nodes to unpause
        self.chains: list[PauseChain] = []  # ALL: one chain of slices per node

    def check(self) -> None:
        for admin in self.target.node_admins():
            probe("CLIENT UNPAUSE", admin.client_unpause)  # harmless when nothing is paused

    def inject(self) -> dict[str, Any]:
        p = self.params
        admins = self.target.node_admins()
        if p.mode == "WRITE":
            for admin in admins:
                admin.client_pause(p.pause_ms, all=False)
                self.paused.append(admin)
            return {"pause_ms": p.pause_ms, "mode": p.mode, "nodes": len(admins)}
        first = min(SLICE_MS, p.pause_ms)
        lengths = [first] + ([min(SLICE_MS, p.pause_ms - first)] if p.pause_ms > first else [])
        self.chains = [PauseChain(admin) for admin in admins]
        for chain in self.chains:  # every node's first slices on their way before any reply is read
            chain.send(lengths)
        for chain in self.chains:
            chain.begin(p.pause_ms)
        return {"pause_ms": p.pause_ms, "mode": p.mode, "slice_ms": SLICE_MS, "nodes": len(admins)}

    def revert(self) -> None:
        paused, self.paused = self.paused, []
        for admin in paused:
            admin.client_unpause()
        chains, self.chains = self.chains, []
        for chain in chains:
            chain.stop()
        broken = [chain.broken for chain in chains if chain.broken is not None]
        if broken:  # reported as the fault's revert error: the pause did not last pause_ms
            raise PauseChainBroken(f"the pause ended early: {'; '.join(broken)}")


class PauseChainBroken(Exception):
    """A chain of ``ALL`` pause slices broke off before ``pause_ms``: the pause ended with the running slice."""


class PauseChain:
    """One node's ``ALL`` pause: slices of at most :data:`SLICE_MS` on a connection of its own, the
    next one always queued behind the running one (see the module's docstring)."""

    def __init__(self, admin: redis.Redis) -> None:
        pool = admin.connection_pool
        # No socket timeout: reading a queued slice's reply waits for the running slice to end.
        self.conn: Any = pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None})
        self.conn.connect()  # explicitly: a Sentinel-managed connection finds the primary only in connect()
        self.queued: deque[int] = deque()
        self.keeper: gevent.Greenlet | None = None
        self.slices = 0
        self.broken: str | None = None  # why the chain broke off early, if it did

    def send(self, lengths: list[int]) -> None:
        self.conn.send_packed_command(self.conn.pack_commands([("CLIENT", "PAUSE", n, "ALL") for n in lengths]))
        self.queued.extend(lengths)

    def begin(self, pause_ms: int) -> None:
        """Wait for the first slice to start; keep the chain going for ``pause_ms`` in the background."""
        self.conn.read_response()
        started = time.monotonic()
        self.slices = 1
        first = self.queued.popleft()
        if self.queued:
            self.keeper = spawn_reported(self._broke, self._keep, started, first, started + pause_ms / 1000)

    def _broke(self, exc: BaseException) -> None:
        """The keeper crashed (e.g. its connection dropped): the pause ends with the running slice."""
        self.broken = f"the chain of pause slices broke off after {self.slices}: {describe(exc)}"

    def _keep(self, started: float, running_ms: int, deadline: float) -> None:
        """Keep one slice queued behind the running one until the pause has lasted ``pause_ms``.

        Each slice starts when the server lifts the one before (slightly late: its timer runs
        every 1/hz s), so the lengths still to send are planned from the measured start times.
        """
        queued = self.queued
        planned_end = started + (running_ms + sum(queued)) / 1000
        while queued:
            left_ms = int((deadline - planned_end) * 1000)
            if len(queued) < 2 and left_ms >= 1:
                self.send([min(SLICE_MS, left_ms)])
                planned_end += queued[-1] / 1000
            self.conn.read_response()  # the next slice has just started
            now = time.monotonic()
            planned_end += now - (started + running_ms / 1000)  # the server's lateness shifts what follows
            started, running_ms = now, queued.popleft()
            self.slices += 1

    def stop(self) -> None:
        """End the keeper (killed and joined, a break it met recorded), then the chain."""
        stop(self.keeper)
        self.keeper = None
        self.conn.disconnect()  # the server drops the queued slices; the running one ends by itself
