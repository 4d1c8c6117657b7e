"""The embedded Redis Cluster (three primaries, three replicas) and everything the pack does on it: real
redis-server processes on loopback, stopped by PID, every wait bounded."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gevent
import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from chaos.faults import CommandRefused, FaultTarget, build_fault
from chaos.faults.client_kill import ClientKillParams
from chaos.faults.client_pause import ClientPauseParams
from chaos.faults.failover import FailoverParams
from chaos.faults.oom import OomParams
from chaos.faults.server_restart import ServerRestartParams
from chaos.profile import parse_profile
from config.loader import ProfileError
from config.schema import ClientOptions
from scenarios.client import ConnectionProbe, RedisRequestFailed
from scenarios.cluster import InstrumentedCluster
from scenarios.run import PackRun
from scenarios.traffic_client import traffic_client
from targets.clients import cluster_admin, parse_cluster_url
from targets.cluster_topology import CLUSTER_SLOTS, ClusterTopology
from targets.topology import role

from .conditions import blocked_in
from .helpers import HEAVY, Recorder, eventually, finish, headless_args, locust, no_pools, pid_alive, write_profile

# One module-scoped cluster: its tests on one worker, in this order (xdist --dist loadgroup).
pytestmark = pytest.mark.xdist_group("cluster")


@dataclass(frozen=True)
class StartedCluster:
    topology: ClusterTopology
    start_s: float  # how long start() took


@pytest.fixture(scope="module")
def started_cluster() -> Iterator[StartedCluster]:
    """One embedded cluster for the module's tests (starting one takes seconds), stopped by PID."""
    started = time.monotonic()
    topology = ClusterTopology().start()
    try:
        yield StartedCluster(topology, time.monotonic() - started)
    finally:
        pids = topology.pids
        topology.stop()
        assert len(pids) == 6 and not any(pid_alive(pid) for pid in pids)


@pytest.fixture
def cluster(started_cluster: StartedCluster) -> ClusterTopology:
    return started_cluster.topology


def key_in_slot(slot: int, prefix: str = "probe") -> str:
    """A key the cluster keeps in ``slot``."""
    for i in range(200_000):
        key = f"{prefix}:{{{i}}}"
        if key_slot(key.encode()) == slot:
            return key
    raise AssertionError(f"no key found for slot {slot}")


def shard_keys(topology: ClusterTopology, prefix: str = "probe") -> list[str]:
    """One key in the first slot of every primary."""
    return [key_in_slot(v.slots[0][0], prefix) for v in topology.cluster_nodes() if v.primary and v.slots]


def admin_target(topology: ClusterTopology, run: PackRun | None = None) -> FaultTarget:
    if run is None:
        return FaultTarget(cluster_admin(topology.url, "rradmin-t"), "rr-t-", no_pools, servers=topology)
    admin = cluster_admin(topology.url, run.admin_name)
    return FaultTarget(admin, run.traffic_tag, run.reset_pools, servers=topology)


def names_on(port: int) -> list[str]:
    with redis.Redis(port=port, socket_timeout=2) as direct:
        return [str(c.get("name")) for c in direct.client_list()]


def test_the_cluster_starts_and_every_node_reports_cluster_state_ok(started_cluster: StartedCluster) -> None:
    cluster = started_cluster.topology
    print(f"cluster started in {started_cluster.start_s:.2f}s")
    assert started_cluster.start_s < 30
    assert cluster.url == "cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in cluster.servers)
    for server in cluster.servers:
        with redis.Redis(port=server.port, socket_timeout=2) as node:
            info = node.cluster("INFO")
        assert info["cluster_state"] == "ok"
        assert int(info["cluster_known_nodes"]) == 6 and int(info["cluster_slots_ok"]) == CLUSTER_SLOTS
    views = cluster.cluster_nodes()
    primaries = [v for v in views if v.primary]
    assert len(primaries) == 3 and sum(last - first + 1 for v in primaries for first, last in v.slots) == CLUSTER_SLOTS
    ids = {v.node_id for v in primaries}
    assert sorted(v.primary_id for v in views if not v.primary) == sorted(ids)  # one replica each
    primary = cluster.node("primary")
    assert primary is cluster.primary() and cluster.primary_address()[1] == primary.port
    replica = cluster.node("replica")
    assert next(v for v in views if v.port == replica.port).primary_id == next(
        v.node_id for v in views if v.port == primary.port
    )
    assert "Redis Cluster" in cluster.label() and cluster.kind == "embedded-cluster"


