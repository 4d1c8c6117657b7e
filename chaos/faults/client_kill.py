"""client_kill: the server closes client connections (``CLIENT KILL``), as a failover or proxy would."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from chaos.faults.base import FaultParams, FaultTarget


class ClientKillParams(FaultParams):
    name: Literal["client_kill"]
    scope: Literal["own", "all"] = Field(
        "own",
        description="own: only this run's traffic connections, pub/sub ones included (by CLIENT SETNAME tag); "
        "all: every normal and pub/sub client except the pack's admin connection.",
    )


class ClientKill:
    name: ClassVar[str] = "client_kill"

    def __init__(self, params: ClientKillParams, target: FaultTarget) -> None:
        self.params = params
        self.target = target

    def inject(self) -> dict[str, Any]:
        admin = self.target.admin
        if self.params.scope == "all":
            killed = sum(int(admin.client_kill_filter(_type=kind, skipme=True)) for kind in ("normal", "pubsub"))
            return {"connections_killed": killed}
        ids = [c["id"] for c in admin.client_list() if str(c.get("name", "")).startswith(self.target.traffic_tag)]
        pipe = admin.pipeline(transaction=False)
        for client_id in ids:
            pipe.client_kill_filter(_id=client_id)
        # A connection that closed between CLIENT LIST and CLIENT KILL counts 0, not an error.
        killed = sum(r for r in pipe.execute(raise_on_error=False) if isinstance(r, int))
        return {"connections_found": len(ids), "connections_killed": killed}

    def revert(self) -> None:
        """Nothing lasts: clients reconnect by themselves."""
