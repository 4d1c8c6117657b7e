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
    from targets.clients import RedisClient


class FaultParams(BaseModel):
    """Fields common to every fault entry of a profile, decoded before the fault's own."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    name: str = Field(description="Which fault (a key of the fault registry).")
    weight: float = Field(1.0, ge=0, description="Relative chance of this fault at each tick of the schedule.")


@dataclass(frozen=True)
class FaultTarget:
    """Everything a fault may touch, handed to it by the scheduler.

    :param admin: the pack's own admin connection (never tagged as traffic, never killed); a cluster
        client on a cluster (reach every primary through :meth:`node_admins`)
    :param traffic_tag: prefix of the ``CLIENT SETNAME`` of every traffic connection of this run
    :param reset_pools: disconnects every user's pool (in-use connections included) on every node;
        takes the fault's id, so that workers open its window at the moment they reset
    :param fault_id: the id of the fault being run (set by the scheduler for each fault)
    :param network: the fault proxy between the load generator and Redis (``network`` faults), if any
    :param servers: the embedded topology the pack manages (``server_restart``, ``failover``), if any
    """

    admin: RedisClient
    traffic_tag: str
    reset_pools: Callable[[int], PoolResetResult]
    fault_id: int = 0
    network: Any = None
    servers: Any = None

    def node_admins(self) -> list[redis.Redis]:
        """An admin connection to every primary: the admin itself on a single server; on a cluster,
        its connection to each node serving slots now (the slot map refreshed first: a failover
        may have moved them). Faults that act on "the server" act on each of these."""
        from redis.cluster import RedisCluster  # runtime import: see the TYPE_CHECKING note above

        admin = self.admin
        if not isinstance(admin, RedisCluster):
            return [admin]
        admin.nodes_manager.initialize()
        return [admin.get_redis_connection(node) for node in admin.get_primaries()]

    def reconnect_admin(self) -> None:
        """After servers changed roles: the admin finds the primary (or the slot map) again."""
        from redis.cluster import RedisCluster

        if isinstance(self.admin, RedisCluster):
            self.admin.nodes_manager.initialize()
        else:
            self.admin.connection_pool.disconnect()


class Fault(Protocol):
    """A fault: ``inject()`` returns details for the report; ``revert()`` undoes any lasting change.

    ``hold_s`` is how long a sustained fault lasts between the two (0: instantaneous);
    ``check()`` probes, harmlessly, that the target allows the commands the fault needs.
    """

    name: ClassVar[str]
    hold_s: float

    def check(self) -> None: ...

    def inject(self) -> dict[str, Any]: ...

    def revert(self) -> None: ...


class FaultBase:
    """Defaults for a fault: instantaneous, nothing to revert, nothing to check."""

    name: ClassVar[str]
    hold_s: float = 0.0

    def __init__(self, params: Any, target: FaultTarget) -> None:
        self.params = params
        self.target = target

    def check(self) -> None:
        """Nothing needed from the target."""

    def revert(self) -> None:
        """Nothing lasts."""


class CommandRefused(Exception):
    """The target refused a command a fault needs (renamed, disabled, or not allowed by ACL)."""

    def __init__(self, command: str, reason: str) -> None:
        super().__init__(f"{command} refused: {reason}")
        self.command = command


def probe(command: str, call: Callable[[], Any]) -> Any:
    """Run a harmless command a fault depends on; raise :class:`CommandRefused` if the target says no."""
    import redis  # runtime import: this module stays free of it for the profile schema

    try:
        return call()
    except redis.ResponseError as exc:
        raise CommandRefused(command, str(exc)) from None
