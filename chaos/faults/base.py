"""What every fault shares: the common profile fields and what a fault may touch.

A fault is a small class with typed params (units in the names) and ``inject()`` /
``revert()``. Scheduling, jitter, logging and event firing live in the scheduler, never here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import redis
from redis.cluster import RedisCluster

# FaultParams: the fields common to every fault entry of a profile (``name``, ``weight``), decoded
# before the fault's own; a fault's params subclass it, with ``name: Literal["<its name>"]``.
from config.schema import FaultSpec as FaultParams  # noqa: F401  (re-exported for the faults)
from scenarios.run import PoolResetResult
from targets.clients import RedisClient


@dataclass(frozen=True)
class FaultTarget:
    """Everything a fault may touch, handed to it by the scheduler.

    :param admin: the pack's own admin connection (never tagged as traffic, never killed); a cluster
        client on a cluster (reach every primary through :meth:`node_admins`)
    :param traffic_tag: prefix of the ``CLIENT SETNAME`` of every traffic connection of this run
    :param reset_pools: disconnects every user's pool of this node (in-use connections included)
    :param fault_id: the id of the fault being run (set by the scheduler for each fault)
    :param network: the fault proxy between the load generator and Redis (``network`` faults), if any
    :param servers: the embedded topology the pack manages (``server_restart``, ``failover``), if any
    :param own_names: prefixes of the ``CLIENT SETNAME`` of the pack's other connections of this run (its
        admin links on every node, the witness): never a fault's victims
    :param service_url: the base URL of the service under test (the profile's ``service``), if any
    """

    admin: RedisClient
    traffic_tag: str
    reset_pools: Callable[[], PoolResetResult]
    fault_id: int = 0
    network: Any = None
    servers: Any = None
    own_names: tuple[str, ...] = ()
    service_url: str | None = None

    def is_ours(self, client_name: str) -> bool:
        """A connection of this run of the pack (traffic, admin, witness), by its ``CLIENT SETNAME``."""
        return client_name.startswith((self.traffic_tag, *self.own_names))

    def node_admins(self) -> list[redis.Redis]:
        """An admin connection to every primary: the admin itself on a single server; on a cluster,
        its connection to each node serving slots now (the slot map refreshed first: a failover
        may have moved them). Faults that act on "the server" act on each of these."""
        admin = self.admin
        if not isinstance(admin, RedisCluster):
            return [admin]
        admin.nodes_manager.initialize()
        return [admin.get_redis_connection(node) for node in admin.get_primaries()]

    def reconnect_admin(self) -> None:
        """After servers changed roles: the admin finds the primary (or the slot map) again."""
        if isinstance(self.admin, RedisCluster):
            self.admin.nodes_manager.initialize()
        else:
            self.admin.connection_pool.disconnect()


RunsOn = Literal["server", "traffic_nodes"]
"""Where a fault runs. ``server``: once, where the scheduler is (local or master runner), against the
target. ``traffic_nodes``: on every node that makes traffic (the local runner, or each worker), on
that node's own clients; each node opens the fault's window when its own injection returned, and a
master sums the numeric details its workers acknowledge."""


class Running(Protocol):
    """A fault as a node runs it (chaos/lifecycle.py): a fault, or a fault fanned out to the traffic nodes.

    ``inject()`` returns details for the report; ``revert()`` undoes any lasting change.
    ``hold_s`` is how long a sustained fault lasts between the two (0: instantaneous), and
    ``hold_until(begin, t0)`` the monotonic time its revert is due, from when the injection call began
    (``begin``) and returned (``t0``): a fault that knows when it took effect counts from then;
    ``window_closed()`` returns details counted again when the fault's window closes (e.g. the
    connections back by then), merged into the report's;
    ``seen()`` returns what the fault has seen since, in the background (e.g. the failover's watcher: the
    promotion, then the demotion): its own record, read when the window closes and again when the test
    ends, merged into the report's (the details ``inject()`` returned are never changed after);
    ``close()`` ends what the fault still runs in the background after ``revert()`` (killed and
    joined: e.g. the failover's watcher), called by the scheduler's stop for every fault it ran.
    """

    hold_s: float
    took_effect: float | None

    def inject(self) -> dict[str, Any]: ...

    def hold_until(self, begin: float, t0: float) -> float: ...

    def revert(self) -> None: ...

    def window_closed(self) -> dict[str, Any]: ...

    def seen(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class Fault(Running, Protocol):
    """A fault of the registry: what it runs (:class:`Running`), and

    ``check()`` probes, harmlessly, that the target allows the commands the fault needs;
    ``runs_on`` says where the scheduler has it run (see :data:`RunsOn`);
    ``speaks_resp``: it writes Redis protocol frames of its own to the clients through the built-in fault
    proxy, which then reads RESP on every connection (its RESP-aware mode).
    """

    name: ClassVar[str]
    runs_on: ClassVar[RunsOn]
    speaks_resp: ClassVar[bool]

    def check(self) -> None: ...


class FaultBase:
    """Defaults for a fault: runs on the server side, instantaneous, nothing to revert, nothing to check.

    A sustained fault sets ``took_effect`` (``time.monotonic()``) in ``inject()`` at the moment its
    change reached the target: it is reverted ``hold_s`` after that, not after ``inject()`` returned
    (which may be later: a crash waits for the process to exit), so it lasts what it says.
    """

    name: ClassVar[str]
    runs_on: ClassVar[RunsOn] = "server"
    speaks_resp: ClassVar[bool] = False
    hold_s: float = 0.0
    took_effect: float | None = None

    def __init__(self, params: Any, target: FaultTarget) -> None:
        self.params = params
        self.target = target

    def hold_until(self, begin: float, t0: float) -> float:
        """When the revert is due: ``hold_s`` after the fault took effect (else after ``t0``)."""
        return (t0 if self.took_effect is None else self.took_effect) + self.hold_s

    def check(self) -> None:
        """Nothing needed from the target."""

    def revert(self) -> None:
        """Nothing lasts."""

    def window_closed(self) -> dict[str, Any]:
        """Nothing to count again when the window closes."""
        return {}

    def seen(self) -> dict[str, Any]:
        """Nothing watched in the background."""
        return {}

    def close(self) -> None:
        """Nothing runs in the background."""


class CommandRefused(Exception):
    """The target refused a command a fault needs (renamed, disabled, or not allowed by ACL)."""

    def __init__(self, command: str, reason: str) -> None:
        super().__init__(f"{command} refused: {reason}")
        self.command = command


class MissingPrerequisite(Exception):
    """What a fault needs on this machine is missing (an executable, an environment variable): found by
    ``check()`` before the test. ``str()`` is one line naming what is missing."""


def probe(command: str, call: Callable[[], Any]) -> Any:
    """Run a harmless command a fault depends on; raise :class:`CommandRefused` if the target says no."""
    try:
        return call()
    except redis.ResponseError as exc:
        raise CommandRefused(command, str(exc)) from None