def test_the_instrumented_cluster_client_fires_a_request_per_command_and_per_pipeline(
    cluster: ClusterTopology,
) -> None:
    rec = Recorder()
    probe = ConnectionProbe()
    client, pools = traffic_client(cluster.url, ClientOptions(), "rr-tc-0", probe, rec.hook, "cache", 7)
    assert isinstance(client, InstrumentedCluster) and pools is client.pools
    assert rec.requests == []  # mapping the cluster at construction is not traffic
    keys = shard_keys(cluster)
    for key in keys:  # one per primary
        client.set(key, "1")
        assert client.get(key) == b"1"
    assert [r["name"] for r in rec.requests] == ["SET cache", "GET cache"] * 3
    context = rec.requests[0]["context"]
    # redis-py drops the connection it mapped the cluster with: a first command there may reconnect.
    assert context.pop("reconnections") in (0, 1)
    assert context == {"user": 7, "commands": 1, "blocking": False, "retries": 0}
    assert all(r["exception"] is None for r in rec.requests)
    rec.requests.clear()
    pipe = client.pipeline()  # across every primary: one request
    for key in keys:
        pipe.get(key)
    assert pipe.execute() == [b"1"] * 3
    with client.pipeline(transaction=True) as tx:  # WATCH and a read are round trips; EXEC one request
        tx.watch("t:{a}:1", "t:{a}:2")
        tx.get("t:{a}:1")
        tx.multi()
        tx.incrby("t:{a}:1", 1)
        tx.decrby("t:{a}:2", 1)
        assert tx.execute() == [1, -1]
    assert client.blpop(["t:{a}:list"], 0.05) is None
    assert [(r["name"], r["context"]["commands"]) for r in rec.requests] == [
        ("PIPELINE cache", 3),
        ("WATCH cache", 1),
        ("GET cache", 1),
        ("EXEC cache", 2),
        ("BLPOP cache", 1),
    ]
    assert rec.requests[-1]["context"]["blocking"]
    with pytest.raises(RedisRequestFailed):
        client.lpush(keys[0], "x")  # WRONGTYPE: a failure, reported
    assert isinstance(rec.requests[-1]["exception"], redis.ResponseError)
    for view in cluster.cluster_nodes():  # tagged connections on every primary, for client_kill
        if view.primary:
            assert "rr-tc-0" in names_on(view.port)
    (idle, _), (in_use, _) = pools.get_connection_count()
    assert idle >= 3 and in_use == 0 and probe.connections >= 3
    pools.disconnect()
    client.close()


def test_a_connection_killed_in_flight_is_a_hidden_retry_of_the_cluster_client(cluster: ClusterTopology) -> None:
    rec = Recorder()
    probe = ConnectionProbe()
    client, _ = traffic_client(cluster.url, ClientOptions(), "rr-tr-0", probe, rec.hook, "queue", 1)
    key = key_in_slot(0, "jobs")
    blocked = gevent.spawn(client.blpop, [key], 1)
    _, port = cluster.primary_address()
    with redis.Redis(port=port, socket_timeout=2) as node:
        node.client_kill_filter(_id=blocked_in(node, "blpop", "rr-tr-0"))
    assert blocked.get(timeout=5) is None  # sent again after the slot map was refreshed: no error shown
    (request,) = rec.requests
    # The retry is counted where redis-py asks the backoff for its delay: 8.2's cluster client does (1), 8.1's
    # did not (0); either way the request carries what the backoff saw (pack = bare: tests/conformance/).
    assert request["exception"] is None and request["context"]["retries"] == probe.retries
    assert request["context"]["blocking"] and request["response_time"] >= 1000
    client.close()


