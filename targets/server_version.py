"""Which server each data node runs, as its ``INFO server`` says: Redis or Valkey, and its version.

Asked once, when the run opens its target (the report's ``environment.servers``, docs/report.md). A
node that cannot be asked (a refused ``INFO``, a node gone) gives its error instead of a version: the
run goes on, its report says the version is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from targets.greenlets import describe
from targets.witness import node_of


@dataclass(frozen=True)
class ServerVersion:
    """One data node's server.

    :param node: ``host:port`` as the pack reaches it (the admin's address of it)
    :param server: ``redis`` or ``valkey`` (``INFO server``'s ``server_name``, which Valkey adds); None
        when the node could not be asked
    :param version: ``valkey_version`` on Valkey, else ``redis_version``; None when unknown
    :param error: why the node could not be asked (one line, credentials redacted)
    """

    node: str
    server: str | None
    version: str | None
    error: str | None = None


def server_version(client: redis.Redis) -> ServerVersion:
    """What the node ``client`` talks to runs (never raises: a failure is the entry's ``error``)."""
    try:
        node = node_of(client).key
    except (redis.RedisError, OSError) as exc:  # a Sentinel-managed client whose sentinels name no primary
        return ServerVersion("unknown", None, None, describe(exc))
    try:
        info = client.info("server")
    except (redis.RedisError, OSError) as exc:
        return ServerVersion(node, None, None, describe(exc))
    name = str(info.get("server_name") or "redis").lower()
    version = info.get(f"{name}_version", info.get("redis_version"))
    return ServerVersion(node, name, None if version is None else str(version))


def server_versions(clients: list[redis.Redis]) -> tuple[ServerVersion, ...]:
    """Each node's server, in the order of ``clients`` (one admin connection per data node)."""
    return tuple(server_version(client) for client in clients)
