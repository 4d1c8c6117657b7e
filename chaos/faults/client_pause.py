"""client_pause: the server stops serving clients for a while (``CLIENT PAUSE``), as during a failover
or maintenance.

A pause lasts what it says (1000 ± 10 ms for a 1000 ms pause, measured by a probe of its own in
tests/test_fault_durations.py and tests/test_witness_run.py). What that took, measured on Redis 7.0
(docs/faults.md has the figures):

- **The server ends a pause on a timer tick**, not at its end time: ``serverCron`` runs every
  ``1/hz`` s (100 ms at the default ``hz 10``), so a 1000 ms pause stalled clients 1033-1091 ms.
  During the pause each node's ``hz`` is raised to :data:`PAUSE_HZ` (a tick every 2 ms:
  1000.8-1001.9 ms) and restored at the revert. A target that refuses ``CONFIG SET`` (managed caches) keeps its ``hz``,
  and its pauses end up to one tick late (``details.hz_raised`` says which).
- **``ALL`` mode cannot be reverted by ``CLIENT UNPAUSE``**: during a ``CLIENT PAUSE ... ALL`` the
  server holds every command of every normal client, ``UNPAUSE`` and ``KILL`` included. So an
  ``ALL`` pause is a chain of slices of at most :data:`SLICE_MS`, all sent at once on a connection of
  its own, followed by a ``PING``. The server runs the first slice and holds the rest; when a slice
  ends, the held connection is the first the server serves again, so it starts the next slice before
  any client gets through (the next slice is queued ahead of the clients at every boundary, which a
  slice sent later would not be). The ``PING`` answers when the last slice ends. Each boundary costs
  about a tick, so each slice is :data:`BOUNDARY_MS` shorter than its share.
  An early revert (Ctrl-C) closes that connection: the server drops the slices still held, and the
  pause ends with the running one, within :data:`SLICE_MS` plus a tick (SIGINT during a 30 s pause
  under 50 users: the server answered again 0.24 s after the signal, bench/durations.py).
- ``WRITE`` mode is one ``CLIENT PAUSE <pause_ms> WRITE``; ``CLIENT UNPAUSE`` (not a write) ends it
  early at once.

On a cluster, every primary is paused (each ``ALL`` pause a chain of its own, all started together).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

import gevent
import redis
from pydantic import Field

from chaos.faults.base import FaultBase, FaultParams, FaultTarget, probe
from chaos.faults.registry import register_fault

SLICE_MS = 1000  # the longest ALL slice: an early revert ends the pause within this
BOUNDARY_MS = 1  # what a slice boundary costs at PAUSE_HZ (the next slice starts on the tick after)
PAUSE_HZ = 500  # Redis's highest hz: a paused server checks the pause's end every 2 ms
EARLY_S = 0.05  # a revert this much before the pause's planned end is early (a stop or a Ctrl-C)
END_GRACE_S = 2.0  # how long past its planned end a revert waits for the pause to end


class ClientPauseParams(FaultParams):
    name: Literal["client_pause"]
    pause_ms: int = Field(1000, ge=1, description="How long clients are paused.")
    mode: Literal["WRITE", "ALL"] = Field("ALL", description="WRITE pauses writes only; ALL every command.")


def slices(pause_ms: int) -> list[int]:
    """An ALL pause's slices: at most :data:`SLICE_MS` each, together ``pause_ms`` with their boundaries."""
    count = -(-pause_ms // SLICE_MS)
    base, extra = divmod(pause_ms, count)
    return [max(1, base + (1 if i < extra else 0) - BOUNDARY_MS) for i in range(count)]


@register_fault(ClientPauseParams)
class ClientPause(FaultBase):
    name: ClassVar[str] = "client_pause"
    params: ClientPauseParams

    def __init__(self, params: ClientPauseParams, target: FaultTarget) -> None:
        super().__init__(params, target)
        self.hold_s = params.pause_ms / 1000
        self.paused: list[redis.Redis] = []  # WRITE: the nodes to unpause
        self.chains: list[PauseChain] = []  # ALL: one chain of slices per node
        self.hz: list[tuple[redis.Redis, str]] = []  # each node whose hz was raised, and its own
        self.fast = 0  # nodes that check the pause's end every 2 ms (hz raised, or already that high)

    def check(self) -> None:
        for admin in self.target.node_admins():
            probe("CLIENT UNPAUSE", admin.client_unpause)  # harmless when nothing is paused

    def inject(self) -> dict[str, Any]:
        p = self.params
        admins = self.target.node_admins()
        for admin in admins:
            self._raise_hz(admin)
        details: dict[str, Any] = {"pause_ms": p.pause_ms, "mode": p.mode, "nodes": len(admins)}
        details["hz_raised"] = self.fast == len(admins)
        if p.mode == "WRITE":
            for admin in admins:
                admin.client_pause(p.pause_ms, all=False)
                self.took_effect = self.took_effect or time.monotonic()
                self.paused.append(admin)
            return details
        lengths = slices(p.pause_ms)
        self.chains = [PauseChain(admin) for admin in admins]
        for chain in self.chains:  # every node's slices on their way before any reply is read
            chain.send(lengths)
        for chain in self.chains:
            chain.begin()
        self.took_effect = time.monotonic()
        return {**details, "slices_ms": lengths}

    def _raise_hz(self, admin: redis.Redis) -> None:
        """The node checks the pause's end every 2 ms; a node that refuses CONFIG keeps its own hz."""
        try:
            own = str(admin.config_get("hz")["hz"])
            if int(own) < PAUSE_HZ:
                admin.config_set("hz", PAUSE_HZ)
                self.hz.append((admin, own))
        except (redis.ResponseError, KeyError, ValueError):
            return
        self.fast += 1

    def revert(self) -> None:
        early = self.took_effect is not None and time.monotonic() < self.took_effect + self.hold_s - EARLY_S
        problems = []
        paused, self.paused = self.paused, []
        for admin in paused:
            admin.client_unpause()
        chains, self.chains = self.chains, []
        for chain in chains:
            chain.end(early, (self.took_effect or 0.0) + self.hold_s + END_GRACE_S)
            if chain.broken is not None:  # the pause did not last pause_ms
                problems.append(f"the pause ended early: {chain.broken}")
        raised, self.hz = self.hz, []
        for admin, own in raised:  # after an ALL pause's end (the admin's CONFIG SET waits for it anyway)
            try:
                admin.config_set("hz", own)
            except (redis.RedisError, OSError) as exc:
                problems.append(f"hz not restored to {own}: {exc}")
        if problems:  # reported as the fault's revert error
            raise PauseChainBroken("; ".join(problems))


class PauseChainBroken(Exception):
    """A chain of ``ALL`` pause slices broke off before ``pause_ms`` (the pause ended with the running
    slice), or a node's ``hz`` could not be restored."""


class PauseEndTimeout(Exception):
    """The pause's ``PING`` did not answer by the pause's planned end plus :data:`END_GRACE_S`."""


class PauseChain:
    """One node's ``ALL`` pause: its slices and a ``PING``, sent at once on a connection of its own
    (see the module's docstring)."""

    def __init__(self, admin: redis.Redis) -> None:
        pool = admin.connection_pool
        # No socket timeout: reading a held slice's reply waits for the running slice to end.
        self.conn: Any = pool.connection_class(**{**pool.connection_kwargs, "socket_timeout": None})
        self.conn.connect()  # explicitly: a Sentinel-managed connection finds the primary only in connect()
        self.replies = 0  # still to read: one per slice, then the PING's
        self.broken: str | None = None  # why the chain broke off early, if it did

    def send(self, lengths: list[int]) -> None:
        commands = [("CLIENT", "PAUSE", n, "ALL") for n in lengths] + [("PING",)]
        self.conn.send_packed_command(self.conn.pack_commands(commands))
        self.replies = len(commands)

    def begin(self) -> None:
        """Wait for the first slice to start."""
        self.conn.read_response()
        self.replies -= 1

    def end(self, early: bool, deadline: float) -> None:
        """Early (a stop): close the connection, the server drops the held slices and the running one
        ends by itself. Else wait (until ``deadline``) for the ``PING`` that answers when the last
        slice has ended."""
        try:
            if not early:
                with gevent.Timeout(max(0.1, deadline - time.monotonic()), PauseEndTimeout("no end in sight")):
                    while self.replies:
                        self.conn.read_response()
                        self.replies -= 1
        except (redis.RedisError, OSError, PauseEndTimeout) as exc:
            self.broken = f"the chain of pause slices broke off with {self.replies} replies to come: {exc}"
        finally:
            self.conn.disconnect()
