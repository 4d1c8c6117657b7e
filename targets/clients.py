"""URL -> plain redis-py clients and pools: the forms of target URL the pack takes, and the
pack's own (admin) connections. The instrumented traffic clients build on these (scenarios/).

- ``redis://`` / ``rediss://``: a pool from redis-py's own URL parser;
- ``sentinel://[user:password@]HOST:PORT[,HOST:PORT...]/SERVICE``: a pool that follows the primary;
- ``cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]``: a ``RedisCluster`` from startup nodes.
"""

from __future__ import annotations

from typing import Any, TypeAlias
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.backoff import (
    AbstractBackoff,
    ConstantBackoff,
    DecorrelatedJitterBackoff,
    EqualJitterBackoff,
    ExponentialBackoff,
    ExponentialWithJitterBackoff,
    FullJitterBackoff,
    NoBackoff,
)
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from config.hosts import parse_hosts
from config.schema import Backoff
from targets.access import Access

# What the checks and the clean-up read through: the pack's admin client, on a server or a cluster.
RedisClient: TypeAlias = redis.Redis | RedisCluster

# What a Redis call can raise. A pool disconnected under a command in flight makes redis-py
# raise a bare ValueError ("I/O operation on closed file") or OSError: those are failures too.
# The cluster client raises RedisClusterException (not a RedisError) when it cannot map the cluster.
REDIS_CALL_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError, ValueError)


def make_backoff(spec: Backoff) -> AbstractBackoff:
    match spec.kind:
        case "none":
            return NoBackoff()
        case "constant":
            return ConstantBackoff(spec.base_s)
        case "exponential":
            return ExponentialBackoff(cap=spec.cap_s, base=spec.base_s)
        case "exponential_jitter":
            return ExponentialWithJitterBackoff(cap=spec.cap_s, base=spec.base_s)
        case "full_jitter":
            return FullJitterBackoff(cap=spec.cap_s, base=spec.base_s)
        case "equal_jitter":
            return EqualJitterBackoff(cap=spec.cap_s, base=spec.base_s)
        case "decorrelated_jitter":
            return DecorrelatedJitterBackoff(cap=spec.cap_s, base=spec.base_s)
    raise AssertionError(spec.kind)


def parse_sentinel_url(url: str) -> tuple[list[tuple[str, int]], str, dict[str, Any]]:
    """``sentinel://[user:password@]HOST:PORT[,HOST:PORT...]/SERVICE[?db=N]`` → sentinels, service, server kwargs.

    The credentials (if any) are the data nodes'; the sentinels themselves are asked without.
    """
    parsed = urlsplit(url)
    credentials = parsed.netloc.rpartition("@")[0]
    sentinels = [(host, port) for host, port in parse_hosts(url)]
    kwargs: dict[str, Any] = {}
    if credentials:
        user, _, password = credentials.partition(":")
        kwargs.update(username=unquote(user) or None, password=unquote(password) or None)
    query = parse_qs(parsed.query)
    if "db" in query:
        kwargs["db"] = int(query["db"][0])
    return sentinels, parsed.path.strip("/"), kwargs


def pool_from_url(
    url: str,
    access: Access | None = None,
    blocking_timeout: float | None = None,
    **kwargs: Any,
) -> redis.ConnectionPool:
    """A pool for a redis:// or rediss:// URL, or one that follows the primary a sentinel:// URL names.

    ``access`` gives credentials and TLS (a sentinel:// URL's sentinels get its TLS, not its
    credentials); credentials in the URL itself win, as in redis-py. ``blocking_timeout``: a
    ``BlockingConnectionPool`` that waits that long for a free connection (redis:// and rediss:// only).
    """
    access = access or Access()
    if blocking_timeout is not None:  # a redis:// or rediss:// URL (chaos/run_setup.py refuses the others)
        return redis.BlockingConnectionPool.from_url(url, timeout=blocking_timeout, **{**access.kwargs(url), **kwargs})
    if not url.startswith("sentinel://"):
        return redis.ConnectionPool.from_url(url, **{**access.kwargs(url), **kwargs})
    sentinels, service, server_kwargs = parse_sentinel_url(url)
    timeouts = {k: kwargs[k] for k in ("socket_timeout", "socket_connect_timeout") if kwargs.get(k) is not None}
    manager = Sentinel(sentinels, sentinel_kwargs={**timeouts, **access.tls_only().kwargs(url)})
    return SentinelConnectionPool(service, manager, **{**access.kwargs(url), **kwargs, **server_kwargs})


CLUSTER_SCHEME = "cluster://"


def is_cluster_url(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEME)


def parse_cluster_url(url: str) -> tuple[list[ClusterNode], dict[str, Any]]:
    """``cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]`` → startup nodes, credentials (kwargs)."""
    parsed = urlsplit(url)
    credentials = parsed.netloc.rpartition("@")[0]
    nodes = [ClusterNode(host, port) for host, port in parse_hosts(url)]
    kwargs: dict[str, Any] = {}
    if credentials:
        user, _, password = credentials.partition(":")
        kwargs.update(username=unquote(user) or None, password=unquote(password) or None)
    return nodes, kwargs


def cluster_admin(
    url: str, client_name: str, retries: int = 0, timeout_s: float = 5.0, access: Access | None = None
) -> RedisCluster:
    """The pack's own cluster client (chaos and checks): named apart from traffic, no backoff."""
    nodes, credentials = parse_cluster_url(url)
    return RedisCluster(
        startup_nodes=nodes,
        client_name=client_name,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), retries),
        **{**(access or Access()).kwargs(url), **credentials},
    )
