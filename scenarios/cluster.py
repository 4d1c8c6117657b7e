"""Redis Cluster clients: redis-py's ``RedisCluster``, instrumented exactly as :class:`InstrumentedRedis` is.

A ``cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]`` URL names startup nodes; the client maps
the slots from them (``CLUSTER SLOTS``), keeps one connection pool per node, and maps again when a
node fails or answers MOVED. Every command is one ``request`` event, a pipeline one request, with
the same names and context as on a single server.

What redis-py 8's cluster client makes of the profile's client options (the pack passes them
all explicitly, and shows what an application would get):

- ``retries``: a command that met ConnectionError, TimeoutError, ClusterDownError or
  SlotNotCoveredError is sent again up to that many times, the slot map refreshed in between.
  redis-py 8.2 sleeps by the backoff between those attempts (asking it once per retry, so the pack
  counts them); 8.1 did not ask the backoff (it sleeps 0.25 s on CLUSTERDOWN only), so on 8.1 a
  cluster command's hidden retries are not seen, as they are not by the application. MULTI/EXEC
  pipelines retry through ``Retry.call_with_retry``, backoff included. The nodes' own connections
  never retry (redis-py gives them ``Retry(NoBackoff(), 0)``).
  ``retries: -1`` (forever) is refused: redis-py's cluster client would not send the command at all.
- ``retry_on_timeout``: the cluster client retries timeouts whatever it says.
- ``health_check_interval_s``: not one of the connection settings ``RedisCluster`` hands its
  nodes: dropped, as it is for an application.
- ``max_connections``: per node.

Hidden retries are counted per backoff asked (:class:`CountingBackoff`); reconnections by every
node connection's connect hook. The client and its pipelines are redis-py's own, wrapped only at the
public ``execute_command`` and ``execute`` (DESIGN.md rule 10).
"""

from __future__ import annotations

from locust.event import EventHook

from typing import Any

import redis
from redis.cluster import ClusterPipeline, RedisCluster
from redis.retry import Retry

from config.schema import ClientOptions
from scenarios.client import (
    ConnectionProbe,
    CountingBackoff,
    Measured,
    retry_errors,
)
from targets.access import Access
from targets.clients import make_backoff, parse_cluster_url


def cluster_kwargs(
    url: str, options: ClientOptions, client_name: str, probe: ConnectionProbe, access: Access | None = None
) -> dict[str, Any]:
    """``RedisCluster`` settings from the profile's client options (see the module's docstring);
    ``access``: credentials and TLS (the URL's own credentials win)."""
    if options.retries < 0:
        raise ValueError("client.retries: -1 (retry forever) does not work with redis-py's cluster client")
    nodes, credentials = parse_cluster_url(url)
    backoff = CountingBackoff(make_backoff(options.backoff), probe)
    kwargs: dict[str, Any] = {
        "startup_nodes": nodes,
        "retry": Retry(backoff, options.retries, supported_errors=retry_errors(options)),
        "socket_timeout": options.socket_timeout_s,
        "socket_connect_timeout": options.socket_connect_timeout_s,
        "socket_keepalive": options.socket_keepalive,
        "client_name": client_name,
        "redis_connect_func": probe.count,  # after RedisCluster's own handshake
        **(access or Access()).kwargs(url),
        **credentials,
    }
    if options.max_connections is not None:
        kwargs["max_connections"] = options.max_connections
    return kwargs


class ClusterPools:
    """The pools of one cluster client (one per node it knows now), seen as one pool: what
    ``PackRun.pools`` counts and ``PackRun.reset_pools`` disconnects."""

    def __init__(self, client: RedisCluster) -> None:
        self.client = client

    def pools(self) -> list[redis.ConnectionPool]:
        return [node.redis_connection.connection_pool for node in self.client.get_nodes() if node.redis_connection]

    def get_connection_count(self) -> list[tuple[int, dict[str, Any]]]:
        idle = used = 0
        for pool in self.pools():
            (free, _), (in_use, _) = pool.get_connection_count()
            idle, used = idle + free, used + in_use
        return [(idle, {}), (used, {})]

    def disconnect(self, inuse_connections: bool = True) -> None:
        for pool in self.pools():
            pool.disconnect(inuse_connections=inuse_connections)


