"""server_restart: a server the pack manages crashes (``kill -9``) or shuts down cleanly, stays down
for ``down_s``, then starts again on the same port from its data dir: what the profile's
``target.persistence`` kept is what comes back, so the integrity checks show what a crash loses.

On a cluster, ``node: primary`` is the primary serving slot 0 (down longer than the cluster's node
timeout, it is failed over and comes back as a replica), ``node: replica`` one of its replicas."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from chaos.faults.base import CommandRefused, FaultBase, FaultParams, FaultTarget
from chaos.faults.registry import register_fault


class ServerRestartParams(FaultParams):
    name: Literal["server_restart"]
    mode: Literal["crash", "shutdown"] = Field(
        "crash", description="crash: SIGKILL, nothing flushed; shutdown: SIGTERM, Redis flushes its AOF and exits."
    )
    down_s: float = Field(2.0, ge=0, description="How long the server stays down before it is started again.")
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
        server.kill(hard=self.params.mode == "crash")
        return {"node": self.params.node, "port": server.port, "pid": pid, "persistence": topology.persistence}

    def revert(self) -> None:
        if self.server is not None:
            self.server.restart()
            self.server = None
