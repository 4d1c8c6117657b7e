"""Embedded topologies the pack starts from a profile, all on loopback, all stopped by PID.

- ``embedded``: one server (``redis-server``, or ``valkey-server``: ``target.server``, targets/servers.py).
- ``embedded-sentinel``: a primary, one replica and three sentinels (quorum 2) monitoring them
  as service ``rr``; clients find the primary through the sentinels (``sentinel://`` URL).
- ``embedded-cluster``: a Redis Cluster of three primaries with one replica each; clients discover
  it from any node (``cluster://`` URL listing them all): targets/cluster_topology.py.

targets/topologies.py maps those names to the classes.

Faults that crash, restart or fail over servers (``server_restart``, ``failover``) act on the
topology through :class:`Topology`, never on processes of their own.
"""

from __future__ import annotations

import contextlib
import os
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from targets.embedded import EmbeddedRedis, EmbeddedRedisError, server_binaries
from targets.servers import ServerBinaries

SERVICE = "rr"
# Sentinels call the primary down after this long without an answer. Not 1 s: after a switch, a
# sentinel reconnects to the new primary only once 1 s has passed since it last tried the old one
# (Redis 7.0), yet counts the new primary's silence from the switch; with 1 s it sometimes called the
# new primary down and failed over again, to the restarted, empty old primary.
DOWN_AFTER_MS = 3000
FAILOVER_TIMEOUT_MS = 5000
TILT_PERIOD_S = 30  # a sentinel whose timer stalled over 2 s does nothing for this long (TILT mode)


class EmbeddedSentinel(EmbeddedRedis):
    """The primary's server binary with ``--sentinel``, monitoring it; its settings live in a config file it
    rewrites."""

    def __init__(self, primary: EmbeddedRedis, host: str = "127.0.0.1") -> None:
        super().__init__(host, server=primary.server)
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


def node_client(host: str, port: int) -> redis.Redis:
    return redis.Redis(host=host, port=port, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))


def role(server: EmbeddedRedis) -> str:
    """``master`` or ``slave``, as the server itself says."""
    with node_client(server.host, server.port) as client:
        return str(client.info("replication")["role"])


def link_up(replica: EmbeddedRedis) -> bool:
    """Whether a replica's link to its primary is up (it is in sync)."""
    with node_client(replica.host, replica.port) as client:
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

    def __init__(self, persistence: str = "none", server: ServerBinaries | None = None) -> None:
        """:param server: what every node runs (targets/servers.py); None: redis-server, found at the start"""
        self.persistence = persistence
        self.server = server
        self.servers: list[EmbeddedRedis] = []  # data nodes
        self.sentinels: list[EmbeddedSentinel] = []

    @property
    def url(self) -> str:
        return self.servers[0].url

    @property
    def pids(self) -> list[int]:
        return [s.pid for s in (*self.servers, *self.sentinels) if s.pid is not None]

    @property
    def binaries(self) -> ServerBinaries:
        """What every node runs (EmbeddedRedisError: not installed, one line saying how to install it)."""
        if self.server is None:
            self.server = server_binaries()
        return self.server

    def label(self) -> str:
        return f"embedded {self.binaries.name} (pid {self.servers[0].pid}, {self.url})"

    def start(self) -> Topology:
        try:
            self.servers.append(EmbeddedRedis(persistence=self.persistence, server=self.binaries).start())
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
        shape = f"{len(self.servers)} servers, {len(self.sentinels)} sentinels"
        return f"embedded {self.binaries.product} sentinel topology ({shape}, {self.url})"

    def start(self, timeout_s: float = 30.0) -> SentinelTopology:
        try:
            primary = EmbeddedRedis(persistence=self.persistence, server=self.binaries).start()
            self.servers.append(primary)
            replica = EmbeddedRedis(
                persistence=self.persistence,
                extra_args=("--replicaof", primary.host, str(primary.port)),
                server=self.binaries,
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
            with node_client(sentinel.host, sentinel.port) as client:
                master = client.sentinel_master(SERVICE)
            if int(master.get("num-slaves", 0)) < 1 or int(master.get("num-other-sentinels", 0)) < 2:
                return False
        return True

    def primary_address(self) -> tuple[str, int]:
        """Where the sentinels say the primary is (the first sentinel that answers)."""
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError, OSError):
                with node_client(sentinel.host, sentinel.port) as client:
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
            with node_client(sentinel.host, sentinel.port) as client:
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
            with contextlib.suppress(redis.RedisError, OSError), node_client(sentinel.host, sentinel.port) as client:
                if int(client.info("sentinel").get("sentinel_tilt", 0)):
                    return True
        return False

    def sentinel_client(self) -> redis.Redis:
        sentinel = self.sentinels[0]
        return node_client(sentinel.host, sentinel.port)
