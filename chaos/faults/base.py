"""What every fault shares: the common profile fields and what a fault may touch.

A fault is a small class with typed params (units in the names) and ``inject()`` /
``revert()``. Scheduling, jitter, logging and event firing live in the scheduler, never here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # the profile schema imports this module: keep it free of runtime imports
    import redis

    from scenarios.run import PoolResetResult


class FaultParams(BaseModel):
    """Fields common to every fault entry of a profile, decoded before the fault's own."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str = Field(description="Which fault (a key of the fault registry).")
    weight: float = Field(1.0, ge=0, description="Relative chance of this fault at each tick of the schedule.")


@dataclass(frozen=True)
class FaultTarget:
    """Everything a fault may touch, handed to it by the scheduler.

    :param admin: the pack's own admin connection (never tagged as traffic, never killed)
    :param traffic_tag: prefix of the ``CLIENT SETNAME`` of every traffic connection of this run
    :param reset_pools: disconnects every user's pool (in-use connections included) on every node;
        takes the fault's id, so that workers open its window at the moment they reset
    :param fault_id: the id of the fault being run (set by the scheduler for each fault)
    """

    admin: redis.Redis
    traffic_tag: str
    reset_pools: Callable[[int], PoolResetResult]
    fault_id: int = 0


class Fault(Protocol):
    """A fault: ``inject()`` returns details for the report; ``revert()`` undoes any lasting change."""

    name: ClassVar[str]

    def inject(self) -> dict[str, Any]: ...

    def revert(self) -> None: ...
