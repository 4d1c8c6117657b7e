"""client_kill: the server closes client connections (``CLIENT KILL``), as a failover or proxy would.

On a cluster, every primary closes them (the traffic's connections to the nodes serving slots).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from chaos.faults.base import FaultBase, FaultParams, probe
from chaos.faults.registry import register_fault

if TYPE_CHECKING:
    import redis


class ClientKillParams(FaultParams):
    name: Literal["client_kill"]
    scope: Literal["own", "all"] = Field(
        "own",
        description="own: only this run's traffic connections (by CLIENT SETNAME tag); "
        "all: every client of the chosen types except the pack's admin connection.",
    )
    type: Literal["normal", "pubsub", "any"] = Field(
        "any", description="Which connections: normal, pubsub (subscribers), or any of both."
    )
    user: str | None = Field(None, description="Only connections authenticated as this ACL user.")
    addr: str | None = Field(None, description="Only the connection from this ip:port.")
    allow_scope_all: bool = Field(
        False,
        description="Confirms scope: all, which also closes connections that are not this run's "
        "(other applications' clients): without it, scope: all is refused.",
    )

    @model_validator(mode="after")
    def _scope_all_confirmed(self) -> ClientKillParams:
        if self.scope == "all" and not self.allow_scope_all:
            raise ValueError(
                "scope: all closes every client of the server, not only this run's (other applications' "
                "connections too): set allow_scope_all: true on this fault to confirm, or use scope: own"
            )
        return self


@register_fault(ClientKillParams)
class ClientKill(FaultBase):
    name: ClassVar[str] = "client_kill"
    params: ClientKillParams

    def check(self) -> None:
        for admin in self.target.node_admins():
            self._check(admin)

    @staticmethod
    def _check(admin: redis.Redis) -> None:
        probe("CLIENT LIST", admin.client_list)
        probe("CLIENT KILL", lambda: admin.client_kill_filter(_id="999999999999"))  # no such client: kills none

    def _matches(self, client: dict[str, Any]) -> bool:
        p = self.params
        kind = "pubsub" if "P" in str(client.get("flags", "")) or int(client.get("sub", 0) or 0) else "normal"
        return (
            (p.type == "any" or p.type == kind)
            and (p.user is None or client.get("user") == p.user)
            and (p.addr is None or client.get("addr") == p.addr)
            and (p.scope == "all" or str(client.get("name", "")).startswith(self.target.traffic_tag))
        )

    def _killable(self, client: dict[str, Any], pack: str | None) -> bool:
        """Never the pack's own admin links, nor replication links (M: master, S: replica)."""
        flags = str(client.get("flags", ""))
        ours = pack is not None and client.get("name") == pack
        return not ours and "M" not in flags and "S" not in flags and self._matches(client)

    def inject(self) -> dict[str, Any]:
        found = killed = 0
        for admin in self.target.node_admins():
            me = str(admin.client_id())
            pack = admin.connection_pool.connection_kwargs.get("client_name")  # also the pack's other admin links
            ids = [str(c["id"]) for c in admin.client_list() if str(c["id"]) != me and self._killable(c, pack)]
            pipe = admin.pipeline(transaction=False)
            for client_id in ids:
                pipe.client_kill_filter(_id=client_id)
            # A connection that closed between CLIENT LIST and CLIENT KILL counts 0, not an error.
            found += len(ids)
            killed += sum(r for r in pipe.execute(raise_on_error=False) if isinstance(r, int))
        return {"connections_found": found, "connections_killed": killed}
