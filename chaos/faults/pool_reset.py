"""pool_reset: the application drops its own connections (in-use ones included).

This is what a service's "reset my Redis connections" endpoint does: every pool is
disconnected at once, so commands in flight fail and the next ones reconnect.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from chaos.faults.base import FaultBase, FaultParams


class PoolResetParams(FaultParams):
    name: Literal["pool_reset"]


class PoolReset(FaultBase):
    name: ClassVar[str] = "pool_reset"

    def inject(self) -> dict[str, Any]:
        result = self.target.reset_pools(self.target.fault_id)
        details: dict[str, Any] = {
            "pools": result.pools,
            "connections_closed": result.connections,
            "in_use": result.in_use,
        }
        if result.unacknowledged:
            details["unacknowledged_workers"] = list(result.unacknowledged)
        return details
