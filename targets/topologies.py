"""The embedded topologies by the name a profile's ``target.url`` gives (see targets/topology.py)."""

from __future__ import annotations

from targets.cluster_topology import ClusterTopology
from targets.embedded import server_binaries
from targets.topology import SentinelTopology, Topology

TOPOLOGIES: dict[str, type[Topology]] = {
    "embedded": Topology,
    "embedded-sentinel": SentinelTopology,
    "embedded-cluster": ClusterTopology,
}


def start_topology(kind: str, persistence: str = "none", server: str = "redis", binary: str | None = None) -> Topology:
    """Start the embedded topology a profile's ``target.url`` names, of the ``target.server`` it names (its
    ``target.server_binary``, else found: targets/servers.py). EmbeddedRedisError: one line."""
    return TOPOLOGIES[kind](persistence, server_binaries(server, binary)).start()