def test_faults_act_on_every_primary(cluster: ClusterTopology) -> None:
    run = PackRun(parse_profile({"target": {"url": "embedded-cluster"}}, "t"), cluster.url, "tf")
    rec = Recorder()
    probe = ConnectionProbe()
    client, pools = traffic_client(cluster.url, run.profile.client, f"{run.traffic_tag}0", probe, rec.hook, "c", 0)
    run.pools.add(pools)
    target = admin_target(cluster, run)
    primaries = {v.port for v in cluster.cluster_nodes() if v.primary}
    assert {a.connection_pool.connection_kwargs["port"] for a in target.node_admins()} == primaries
    keys = shard_keys(cluster, prefix=f"{run.key_prefix}k")
    for key in keys:
        client.set(key, "v")

    kill = build_fault(ClientKillParams(name="client_kill"), target)
    kill.check()
    details = kill.inject()
    assert details["connections_killed"] >= 3  # this client's connection on each primary
    for port in primaries:
        assert f"{run.traffic_tag}0" not in names_on(port)
    before = probe.reconnections
    for key in keys:
        assert client.get(key) == b"v"  # a killed idle connection is replaced at checkout
    assert probe.reconnections - before >= 3

    def timed_write(key: str) -> float:
        started = time.monotonic()
        client.set(key, "paused")
        return time.monotonic() - started

    pause = build_fault(ClientPauseParams(name="client_pause", pause_ms=400, mode="WRITE"), target)
    pause.check()
    assert pause.inject()["nodes"] == 3
    try:
        writes = [gevent.spawn(timed_write, key) for key in keys]  # one per primary, at once
        gevent.joinall(writes, timeout=5, raise_error=True)
        assert all(w.value > 0.25 for w in writes), [w.value for w in writes]  # every primary held its write
    finally:
        pause.revert()

    oom = build_fault(OomParams(name="oom", headroom_bytes=0), target)
    oom.check()
    details = oom.inject()
    try:
        assert len(details["nodes"]) == 3
        for key in keys:
            with pytest.raises(RedisRequestFailed, match="maxmemory"):
                client.set(f"{key}:more", "x" * 100_000)
    finally:
        oom.revert()
    for key in keys:
        client.set(f"{key}:more", "x")  # memory back on every primary

    reset = run.reset_pools()
    assert reset.pools == 1 and reset.connections >= 3
    assert run.cleanup_keys(target.admin) >= 6  # SCAN + UNLINK across every primary... of this run's keys only
    client.close()
    target.admin.close()


def served_by_new_primary(client: RedisCluster | InstrumentedCluster, topology: ClusterTopology, old_port: int) -> bool:
    """A write through the client lands on the primary serving slot 0 now, not on the old one."""
    key = key_in_slot(0, prefix=f"w{time.monotonic()}")
    client.set(key, "1")
    _, port = topology.primary_address()
    with redis.Redis(port=port, socket_timeout=1) as direct:
        return port != old_port and direct.get(key) == b"1"


@pytest.mark.parametrize("method", ["cluster_failover", "kill_primary"])
def test_after_a_failover_the_cluster_client_writes_to_the_new_primary(cluster: ClusterTopology, method: str) -> None:
    target = admin_target(cluster)
    rec = Recorder()
    client, _ = traffic_client(cluster.url, ClientOptions(), "rr-t-0", ConnectionProbe(), rec.hook, "cache", 0)
    old = cluster.primary()
    key = key_in_slot(0)
    client.set(key, "before")
    with redis.Redis(port=old.port, socket_timeout=5) as primary:  # on the replica before the kill -9
        assert primary.wait(1, 2000) == 1
    fault = build_fault(FailoverParams(name="failover", method=method, down_s=0.5), target)
    fault.check()
    details = fault.inject()
    assert details["replica_in_sync"] is True
    fault.revert()  # returns once the cluster names the new primary of slot 0 (and restarted the killed one)
    assert "promoted_after_s" not in details  # what inject() returned is never changed after
    details = {**details, **fault.seen()}  # the watcher's own record, merged as the report merges it
    print(f"{method}: promoted after {details['promoted_after_s']}s")
    assert details["old_primary_port"] == old.port and details["new_primary_port"] != old.port
    assert 0 < details["promoted_after_s"] < 20
    eventually(
        "a write through the cluster client lands on the new primary of slot 0",
        lambda: served_by_new_primary(client, cluster, old.port),
        30,
    )
    assert client.get(key) == b"before"  # replicated before the failover
    eventually("the old primary rejoins as a replica", lambda: role(old) == "slave", 30)
    eventually("the cluster is whole again", cluster.ready, 30)
    watcher = fault.watcher  # type: ignore[attr-defined]
    fault.close()  # as the scheduler's stop does: no watcher left polling the cluster
    assert watcher.dead
    client.close()
    target.admin.close()


