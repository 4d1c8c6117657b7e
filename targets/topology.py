"""Embedded topologies the pack starts from a profile, all on loopback, all stopped by PID.

- ``embedded``: one ``redis-server``.
- ``embedded-sentinel``: a primary, one replica and three sentinels (quorum 2) monitoring them
  as service ``rr``; clients find the primary through the sentinels (``sentinel://`` URL).
- ``embedded-cluster``: a Redis Cluster of three primaries with one replica each; clients discover
  it from any node (``cluster://`` URL listing them all).

Faults that crash, restart or fail over servers (``server_restart``, ``failover``) act on the
topology through :class:`Topology`, never on processes of their own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from targets.embedded import EmbeddedRedis, EmbeddedRedisError, free_port

SERVICE = "rr"
# Sentinels call the primary down after this long without an answer. Not 1 s: after a switch, a
# sentinel reconnects to the new primary only once 1 s has passed since it last tried the old one
# (Redis 7.0), yet counts the new primary's silence from the switch; with 1 s it sometimes called the
# new primary down and failed over again, to the restarted, empty old primary.
DOWN_AFTER_MS = 3000
FAILOVER_TIMEOUT_MS = 5000
TILT_PERIOD_S = 30  # a sentinel whose timer stalled over 2 s does nothing for this long (TILT mode)
CLUSTER_NODE_TIMEOUT_MS = 1000  # cluster nodes call a peer failing after this long without an answer
CLUSTER_SLOTS = 16384


class EmbeddedSentinel(EmbeddedRedis):
    """A ``redis-server --sentinel`` monitoring one primary; its settings live in a config file it rewrites."""

    def __init__(self, primary: EmbeddedRedis, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.primary = primary

    def temp_root(self) -> str | None:
        # A sentinel rewrites and fsyncs its config file in its main thread on every change, a
        # failover above all: a disk that stalls it over 2 s puts it in TILT mode, where it does
        # nothing for 30 s. The file is tiny: memory-backed /dev/shm, where there is one.
        return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None

    def command_args(self) -> list[str]:
        assert self.dir is not None
        conf = self.dir / "sentinel.conf"
        if not conf.exists():  # on a restart the sentinel keeps what it learnt
            conf.write_text(
                f"port {self.port}\nbind {self.host}\ndir {self.dir}\n"
                f"sentinel monitor {SERVICE} {self.primary.host} {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
        return [str(conf), "--sentinel"]


def _client(host: str, port: int) -> redis.Redis:
    return redis.Redis(host=host, port=port, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))


def role(server: EmbeddedRedis) -> str:
    """``master`` or ``slave``, as the server itself says."""
    with _client(server.host, server.port) as client:
        return str(client.info("replication")["role"])


def link_up(replica: EmbeddedRedis) -> bool:
    """Whether a replica's link to its primary is up (it is in sync)."""
    with _client(replica.host, replica.port) as client:
        return bool(client.info("replication").get("master_link_status") == "up")


def wait_for(condition_name: str, check: object, timeout_s: float, every_s: float = 0.05) -> None:
    """Poll ``check()`` until it is true, within ``timeout_s``; errors count as not yet."""
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():
                return
        time.sleep(every_s)
    raise EmbeddedRedisError(f"timed out after {timeout_s:.0f}s waiting for {condition_name}")


class Topology:
    """Servers the pack started and manages: ``url`` is what clients (and the admin) connect to."""

    kind = "embedded"

    def __init__(self, persistence: str = "none") -> None:
        self.persistence = persistence
        self.servers: list[EmbeddedRedis] = []  # data nodes
        self.sentinels: list[EmbeddedSentinel] = []

    @property
    def url(self) -> str:
        return self.servers[0].url

    @property
    def pids(self) -> list[int]:
        return [s.pid for s in (*self.servers, *self.sentinels) if s.pid is not None]

    def label(self) -> str:
        return f"embedded redis-server (pid {self.servers[0].pid}, {self.url})"

    def start(self) -> Topology:
        try:
            self.servers.append(EmbeddedRedis(persistence=self.persistence).start())
        except BaseException:
            self.stop()
            raise
        return self

    def primary(self) -> EmbeddedRedis:
        """The data node serving writes now."""
        return self.servers[0]

    def node(self, role: str) -> EmbeddedRedis:
        """``primary`` or ``replica`` (the first data node that is not the primary)."""
        primary = self.primary()
        if role == "primary":
            return primary
        for server in self.servers:
            if server is not primary:
                return server
        raise EmbeddedRedisError(f"the {self.kind} topology has no {role}")

    def settled(self) -> bool:
        """Whether a replica is in sync and known as one (an error: not yet; always, for a lone server)."""
        try:
            return self._settled()
        except (redis.RedisError, OSError):
            return False

    def _settled(self) -> bool:
        return True

    def tilted(self) -> bool:
        """Whether a sentinel is in TILT mode now (only sentinels have one)."""
        return False

    def stop(self) -> None:
        for server in (*self.sentinels, *self.servers):
            server.stop()