class InstrumentedCluster(Measured, RedisCluster):
    """A ``RedisCluster`` whose every command fires ``request`` (type ``REDIS``, name ``"GET cache"``).

    ``pools`` are its node pools, for the run's pool reset. ``pipeline()`` keeps redis-py's default
    (not transactional: redis-py's own multi-key helpers rely on it); ask ``transaction=True``.
    """

    def __init__(
        self,
        url: str,
        options: ClientOptions,
        client_name: str,
        probe: ConnectionProbe,
        request_event: EventHook,
        label: str,
        user_key: str | int,
        access: Access | None = None,
    ) -> None:
        self.instrument(request_event, label, user_key, probe)
        self._measuring = False  # building the client asks the cluster (COMMAND): set-up, not traffic
        super().__init__(**cluster_kwargs(url, options, client_name, probe, access))
        self._measuring = True
        self.pools = ClusterPools(self)

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if not self._measuring:
            return super().execute_command(*args, **kwargs)
        return self.measure_command(super().execute_command, args, kwargs)

    def execute_unmeasured(self, *args: Any, **kwargs: Any) -> Any:
        """A set-up command, not traffic: no request event."""
        return super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> InstrumentedClusterPipeline:
        return InstrumentedClusterPipeline.measuring(super().pipeline(transaction, shard_hint), self, bool(transaction))


class InstrumentedClusterPipeline(ClusterPipeline):
    """redis-py's cluster pipeline, whose ``execute()`` is one request (``PIPELINE <label>``, or ``EXEC
    <label>`` for a transaction), however many nodes it reaches. In a transaction, the commands redis-py
    runs at once (``WATCH``, ``UNWATCH``, reads between ``WATCH`` and ``multi()``) are requests of their own.
    It is the very pipeline redis-py's ``pipeline()`` built, given this class (:meth:`measuring`); only
    public methods are wrapped, and whether a command runs at once is followed from them."""

    owner: InstrumentedCluster
    atomic: bool
    watching: bool

    @classmethod
    def measuring(cls, pipe: ClusterPipeline, owner: InstrumentedCluster, atomic: bool) -> InstrumentedClusterPipeline:
        pipe.__class__ = cls
        assert isinstance(pipe, cls)
        pipe.owner, pipe.atomic, pipe.watching = owner, atomic, False
        return pipe

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        command = str(args[0]).upper()
        if not self.atomic or not (self.watching or command in IMMEDIATE):
            return super().execute_command(*args, **kwargs)
        return self._immediate(command, super().execute_command, args, kwargs)

    def watch(self, *names: Any) -> Any:
        return self._immediate("WATCH", super().watch, names, {})

    def unwatch(self) -> Any:
        return self._immediate("UNWATCH", super().unwatch, (), {})

    def _immediate(self, command: str, call: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.watching = command != "UNWATCH"
        owner = self.owner
        return owner.measure(owner.request_name(command), 1, False, call, args, kwargs)

    def multi(self) -> None:
        self.watching = False
        super().multi()

    def reset(self) -> None:  # type: ignore[override]  # ClusterPipeline.reset, not the RESET command
        self.watching = False
        super().reset()

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        self.watching = False
        name = self.owner.request_name("EXEC" if self.atomic else "PIPELINE")
        result: list[Any] = self.owner.measure(name, len(self), False, super().execute, (raise_on_error,), {})
        return result


# What a cluster transaction runs at once, not queued (redis-py's TransactionStrategy).
IMMEDIATE = frozenset({"WATCH", "UNWATCH"})
