"""server_restart: a server the pack manages crashes (``kill -9``) or shuts down cleanly, stays down
for ``down_s``, then starts again on the same port from its data dir (its process forked ahead and started
early by its fastest start-up time, so that it answers again ``down_s`` after it stopped): what the profile's
``target.persistence`` kept is what comes back, so the integrity checks show what a crash loses.

On a cluster, ``node: primary`` is the primary serving slot 0 (down longer than the cluster's node
timeout, it is failed over and comes back as a replica), ``node: replica`` one of its replicas."""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

import gevent
from pydantic import Field

from chaos.faults.base import CommandRefused, FaultBase, FaultParams, FaultTarget
from chaos.faults.registry import register_fault

MARGIN_S = 0.008
PREPARE_S = 0.2  # the server's process is forked this long before it is due (forking takes ms under load)
EARLY_S = 0.05  # a revert this much before the hold's end is early: the server starts at once


class ServerRestartParams(FaultParams):
    name: Literal["server_restart"]
    mode: Literal["crash", "shutdown"] = Field(
        "crash", description="crash: SIGKILL, nothing flushed; shutdown: SIGTERM, Redis flushes its AOF and exits."
    )
    down_s: float = Field(
        2.0, ge=0, description="How long the server does not answer: from the kill until it answers again."
    )
    node: Literal["primary", "replica"] = Field(
        "primary", description="Which data node (replica: sentinel or cluster topology)."
    )


def managed_servers(target: FaultTarget, fault: str) -> Any:
    """The embedded topology, or a clear refusal: the pack can only restart servers it started."""
    if target.servers is None:
        raise CommandRefused(
            fault, "needs a server the pack manages: set target.url to embedded, embedded-sentinel or embedded-cluster"
        )
    return target.servers


@register_fault(ServerRestartParams)
class ServerRestart(FaultBase):
    name: ClassVar[str] = "server_restart"
    params: ServerRestartParams

    def __init__(self, params: ServerRestartParams, target: FaultTarget) -> None:
        super().__init__(params, target)
        self.hold_s = params.down_s
        self.server: Any = None

    def check(self) -> None:
        managed_servers(self.target, self.name).node(self.params.node)

    def inject(self) -> dict[str, Any]:
        topology = managed_servers(self.target, self.name)
        self.server = server = topology.node(self.params.node)
        pid = server.pid
        self.took_effect = time.monotonic()
        server.kill(hard=self.params.mode == "crash")
        return {
            "node": self.params.node,
            "port": server.port,
            "pid": pid,
            "persistence": topology.persistence,
            "startup_s": round(server.startup_s, 4),  # its fastest start-up: it is started again this early
        }

    def due(self) -> float:
        """When the server is started again: ``down_s`` after the kill, less its fastest start-up seen,
        so that it answers again ``down_s`` after it stopped (aimed :data:`MARGIN_S` later, so that
        the spread of the start-up makes it last a little longer, not shorter, than asked)."""
        assert self.took_effect is not None and self.server is not None
        return self.took_effect + self.hold_s - self.server.startup_s + MARGIN_S

    def hold_until(self, begin: float, t0: float) -> float:
        """:data:`PREPARE_S` before it is due: the revert forks the server then, and starts it when due."""
        return max(t0, self.due() - PREPARE_S)

    def revert(self) -> None:
        """Fork the server, wait until it is due (never before: gevent timers can fire early), start it.
        A revert before the hold ended (the test stops) starts it at once."""
        server = self.server
        if server is None:
            return
        due = self.due()
        if time.monotonic() >= due - PREPARE_S - EARLY_S:
            server.prepare()
            while (left := due - time.monotonic()) > 0:
                gevent.sleep(left)
        server.restart()
        self.server = None
