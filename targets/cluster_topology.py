"""The embedded Redis (or Valkey) Cluster (``embedded-cluster``): three primaries with one replica each, on
loopback, stopped by PID; clients discover it from any node (``cluster://`` URL listing them all)."""

from __future__ import annotations

import contextlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

import redis

from targets.embedded import EmbeddedRedis, EmbeddedRedisError, free_port
from targets.servers import ServerBinaries
from targets.topology import Topology, node_client, wait_for

CLUSTER_NODE_TIMEOUT_MS = 1000  # cluster nodes call a peer failing after this long without an answer
CLUSTER_SLOTS = 16384


class EmbeddedClusterNode(EmbeddedRedis):
    """A ``redis-server --cluster-enabled yes``. Its cluster state lives in ``nodes.conf`` in its data
    dir, so a restarted node rejoins with the same identity; its cluster bus gets a free port of its
    own (the default, port + 10000, may be taken or beyond 65535)."""

    def __init__(
        self, persistence: str = "none", host: str = "127.0.0.1", server: ServerBinaries | None = None
    ) -> None:
        super().__init__(host, persistence=persistence, server=server)
        self.bus_port = 0
        self._bus_for = 0  # the port the bus port was chosen with: a new start attempt takes a new one

    def config_args(self) -> list[str]:
        if self._bus_for != self.port:
            self.bus_port, self._bus_for = free_port(self.host), self.port
        return [
            *super().config_args(),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(CLUSTER_NODE_TIMEOUT_MS),
            "--cluster-port",
            str(self.bus_port),
        ]


@dataclass(frozen=True)
class ClusterNodeView:
    """One node of a ``CLUSTER NODES`` answer."""

    port: int
    node_id: str
    primary: bool
    failed: bool  # flagged ``fail`` (or ``fail?``: suspected) by the node asked
    primary_id: str | None  # a replica's primary
    slots: tuple[tuple[int, int], ...]

    def serves(self, slot: int) -> bool:
        return any(first <= slot <= last for first, last in self.slots)


def parse_cluster_nodes(nodes: dict[str, dict[str, object]]) -> list[ClusterNodeView]:
    """redis-py's parsed ``CLUSTER NODES`` (address -> fields) as :class:`ClusterNodeView` objects."""
    views = []
    for address, fields in nodes.items():
        flags = str(fields["flags"]).split(",")
        slots = []
        for bounds in fields.get("slots") or []:  # type: ignore[attr-defined]
            slots.append((int(bounds[0]), int(bounds[-1])))
        master = str(fields.get("master_id", "-"))
        views.append(
            ClusterNodeView(
                port=int(address.rsplit(":", 1)[1]),
                node_id=str(fields["node_id"]),
                primary="master" in flags,
                failed="fail" in flags or "fail?" in flags,
                primary_id=None if master == "-" else master,
                slots=tuple(slots),
            )
        )
    return views


