"""What the users of one run share, kept on the Locust ``Environment`` (no module-level state)."""

from __future__ import annotations

from locust.env import Environment

import itertools
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from config.schema import Profile
from targets.access import Access
from targets.clients import RedisClient

_ATTRIBUTE = "redis_resilience_run"
C = TypeVar("C", bound="IntegrityCheck")


class Pools(Protocol):
    """A client's connection pool, or a cluster client's pools (one per node) seen as one."""

    def get_connection_count(self) -> Any: ...

    def disconnect(self, inuse_connections: bool = True) -> None: ...


@dataclass(frozen=True)
class PoolResetResult:
    """What a client-side pool reset touched (on one node, or summed over the workers)."""

    pools: int
    connections: int
    in_use: int


@dataclass
class IntegrityResult:
    """What a workload's end-of-run check found.

    ``acknowledged``/``lost``/``duplicated`` count writes the client saw acknowledged: missing at
    the end, or applied more than once. ``figures`` holds the workload's own counts (a key ending
    in ``_max`` merges by max, the others add).
    """

    acknowledged: int = 0
    lost: int = 0
    duplicated: int = 0
    unacknowledged_applied: int = 0
    figures: dict[str, float] = field(default_factory=dict)

    def add(self, other: IntegrityResult) -> None:
        self.acknowledged += other.acknowledged
        self.lost += other.lost
        self.duplicated += other.duplicated
        self.unacknowledged_applied += other.unacknowledged_applied
        for key, value in other.figures.items():
            if key.endswith("_max"):
                self.figures[key] = max(self.figures.get(key, value), value)
            else:
                self.figures[key] = self.figures.get(key, 0) + value


class IntegrityCheck(Protocol):
    """One workload's check on one node: users register what they did, ``verify`` reads the server."""

    def verify(self, client: RedisClient) -> IntegrityResult: ...


@dataclass
class PackRun:
    """One run of the pack on one node: the profile, the target and what the users registered."""

    profile: Profile
    url: str
    run_id: str
    node: str = "0"  # tells apart the workers of one run: in connection names and keys
    access: Access = field(default_factory=Access)  # the traffic's credentials and TLS
    service_url: str | None = None  # the service the HTTP users call (the profile's service), resolved
    pools: weakref.WeakSet[Pools] = field(default_factory=weakref.WeakSet)
    checks: dict[str, IntegrityCheck] = field(default_factory=dict)
    _user_keys: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def key_prefix(self) -> str:
        """Every key of this run starts with this (and is removed at the end)."""
        return f"{self.profile.workload.key_prefix}:{self.run_id}:"

    @property
    def traffic_tag(self) -> str:
        """Every traffic connection's ``CLIENT SETNAME`` starts with this."""
        return f"rr-{self.run_id}-"

    @property
    def witness_name(self) -> str:
        """The witness's ``CLIENT SETNAME``: named apart from the traffic's tag, like the admin's, so that
        no fault or count of this run's traffic connections takes it for traffic."""
        return f"rrwitness-{self.run_id}"

    @property
    def admin_name(self) -> str:
        return f"rradmin-{self.run_id}-{self.node}"

    @property
    def own_names(self) -> tuple[str, ...]:
        """Name prefixes of the pack's connections besides the traffic's: every node's admin, the witness."""
        return (f"rradmin-{self.run_id}-", self.witness_name)

    def new_user_key(self) -> str:
        """A key for a new user, unique across the nodes of the run."""
        return f"{self.node}-{next(self._user_keys)}"

    def reset_pools(self) -> PoolResetResult:
        """Disconnect every live user pool of this node, in-use connections included."""
        pools = list(self.pools)
        connections = in_use = 0
        for pool in pools:
            (idle_count, _), (used_count, _) = pool.get_connection_count()
            connections += idle_count + used_count
            in_use += used_count
            pool.disconnect(inuse_connections=True)
        return PoolResetResult(pools=len(pools), connections=connections, in_use=in_use)

    def check(self, workload: str, factory: Callable[[], C]) -> C:
        """This node's check of ``workload`` for the current test, created on first use."""
        existing = self.checks.get(workload)
        if existing is None:
            existing = self.checks[workload] = factory()
        return existing  # type: ignore[return-value]

    def verify_integrity(self, client: RedisClient) -> dict[str, IntegrityResult]:
        return {workload: check.verify(client) for workload, check in sorted(self.checks.items())}

    def cleanup_keys(self, client: RedisClient, batch: int = 500) -> int:
        """Remove this run's keys (SCAN + UNLINK under the run prefix; never FLUSHALL). On a cluster
        the client scans every primary and unlinks slot by slot."""
        removed = 0
        keys: list[bytes] = []
        for key in client.scan_iter(match=f"{self.key_prefix}*", count=batch):
            keys.append(key)
            if len(keys) >= batch:
                removed += int(client.unlink(*keys))
                keys.clear()
        if keys:
            removed += int(client.unlink(*keys))
        return removed


def attach(environment: Environment, run: PackRun) -> None:
    setattr(environment, _ATTRIBUTE, run)


def run_of(environment: Environment) -> PackRun:
    run = getattr(environment, _ATTRIBUTE, None)
    if run is None:
        raise RuntimeError(
            "the redis-resilience plugin is not loaded: import chaos.plugin in the locustfile (see locustfile.py)"
        )
    assert isinstance(run, PackRun)
    return run
