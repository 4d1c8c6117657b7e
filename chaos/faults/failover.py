"""failover: a primary of an embedded sentinel or cluster topology is replaced by its replica.

``sentinel_failover`` asks a sentinel (``SENTINEL FAILOVER``), as a planned switch-over does;
``cluster_failover`` asks a replica of one cluster primary (the one serving slot 0) to take over
(``CLUSTER FAILOVER``: planned, the two agree on the replication offset first);
``kill_primary`` crashes the primary (``kill -9``) and lets the sentinels, or the other cluster
nodes, notice and promote the replica, as an unplanned one does; the old primary is started
again after ``down_s`` and rejoins as a replica. Clients follow the new primary through redis-py's
Sentinel or cluster client, so the report shows how long *their* client takes; the ledger check
shows what asynchronous replication lost.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, ClassVar, Literal

import gevent
import gevent.event
import redis
from pydantic import Field

from chaos.faults.base import CommandRefused, FaultBase, FaultParams, FaultTarget
from chaos.faults.registry import register_fault
from chaos.faults.server_restart import managed_servers
from targets.cluster_topology import ClusterTopology
from targets.embedded import EmbeddedRedis
from targets.greenlets import describe, spawn_reported, stop
from targets.topology import SERVICE, TILT_PERIOD_S, SentinelTopology, role

# Sentinel converts a master that should be a replica within about 20 s (it asks each replica for INFO
# every 10 s, then waits for 8 s of the same role); TILT mode holds it back up to 30 s more.
DEMOTION_WATCH_S = 20.0 + TILT_PERIOD_S


class FailoverNotDone(Exception):
    """No replica was promoted within ``promote_timeout_s`` (the revert reports it)."""


class FailoverParams(FaultParams):
    name: Literal["failover"]
    method: Literal["sentinel_failover", "cluster_failover", "kill_primary"] = Field(
        "sentinel_failover",
        description="sentinel_failover: SENTINEL FAILOVER (embedded-sentinel); cluster_failover: CLUSTER FAILOVER "
        "on a replica of one primary (embedded-cluster); kill_primary: kill -9 the primary (either).",
    )
    down_s: float = Field(5.0, ge=0, description="kill_primary: how long the old primary stays down.")
    promote_timeout_s: float = Field(30.0, gt=0, description="How long to watch for the new primary.")


@register_fault(FailoverParams)
class Failover(FaultBase):
    name: ClassVar[str] = "failover"
    params: FailoverParams

    def __init__(self, params: FailoverParams, target: FaultTarget) -> None:
        super().__init__(params, target)
        self.hold_s = params.down_s if params.method == "kill_primary" else 0.0
        self.killed: EmbeddedRedis | None = None
        self.promoted = gevent.event.Event()
        self.watched: dict[str, Any] = {}  # the watcher's own record (seen()): the promotion, the demotion
        self.watcher: gevent.Greenlet | None = None  # outlives revert(); ended by close()

    def _topology(self) -> SentinelTopology | ClusterTopology:
        topology = managed_servers(self.target, self.name)
        method = self.params.method
        if isinstance(topology, ClusterTopology):
            if method == "sentinel_failover":
                raise CommandRefused(
                    self.name,
                    "method sentinel_failover needs target.url: embedded-sentinel "
                    "(on embedded-cluster: cluster_failover or kill_primary)",
                )
        elif isinstance(topology, SentinelTopology):
            if method == "cluster_failover":
                raise CommandRefused(self.name, "method cluster_failover needs target.url: embedded-cluster")
        else:
            raise CommandRefused(self.name, "needs target.url: embedded-sentinel or embedded-cluster")
        return topology

    def check(self) -> None:
        self._topology().primary_address()

    def inject(self) -> dict[str, Any]:
        topology = self._topology()
        old = topology.primary()
        details = {"method": self.params.method, "old_primary_port": old.port}
        # False: no replica known in sync (e.g. a previous failover's old primary not yet converted), so
        # the node promoted may be stale and writes since then lost. The scheduler logs the details.
        details["replica_in_sync"] = topology.settled()
        if self.params.method == "kill_primary":
            self.killed = old
            self.took_effect = time.monotonic()  # down_s counts from the kill
            old.kill(hard=True)
        elif isinstance(topology, ClusterTopology):  # cluster_failover (checked against the topology)
            replica = topology.replica_of(old)
            details["replica_port"] = replica.port
            with redis.Redis(host=replica.host, port=replica.port, socket_timeout=5) as client:
                client.cluster("FAILOVER")
        else:  # sentinel_failover
            with topology.sentinel_client() as sentinel:
                sentinel.sentinel_failover(SERVICE)
        # The watcher records the replica promoted, then the old primary demoted, in its own record (seen()):
        # it goes on after revert(), until it has seen both or close() ends it.
        self.watched = {}
        self.watcher = spawn_reported(self._watch_crashed, self._watch, topology, old, time.monotonic())
        return details

    def _watch_crashed(self, exc: BaseException) -> None:
        """The watcher crashed: say so in its record (and in revert's error, before any promotion)."""
        self.watched["watch_error"] = describe(exc)
        self.promoted.set()  # revert() need not wait out promote_timeout_s

    def _watch(self, topology: SentinelTopology | ClusterTopology, old: EmbeddedRedis, since: float) -> None:
        """Record when the sentinels (or the cluster, for the old primary's slots) name the new primary,
        then when the old one is demoted to replica (after a planned Sentinel failover it serves writes
        until then, Sentinel converting it only once it has reported itself a master for a while:
        writes there are lost when it resyncs). ``sentinel_tilt`` records a sentinel seen in TILT mode
        meanwhile: it then neither fails over nor converts the old primary, for 30 s."""
        details = self.watched
        next_tilt_check = since

        def watch_tilt() -> None:
            nonlocal next_tilt_check
            if time.monotonic() >= next_tilt_check:
                next_tilt_check = time.monotonic() + 1.0
                if topology.tilted():
                    details["sentinel_tilt"] = True

        deadline = since + self.params.promote_timeout_s
        while time.monotonic() < deadline and "promoted_after_s" not in details:
            watch_tilt()
            with contextlib.suppress(Exception):
                _, port = topology.primary_address()
                if port != old.port:
                    details["new_primary_port"] = port
                    details["promoted_after_s"] = round(time.monotonic() - since, 3)
                    self.promoted.set()
            gevent.sleep(0.05)
        self.promoted.set()
        deadline = time.monotonic() + DEMOTION_WATCH_S
        while time.monotonic() < deadline:
            watch_tilt()
            with contextlib.suppress(Exception):
                if role(old) == "slave":
                    details["old_primary_demoted_after_s"] = round(time.monotonic() - since, 3)
                    return
            gevent.sleep(0.1)

    def revert(self) -> None:
        # The fault lasts until the replica is promoted; the watcher goes on alone.
        self.promoted.wait(timeout=self.params.promote_timeout_s)
        promoted = "promoted_after_s" in self.watched
        if self.killed is not None:
            self.killed.restart()  # the sentinels (the cluster) turn it into a replica of the new primary
            self.killed = None
        # The pack's admin connection may still point at the old primary: find the primary again.
        self.target.reconnect_admin()
        if not promoted:
            why = " (a sentinel was in TILT mode)" if self.watched.get("sentinel_tilt") else ""
            if "watch_error" in self.watched:
                why += f" (the watcher crashed: {self.watched['watch_error']})"
            raise FailoverNotDone(f"no new primary within promote_timeout_s={self.params.promote_timeout_s:g}{why}")

    def seen(self) -> dict[str, Any]:
        """What the watcher has recorded so far (a copy)."""
        return dict(self.watched)

    def close(self) -> None:
        """End the watcher, killed and joined (the scheduler's stop, at the end of the test): what it has
        not seen by then (a demotion, TILT mode) is missing from its record."""
        stop(self.watcher)
        self.watcher = None
