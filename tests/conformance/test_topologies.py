"""Conformance across a failover: a Sentinel failover and a Redis Cluster failover (then MOVED).

A topology is slow to start and a failover slow to settle (Sentinel converts the old primary 10-20 s after
a switch), so each module-scoped topology fails over once, and every client takes part in that one
failover side by side: for every combination of settings, a bare redis-py client and the pack's client
run the same script, each step started once the fault is in place, the pair's two clients at once.
Both sides then meet the very same fault at the same offset; each test compares one combination's pair.

A cluster target takes neither ``client.parser: python`` nor ``client.connection: dedicated`` (the pack
refuses them: chaos/run_setup.py's check_connection_mode), so the cluster case runs with the hiredis parser,
pooled, at both retry settings.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
import redis
from redis.crc import key_slot

from targets.cluster_topology import ClusterTopology
from targets.topology import SERVICE, SentinelTopology, node_client, role, wait_for

from ..helpers import pid_alive
from .sides import (
    COMBOS,
    Combo,
    Outcome,
    PackSide,
    Side,
    assert_same,
    bare_cluster,
    bare_sentinel,
    without_gc_pauses,
)

Pairs = dict[Combo, tuple[Side, Side]]


def each(pairs: Pairs, step: str, method: str, *args: Any) -> None:
    """One command on every client: a pair's two clients at once (they meet the very same moment of the
    fault), one pair after another (so that no other client's work on the same hub stretches a pair's
    durations unevenly)."""
    for pair in pairs.values():
        with without_gc_pauses():
            greenlets = [gevent.spawn(side.call, step, method, *args) for side in pair]
            gevent.joinall(greenlets, timeout=30, raise_error=True)
        assert all(g.dead for g in greenlets), f"{step}: a command did not finish within 30 s"


def outcomes(pairs: Pairs) -> dict[Combo, tuple[list[Outcome], list[Outcome]]]:
    return {combo: (bare.outcomes, pack.outcomes) for combo, (bare, pack) in pairs.items()}


def closed(pairs: Pairs) -> None:
    for pair in pairs.values():
        for side in pair:
            side.close()


def stopped(topology: SentinelTopology | ClusterTopology) -> None:
    pids = topology.pids
    topology.stop()
    assert pids and not any(pid_alive(pid) for pid in pids)


# ---- Sentinel --------------------------------------------------------------------------------------


def demote_as_sentinel_does(old: Any, new_host: str, new_port: int) -> None:
    """What Sentinel sends a primary it converts to a replica (sentinel.c, sentinelSendSlaveOf): one
    transaction of REPLICAOF, CONFIG REWRITE and CLIENT KILL of every normal and pubsub client. Sentinel
    does it 10-20 s after the switch; done at once here, so that the clients' steps meet it at a known time."""
    with node_client(old.host, old.port) as client:
        pipe = client.pipeline(transaction=True)
        pipe.execute_command("REPLICAOF", new_host, str(new_port))
        pipe.execute_command("CONFIG", "REWRITE")
        pipe.execute_command("CLIENT", "KILL", "TYPE", "normal")
        pipe.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        pipe.execute()


def every_sentinel_names(topology: SentinelTopology, port: int) -> bool:
    """Every sentinel names the primary on ``port`` (they learn of a switch from each other, within a few
    seconds: Sentinel converts the old primary only after that)."""
    for sentinel in topology.sentinels:
        with node_client(sentinel.host, sentinel.port) as client:
            if int(client.sentinel_get_master_addr_by_name(SERVICE)[1]) != port:
                return False
    return True


@pytest.fixture(scope="module")
def sentinel_failover() -> Iterator[dict[Combo, tuple[list[Outcome], list[Outcome]]]]:
    topology = SentinelTopology().start()
    pairs: Pairs = {}
    try:
        addresses = [(s.host, s.port) for s in topology.sentinels]
        for combo in COMBOS:
            options = combo.options()
            pairs[combo] = (
                bare_sentinel(addresses, SERVICE, options, f"cf-bare-{combo}"),
                PackSide(topology.url, options, f"cf-pack-{combo}"),
            )
        each(pairs, "warm-up SET", "set", "k", "before")
        old = topology.primary()
        with topology.sentinel_client() as sentinel:
            sentinel.sentinel_failover(SERVICE)
        wait_for("the sentinels name the new primary", lambda: topology.primary_address()[1] != old.port, 30)
        host, port = topology.primary_address()
        wait_for("every sentinel names the new primary", lambda: every_sentinel_names(topology, port), 30)
        each(pairs, "SET after the switch, the old primary not yet converted", "set", "k", "between")
        demote_as_sentinel_does(old, host, port)
        assert role(old) == "slave"
        gevent.sleep(0.05)  # the clients' sockets have seen the kill
        each(pairs, "SET after the old primary's conversion (its clients killed)", "set", "k", "after")
        each(pairs, "SET again", "set", "k", "again")
        each(pairs, "GET", "get", "k")
        yield outcomes(pairs)
    finally:
        closed(pairs)
        stopped(topology)


@pytest.mark.xdist_group("conformance-sentinel")
@pytest.mark.parametrize("combo", COMBOS, ids=str)
def test_a_sentinel_failover(sentinel_failover: dict[Combo, tuple[list[Outcome], list[Outcome]]], combo: Combo) -> None:
    bare, pack = sentinel_failover[combo]
    assert_same(bare, pack)


# ---- Cluster ---------------------------------------------------------------------------------------

CLUSTER_COMBOS = [c for c in COMBOS if c.parser == "hiredis" and c.connection == "pooled"]


def key_in_slot_0() -> str:
    for i in range(200_000):
        key = f"cf:{{{i}}}"
        if key_slot(key.encode()) == 0:
            return key
    raise AssertionError("no key in slot 0")


@pytest.fixture(scope="module")
def cluster_failover() -> Iterator[dict[Combo, tuple[list[Outcome], list[Outcome]]]]:
    topology = ClusterTopology().start()
    pairs: Pairs = {}
    key = key_in_slot_0()
    try:
        nodes = [(s.host, s.port) for s in topology.servers]
        for combo in CLUSTER_COMBOS:
            options = combo.options()
            pairs[combo] = (
                bare_cluster(nodes, options, f"cf-bare-{combo}"),
                PackSide(topology.url, options, f"cf-pack-{combo}"),
            )
        each(pairs, "warm-up SET (slot 0)", "set", key, "before")
        old = topology.primary()
        replica = topology.replica_of(old)
        with node_client(replica.host, replica.port) as client:
            client.execute_command("CLUSTER FAILOVER")
        wait_for("the old primary of slot 0 is a replica", lambda: role(old) == "slave", 30)

        def moved() -> bool:
            with node_client(old.host, old.port) as client:
                try:
                    client.get(key)
                except redis.exceptions.MovedError:
                    return True
            return False

        wait_for("the old primary answers MOVED for slot 0", moved, 30)
        began = time.monotonic()
        each(pairs, "SET on slot 0 after the failover (MOVED)", "set", key, "after")
        each(pairs, "SET again", "set", key, "again")
        each(pairs, "GET", "get", key)
        assert time.monotonic() - began < 30
        yield outcomes(pairs)
    finally:
        closed(pairs)
        stopped(topology)


@pytest.mark.xdist_group("conformance-cluster")
@pytest.mark.parametrize("combo", CLUSTER_COMBOS, ids=str)
def test_a_cluster_failover_then_moved(
    cluster_failover: dict[Combo, tuple[list[Outcome], list[Outcome]]], combo: Combo
) -> None:
    bare, pack = cluster_failover[combo]
    assert_same(bare, pack)
