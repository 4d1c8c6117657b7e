"""pool_reset: the application drops its own connections (in-use ones included).

This is what a service's "reset my Redis connections" endpoint does: every pool is
disconnected at once, so commands in flight fail and the next ones reconnect. It acts on the
clients, not the server, so it runs on every node that makes traffic (``runs_on``): in a
distributed run each worker resets its own pools and the master sums what they report.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from chaos.faults.base import FaultBase, FaultParams, RunsOn
from chaos.faults.registry import register_fault


class PoolResetParams(FaultParams):
    name: Literal["pool_reset"]


@register_fault(PoolResetParams)
class PoolReset(FaultBase):
    name: ClassVar[str] = "pool_reset"
    runs_on: ClassVar[RunsOn] = "traffic_nodes"

    def inject(self) -> dict[str, Any]:
        """This node's pools: the counts add up over the workers (a master adds ``unacknowledged_workers``)."""
        result = self.target.reset_pools()
        return {"pools": result.pools, "connections_closed": result.connections, "in_use": result.in_use}
