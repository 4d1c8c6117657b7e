"""oom: the server runs out of memory for a while: ``maxmemory`` set just above what it uses, with
``noeviction``, so once the headroom fills writes fail with OOM while reads go on. Reverted by
restoring both settings."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from chaos.faults.base import FaultBase, FaultParams, FaultTarget, probe


class OomParams(FaultParams):
    name: Literal["oom"]
    duration_s: float = Field(2.0, gt=0, description="How long the memory limit lasts.")
    headroom_bytes: int = Field(
        65536, ge=0, description="maxmemory is set this far above used_memory: writes fail once it fills."
    )


class Oom(FaultBase):
    name: ClassVar[str] = "oom"
    params: OomParams

    def __init__(self, params: OomParams, target: FaultTarget) -> None:
        super().__init__(params, target)
        self.hold_s = params.duration_s
        self.saved: dict[str, str] | None = None

    def _settings(self) -> dict[str, str]:
        admin = self.target.admin
        got = {**admin.config_get("maxmemory"), **admin.config_get("maxmemory-policy")}
        return {str(k): str(v) for k, v in got.items()}

    def check(self) -> None:
        settings = probe("CONFIG GET", self._settings)
        probe("CONFIG SET", lambda: self.target.admin.config_set("maxmemory", settings["maxmemory"]))

    def inject(self) -> dict[str, Any]:
        admin = self.target.admin
        self.saved = self._settings()
        used = int(admin.info("memory")["used_memory"])
        admin.config_set("maxmemory-policy", "noeviction")
        limit = used + self.params.headroom_bytes
        admin.config_set("maxmemory", limit)
        return {"used_memory": used, "maxmemory": limit, "restores": self.saved}

    def revert(self) -> None:
        if self.saved is not None:
            admin = self.target.admin
            admin.config_set("maxmemory", self.saved["maxmemory"])
            admin.config_set("maxmemory-policy", self.saved["maxmemory-policy"])
            self.saved = None