class SentinelTopology(Topology):
    kind = "embedded-sentinel"

    @property
    def url(self) -> str:
        hosts = ",".join(f"{s.host}:{s.port}" for s in self.sentinels)
        return f"sentinel://{hosts}/{SERVICE}"

    def label(self) -> str:
        return f"embedded sentinel topology ({len(self.servers)} servers, {len(self.sentinels)} sentinels, {self.url})"

    def start(self, timeout_s: float = 30.0) -> SentinelTopology:
        try:
            primary = EmbeddedRedis(persistence=self.persistence).start()
            self.servers.append(primary)
            replica = EmbeddedRedis(
                persistence=self.persistence, extra_args=("--replicaof", primary.host, str(primary.port))
            ).start()
            self.servers.append(replica)
            wait_for("the replica to sync", lambda: link_up(replica), timeout_s)
            for _ in range(3):
                self.sentinels.append(EmbeddedSentinel(primary).start())
            wait_for("the sentinels to find the replica and each other", self._sentinels_ready, timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _sentinels_ready(self) -> bool:
        for sentinel in self.sentinels:
            with _client(sentinel.host, sentinel.port) as client:
                master = client.sentinel_master(SERVICE)
            if int(master.get("num-slaves", 0)) < 1 or int(master.get("num-other-sentinels", 0)) < 2:
                return False
        return True

    def primary_address(self) -> tuple[str, int]:
        """Where the sentinels say the primary is (the first sentinel that answers)."""
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError, OSError):
                with _client(sentinel.host, sentinel.port) as client:
                    address = client.sentinel_get_master_addr_by_name(SERVICE)
                if address:
                    return str(address[0]), int(address[1])
        raise EmbeddedRedisError("no sentinel answered")

    def primary(self) -> EmbeddedRedis:
        _, port = self.primary_address()
        for server in self.servers:
            if server.port == port:
                return server
        raise EmbeddedRedisError(f"the sentinels name an unknown primary on port {port}")

    def _settled(self) -> bool:
        """Every sentinel lists a replica, and each replica it lists is one and in sync. Not yet after a
        failover until Sentinel has converted the old primary (10 to 20 s after it is back): a failover
        meanwhile may promote that stale node, and what the current primary took since is lost."""
        for sentinel in self.sentinels:
            with _client(sentinel.host, sentinel.port) as client:
                replicas = client.sentinel_slaves(SERVICE)
            if not replicas or any(
                r.get("flags") != "slave" or r.get("role-reported") != "slave" or r.get("master-link-status") != "ok"
                for r in replicas
            ):
                return False
        return True

    def tilted(self) -> bool:
        """Whether a sentinel is in TILT mode now (it neither fails over nor reconfigures replicas)."""
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError, OSError), _client(sentinel.host, sentinel.port) as client:
                if int(client.info("sentinel").get("sentinel_tilt", 0)):
                    return True
        return False

    def sentinel_client(self) -> redis.Redis:
        sentinel = self.sentinels[0]
        return _client(sentinel.host, sentinel.port)


class EmbeddedClusterNode(EmbeddedRedis):
    """A ``redis-server --cluster-enabled yes``. Its cluster state lives in ``nodes.conf`` in its data
    dir, so a restarted node rejoins with the same identity; its cluster bus gets a free port of its
    own (the default, port + 10000, may be taken or beyond 65535)."""

    def __init__(self, persistence: str = "none", host: str = "127.0.0.1") -> None:
        super().__init__(host, persistence=persistence)
        self.bus_port = 0
        self._bus_for = 0  # the port the bus port was chosen with: a new start attempt takes a new one

    def config_args(self) -> list[str]:
        if self._bus_for != self.port:
            self.bus_port, self._bus_for = free_port(self.host), self.port
        return [
            *super().config_args(),
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS),
            "--cluster-port", str(self.bus_port),
        ]  # fmt: skip


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
        return f"embedded Redis Cluster ({self.shards} primaries, {self.shards} replicas, {self.url})"

    def start(self, timeout_s: float = 30.0) -> ClusterTopology:
        try:
            for _ in range(self.shards * 2):
                self.servers.append(EmbeddedClusterNode(persistence=self.persistence).start())
            self._create(timeout_s)
            wait_for("every cluster node to report cluster_state:ok", self.ready, timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self, timeout_s: float) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise EmbeddedRedisError("redis-cli is not installed (Debian/Ubuntu: 'apt-get install -y redis-tools')")
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
            raise EmbeddedRedisError(f"redis-cli --cluster create did not finish within {timeout_s:.0f}s") from None
        if done.returncode != 0:
            lines = (done.stdout + done.stderr).strip().splitlines()
            raise EmbeddedRedisError(f"redis-cli --cluster create failed: {lines[-1] if lines else done.returncode}")

    def ready(self) -> bool:
        """Every node: cluster_state ok, every slot served, every replica in sync, and the same whole
        cluster in its ``CLUSTER NODES`` (roles travel by gossip: a node may still see a new replica
        as a primary without slots, or a restarted node as failing)."""
        for server in self.servers:
            with _client(server.host, server.port) as client:
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
                with contextlib.suppress(redis.RedisError, OSError), _client(server.host, server.port) as client:
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


TOPOLOGIES: dict[str, type[Topology]] = {
    "embedded": Topology,
    "embedded-sentinel": SentinelTopology,
    "embedded-cluster": ClusterTopology,
}


def start_topology(kind: str, persistence: str = "none") -> Topology:
    """Start the embedded topology a profile's ``target.url`` names."""
    return TOPOLOGIES[kind](persistence).start()