def test_server_restart_and_failover_on_the_cluster(cluster: ClusterTopology) -> None:
    target = admin_target(cluster)
    replica = cluster.node("replica")
    fault = build_fault(ServerRestartParams(name="server_restart", node="replica", down_s=0.2), target)
    fault.check()
    assert fault.inject()["port"] == replica.port and not replica.running
    fault.revert()
    assert replica.running
    eventually("the replica is back in sync", cluster.ready, 30)
    with pytest.raises(CommandRefused, match="cluster_failover or kill_primary"):
        build_fault(FailoverParams(name="failover"), target).check()  # sentinel_failover: not on a cluster
    sentinels = FaultTarget(target.admin, "rr-t-", target.reset_pools, servers=SimpleNamespace(sentinels=[1]))
    with pytest.raises(CommandRefused, match="embedded-cluster"):
        build_fault(FailoverParams(name="failover", method="cluster_failover"), sentinels).check()
    target.admin.close()


def test_cluster_urls_in_profiles_and_clients() -> None:
    nodes, credentials = parse_cluster_url("cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2,[::1]:7002")
    assert [(n.host, n.port) for n in nodes] == [("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002)]
    assert credentials == {"username": "app", "password": "s@cret"}
    for url in ("embedded-cluster", "cluster://127.0.0.1:7000", "cluster://a:7000,b:7001/"):
        assert parse_profile({"target": {"url": url}}, "t").target.url == url
    with pytest.raises(ProfileError, match="retry forever"):
        parse_profile({"target": {"url": "embedded-cluster"}, "client": {"retries": -1}}, "t")


@HEAVY  # 13 users: one of each workload, two of cache
@pytest.mark.parametrize("server", ["redis", "valkey"])
def test_a_headless_run_on_the_embedded_cluster_with_a_failover(tmp_path: Path, server: str) -> None:
    profile = write_profile(
        tmp_path / "cluster.yaml",
        {
            "target": {"url": "embedded-cluster", "server": server},
            "workload": {
                "think_time": {"min_ms": 1, "max_ms": 20},
                "mix": {
                    "cache": {"weight": 2, "keyspace": 2000},
                    "ledger": {"weight": 1},
                    "session": {"weight": 1},
                    "queue": {"weight": 1},
                    "pubsub": {"weight": 1},
                    "stream": {"weight": 1},
                    "lock": {"weight": 1},
                    "ratelimit": {"weight": 1},
                    "leaderboard": {"weight": 1},
                    "pipeline": {"weight": 1},
                    "transaction": {"weight": 1},
                },
            },
            "chaos": {
                "start_after_s": 4,
                "every_s": 30,
                "count": 1,
                "faults": [{"name": "failover", "method": "kill_primary", "down_s": 2}],
            },
            "recovery": {"max_window_s": 12},
            # Reported, not gated: what a crashed primary's unreplicated writes (and locks) cost varies run to run.
            "slo": {
                "max_recovery_p95_s": None,
                "max_error_rate_in_windows": None,
                "max_lost_writes": None,
                "max_lock_violations": None,
            },
        },
    )
    report_path = tmp_path / "report.json"
    proc = locust(
        headless_args(13, "18s", "--resilience-profile", str(profile), "--resilience-report", str(report_path))
    )
    out = finish(proc, timeout=120)
    assert proc.returncode == 0, out[-4000:]
    assert "Traceback" not in out
    report: dict[str, Any] = json.loads(report_path.read_text())
    (fault,) = report["faults"]
    assert fault["name"] == "failover" and fault["ok"], fault
    assert fault["details"]["method"] == "kill_primary" and 0 < fault["details"]["promoted_after_s"] < 20
    assert fault["requests"] > 0 and fault["failures"] + fault["hidden_retries"] > 0  # every shard saw it
    assert fault["recovered"] and fault["recovery_s"] is not None
    # a witness on each primary; the killed one is down down_s, and until a replica is promoted
    assert len(fault["witness_nodes"]) == 3, fault
    assert 1.9 <= fault["outage_s"] <= max(2.0, fault["details"]["promoted_after_s"]) + 0.6, fault
    assert fault["client_excess_s"] is not None, fault
    print(
        f"kill_primary: promoted after {fault['details']['promoted_after_s']}s, recovery_s {fault['recovery_s']}, "
        f"failures {fault['failures']}, lost writes {report['summary']['lost_writes']}"
    )
    integrity = report["integrity"]
    assert {"ledger", "queue", "stream", "lock", "pubsub", "ratelimit", "pipeline", "transaction"} <= set(integrity)
    assert integrity["transaction"]["imbalance"] == 0 and integrity["ledger"]["acknowledged"] > 0
    assert report["embedded_pids"] and len(report["embedded_pids"]) == 6
    assert [s["server"] for s in report["environment"]["servers"]] == [server] * 3, report["environment"]
    assert not any(pid_alive(pid) for pid in report["embedded_pids"])