class ClusterTopology(Topology):
    """A Redis Cluster of three primaries with one replica each, made by ``redis-cli --cluster create``.

    ``primary()`` is the node serving slot 0 now (a failover moves it to its replica); ``node("replica")``
    a replica of that primary. The replicas take over by themselves when a primary fails (after
    :data:`CLUSTER_NODE_TIMEOUT_MS` and an election); a restarted primary rejoins as a replica.
    """

    kind = "embedded-cluster"
    shards = 3

    @property
    def url(self) -> str:
        return "cluster://" + ",".join(f"{s.host}:{s.port}" for s in self.servers)

    def label(self) -> str:
        return f"embedded {self.binaries.product} Cluster ({self.shards} primaries, {self.shards} replicas, {self.url})"

    def start(self, timeout_s: float = 30.0) -> ClusterTopology:
        try:
            for _ in range(self.shards * 2):
                self.servers.append(EmbeddedClusterNode(persistence=self.persistence, server=self.binaries).start())
            self._create(timeout_s)
            wait_for("every cluster node to report cluster_state:ok", self.ready, timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self, timeout_s: float) -> None:
        cli = self.binaries.cli  # valkey-cli, or redis-cli in its stead: the same --cluster create
        if cli is None:
            raise EmbeddedRedisError("redis-cli is not installed (Debian/Ubuntu: 'apt-get install -y redis-tools')")
        name = Path(cli).name
        nodes = [f"{s.host}:{s.port}" for s in self.servers]
        try:
            done = subprocess.run(
                [cli, "--cluster", "create", *nodes, "--cluster-replicas", "1", "--cluster-yes"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise EmbeddedRedisError(f"{name} --cluster create did not finish within {timeout_s:.0f}s") from None
        if done.returncode != 0:
            lines = (done.stdout + done.stderr).strip().splitlines()
            raise EmbeddedRedisError(f"{name} --cluster create failed: {lines[-1] if lines else done.returncode}")

    def ready(self) -> bool:
        """Every node: cluster_state ok, every slot served, every replica in sync, and the same whole
        cluster in its ``CLUSTER NODES`` (roles travel by gossip: a node may still see a new replica
        as a primary without slots, or a restarted node as failing)."""
        for server in self.servers:
            with node_client(server.host, server.port) as client:
                info = client.cluster("INFO")
                replication = client.info("replication")
                views = parse_cluster_nodes(client.cluster("NODES"))
            if (
                info.get("cluster_state") != "ok"
                or int(info.get("cluster_slots_ok", 0)) != CLUSTER_SLOTS
                or (replication.get("role") == "slave" and replication.get("master_link_status") != "up")
                or not self._whole(views)
            ):
                return False
        return True

    def _settled(self) -> bool:
        return self.ready()

    def _whole(self, views: list[ClusterNodeView]) -> bool:
        """Every node known and healthy; ``shards`` primaries serving slots, each with one replica."""
        primaries = sorted(v.node_id for v in views if v.primary and v.slots)
        replicas_of = sorted(str(v.primary_id) for v in views if not v.primary)
        return (
            len(views) == len(self.servers)
            and not any(v.failed for v in views)
            and len(primaries) == self.shards
            and replicas_of == primaries
        )

    def cluster_nodes(self) -> list[ClusterNodeView]:
        """The cluster as the first running node that answers sees it (``CLUSTER NODES``)."""
        for server in self.servers:
            if server.running:
                with contextlib.suppress(redis.RedisError, OSError), node_client(server.host, server.port) as client:
                    return parse_cluster_nodes(client.cluster("NODES"))
        raise EmbeddedRedisError("no cluster node answered")

    def _server(self, port: int) -> EmbeddedRedis:
        for server in self.servers:
            if server.port == port:
                return server
        raise EmbeddedRedisError(f"the cluster names an unknown node on port {port}")

    def primary_address(self, slot: int = 0) -> tuple[str, int]:
        """Where the primary serving ``slot`` is, as the cluster sees it now."""
        for view in self.cluster_nodes():
            if view.primary and not view.failed and view.serves(slot):
                return self.servers[0].host, view.port
        raise EmbeddedRedisError(f"no primary serves slot {slot}")

    def primary(self) -> EmbeddedRedis:
        return self._server(self.primary_address()[1])

    def primaries(self) -> list[EmbeddedRedis]:
        """Every primary serving slots now."""
        return [self._server(v.port) for v in self.cluster_nodes() if v.primary and not v.failed and v.slots]

    def replica_of(self, primary: EmbeddedRedis) -> EmbeddedRedis:
        """A healthy replica of ``primary``."""
        views = self.cluster_nodes()
        ids = {v.port: v.node_id for v in views}
        for view in views:
            if not view.primary and not view.failed and view.primary_id == ids.get(primary.port):
                return self._server(view.port)
        raise EmbeddedRedisError(f"the primary on port {primary.port} has no healthy replica")

    def node(self, role: str) -> EmbeddedRedis:
        primary = self.primary()
        return primary if role == "primary" else self.replica_of(primary)
