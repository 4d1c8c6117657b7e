"""A user's client, whatever the target: redis-py's ``Redis`` on one server's pool, or its ``RedisCluster``
for a ``cluster://`` URL; instrumented for the traffic (scenarios/client.py, scenarios/cluster.py), or plain
for what is not measured (a subscriber's own connection). The one place a client is built from a URL."""

from __future__ import annotations

from locust.event import EventHook

from typing import TypeAlias

import redis
from redis.cluster import RedisCluster

from config.schema import ClientOptions
from scenarios.client import ConnectionProbe, InstrumentedRedis, make_pool
from scenarios.cluster import ClusterPools, InstrumentedCluster, cluster_kwargs
from scenarios.run import Pools
from targets.access import Access
from targets.clients import is_cluster_url

TrafficClient: TypeAlias = InstrumentedRedis | InstrumentedCluster


def traffic_client(
    url: str,
    options: ClientOptions,
    client_name: str,
    probe: ConnectionProbe,
    request_event: EventHook,
    label: str,
    user_key: str | int,
    access: Access | None = None,
) -> tuple[TrafficClient, Pools]:
    """A user's instrumented client (a cluster client for a ``cluster://`` URL) and its pool(s)."""
    if is_cluster_url(url):
        cluster = InstrumentedCluster(url, options, client_name, probe, request_event, label, user_key, access)
        return cluster, cluster.pools
    pool = make_pool(url, options, client_name, probe, access)
    client = InstrumentedRedis(pool, request_event, label, user_key, probe, options.connection == "dedicated")
    return client, pool


def plain_client(
    url: str, options: ClientOptions, client_name: str, probe: ConnectionProbe, access: Access | None = None
) -> tuple[redis.Redis | RedisCluster, Pools]:
    """An uninstrumented client built the same way (a subscriber's own connection) and its pool(s)."""
    if is_cluster_url(url):
        cluster = RedisCluster(**cluster_kwargs(url, options, client_name, probe, access))
        return cluster, ClusterPools(cluster)
    pool = make_pool(url, options, client_name, probe, access)
    return redis.Redis(connection_pool=pool, single_connection_client=options.connection == "dedicated"), pool
