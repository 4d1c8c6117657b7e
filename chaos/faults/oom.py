"""oom: the server runs out of memory for a while: ``maxmemory`` set just above what it uses, with
``noeviction``, so once the headroom fills writes fail with OOM while reads go on. Reverted by
restoring both settings. On a cluster, every primary runs out of memory (each from its own usage)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from chaos.faults.base import FaultBase, FaultParams, FaultTarget, probe
from chaos.faults.registry import register_fault

if TYPE_CHECKING:
    import redis


class OomParams(FaultParams):
    name: Literal["oom"]
    duration_s: float = Field(2.0, gt=0, description="How long the memory limit lasts.")
    headroom_bytes: int = Field(
        65536, ge=0, description="maxmemory is set this far above used_memory: writes fail once it fills."
    )


@register_fault(OomParams)
class Oom(FaultBase):
    name: ClassVar[str] = "oom"
    params: OomParams

    def __init__(self, params: OomParams, target: FaultTarget) -> None:
        super().__init__(params, target)
        self.hold_s = params.duration_s
        self.saved: list[tuple[redis.Redis, dict[str, str]]] = []  # each node and what to restore there

    @staticmethod
    def _settings(admin: redis.Redis) -> dict[str, str]:
        got = {**admin.config_get("maxmemory"), **admin.config_get("maxmemory-policy")}
        return {str(k): str(v) for k, v in got.items()}

    def check(self) -> None:
        for admin in self.target.node_admins():
            self._check(admin)

    def _check(self, admin: redis.Redis) -> None:
        settings = probe("CONFIG GET", lambda: self._settings(admin))
        probe("CONFIG SET", lambda: admin.config_set("maxmemory", settings["maxmemory"]))

    def inject(self) -> dict[str, Any]:
        nodes: list[dict[str, Any]] = []
        for admin in self.target.node_admins():
            settings = self._settings(admin)
            self.saved.append((admin, settings))
            used = int(admin.info("memory")["used_memory"])
            admin.config_set("maxmemory-policy", "noeviction")
            limit = used + self.params.headroom_bytes
            admin.config_set("maxmemory", limit)
            if self.took_effect is None:
                self.took_effect = time.monotonic()
            port = admin.connection_pool.connection_kwargs.get("port")
            nodes.append({"port": port, "used_memory": used, "maxmemory": limit, "restores": settings})
        if len(nodes) == 1:
            return {k: v for k, v in nodes[0].items() if k != "port"}
        total = {k: sum(int(n[k]) for n in nodes) for k in ("used_memory", "maxmemory")}
        return {**total, "nodes": nodes}  # a cluster: the primaries' sums, and each primary

    def revert(self) -> None:
        saved, self.saved = self.saved, []
        for admin, settings in saved:
            admin.config_set("maxmemory", settings["maxmemory"])
            admin.config_set("maxmemory-policy", settings["maxmemory-policy"])
