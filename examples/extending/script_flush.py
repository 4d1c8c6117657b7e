"""script_flush: the server forgets its Lua scripts (``SCRIPT FLUSH``), as after a restart or a failover
to a replica that never loaded them: the next EVALSHA of every client answers NOSCRIPT.

A fault of your own, outside the pack: one module, registered by its decorator line. The pack's
scheduler times it, logs it, fires its events and opens its window; the fault only acts.
"""

from __future__ import annotations

from functools import partial
from typing import Any, ClassVar, Literal

from pydantic import Field

from chaos.faults import FaultParams, register_fault
from chaos.faults.base import FaultBase, probe


class ScriptFlushParams(FaultParams):
    name: Literal["script_flush"]
    mode: Literal["SYNC", "ASYNC"] = Field("SYNC", description="SYNC: flushed before the reply; ASYNC: after.")


@register_fault(ScriptFlushParams)
class ScriptFlush(FaultBase):
    name: ClassVar[str] = "script_flush"
    params: ScriptFlushParams

    def check(self) -> None:
        """Refused before any load if the target does not allow it (a managed cache may not)."""
        for admin in self.target.node_admins():
            probe("SCRIPT EXISTS", partial(admin.script_exists, "0" * 40))

    def inject(self) -> dict[str, Any]:
        nodes = self.target.node_admins()  # every primary, on a cluster
        for admin in nodes:
            admin.script_flush(self.params.mode)
        return {"nodes": len(nodes), "mode": self.params.mode}
