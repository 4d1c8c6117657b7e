"""The embedded topologies by the name a profile's ``target.url`` gives (see targets/topology.py)."""

from __future__ import annotations

from targets.cluster_topology import ClusterTopology
from targets.topology import SentinelTopology, Topology

TOPOLOGIES: dict[str, type[Topology]] = {
    "embedded": Topology,
    "embedded-sentinel": SentinelTopology,
    "embedded-cluster": ClusterTopology,
}


def start_topology(kind: str, persistence: str = "none") -> Topology:
    """Start the embedded topology a profile's ``target.url`` names."""
    return TOPOLOGIES[kind](persistence).start()
