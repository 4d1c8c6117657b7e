"""Each fault against a real redis-server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Literal

import gevent
import pytest
import redis

from chaos.faults import FAULTS, FaultParams, FaultTarget, build_fault, register_fault
from chaos.faults.base import FaultBase
from chaos.faults.client_kill import ClientKillParams
from chaos.faults.pool_reset import PoolResetParams
from chaos.profile import parse_profile
from scenarios.client import InstrumentedRedis, RedisRequestFailed
from scenarios.run import PackRun
from targets.embedded import EmbeddedRedis

from .conditions import blocked_in
from .helpers import ROOT, Recorder, eventually, no_retry_admin, traffic_clients


@pytest.fixture
def run(redis_server: EmbeddedRedis) -> PackRun:
    return PackRun(parse_profile({}, "test"), redis_server.url, "t1")


@pytest.fixture
def fault_admin(redis_server: EmbeddedRedis, run: PackRun) -> Iterator[redis.Redis]:
    client = no_retry_admin(redis_server.url, run.admin_name)
    yield client
    client.close()


@pytest.fixture
def target(run: PackRun, fault_admin: redis.Redis) -> FaultTarget:
    return FaultTarget(fault_admin, run.traffic_tag, run.reset_pools)


def traffic(run: PackRun, n: int, recorder: Recorder) -> list[InstrumentedRedis]:
    clients = traffic_clients(run, n, recorder)
    for client in clients:
        client.ping()
    return clients


def ids_by_name(admin: redis.Redis) -> dict[str, str]:
    return {str(c.get("name")): str(c["id"]) for c in admin.client_list()}


def test_registry_names_match_classes() -> None:
    for name, kind in FAULTS.items():
        assert kind.fault.name == name
    modules = {f"chaos.faults.{p.stem}" for p in (ROOT / "chaos" / "faults").glob("*.py")}
    modules -= {"chaos.faults.__init__", "chaos.faults.base", "chaos.faults.registry"}
    registered = {kind.fault.__module__ for kind in FAULTS.values()}
    assert modules <= registered, "every fault module registers its fault (and chaos/faults/__init__.py imports it)"


def test_the_registry_refuses_a_name_mismatch_and_a_second_claim_on_a_name() -> None:
    class OtherParams(FaultParams):
        name: Literal["other"]

    with pytest.raises(TypeError, match="must be the params' only name literal"):
        register_fault(OtherParams)(type("Other", (FaultBase,), {"name": "not_other"}))
    with pytest.raises(ValueError, match="'client_kill' is registered already"):
        register_fault(ClientKillParams)(type("Impostor", (FaultBase,), {"name": "client_kill"}))
    assert FAULTS["client_kill"].fault.__name__ == "ClientKill" and "not_other" not in FAULTS


def test_client_kill_own_kills_only_this_runs_connections(
    redis_server: EmbeddedRedis, run: PackRun, fault_admin: redis.Redis, target: FaultTarget
) -> None:
    clients = traffic(run, 3, Recorder())
    bystander = redis.Redis.from_url(redis_server.url, client_name="other-app")
    bystander.ping()
    before = ids_by_name(fault_admin)
    fault = build_fault(
        ClientKillParams(name="client_kill"), FaultTarget(fault_admin, run.traffic_tag, run.reset_pools)
    )
    details = fault.inject()
    fault.revert()
    assert details == {"connections_found": 3, "connections_killed": 3}
    after = ids_by_name(fault_admin)
    assert not any(name.startswith(run.traffic_tag) for name in after)
    assert after["other-app"] == before["other-app"]  # untouched: same connection
    assert after[run.admin_name] == before[run.admin_name]
    for client in clients:  # and the traffic reconnects by itself
        client.ping()
        assert client.probe.reconnections == 1
    bystander.close()


def test_client_kill_all_spares_only_the_admin(
    redis_server: EmbeddedRedis, run: PackRun, fault_admin: redis.Redis, target: FaultTarget
) -> None:
    clients = traffic(run, 2, Recorder())  # keep them referenced: a collected pool closes its connections
    bystander = redis.Redis.from_url(redis_server.url, client_name="other-app")
    bystander.ping()
    admin_id = ids_by_name(fault_admin)[run.admin_name]
    fault = build_fault(
        ClientKillParams(name="client_kill", scope="all", allow_scope_all=True),
        FaultTarget(fault_admin, run.traffic_tag, run.reset_pools),
    )
    assert fault.inject() == {"connections_found": 3, "connections_killed": 3}
    after = ids_by_name(fault_admin)
    assert list(after) == [run.admin_name]
    assert after[run.admin_name] == admin_id
    for client in clients:  # the traffic reconnects by itself
        client.ping()
        assert client.probe.reconnections == 1
    bystander.close()


def test_pool_reset_closes_in_use_connections(redis_server: EmbeddedRedis, fault_admin: redis.Redis) -> None:
    """With no retry, so that the closed socket's error reaches the application whatever the parser and
    redis-py version make of it (what each does with retries: tests/conformance/)."""
    run = PackRun(parse_profile({"client": {"retries": 0}}, "test"), redis_server.url, "t1")
    recorder = Recorder()
    busy, idle = traffic(run, 2, recorder)
    waiter = gevent.spawn(busy.blpop, ["never"], 30)
    blocked_in(fault_admin, "blpop")
    fault = build_fault(PoolResetParams(name="pool_reset"), FaultTarget(fault_admin, run.traffic_tag, run.reset_pools))
    started = time.monotonic()
    details = fault.inject()
    assert details == {"pools": 2, "connections_closed": 2, "in_use": 1}
    with gevent.Timeout(5):
        waiter.join()
    assert time.monotonic() - started < 2.0  # not the 30 s BLPOP timeout
    assert isinstance(waiter.exception, RedisRequestFailed)
    blpop = [r for r in recorder.requests if r["name"] == "BLPOP cache"]
    assert len(blpop) == 1 and blpop[0]["exception"] is not None
    eventually(
        "the server saw the traffic connections go",
        lambda: not any(n.startswith(run.traffic_tag) for n in ids_by_name(fault_admin)),
        5,
        lambda: f"still there: {sorted(ids_by_name(fault_admin))}",
    )
    idle.ping()  # the idle connection was closed too: the next command reconnects
    assert idle.probe.reconnections == 1


def test_client_kill_selects_the_services_connections_and_counts_them_again_at_the_window_close(
    redis_server: EmbeddedRedis, run: PackRun, fault_admin: redis.Redis
) -> None:
    """scope: service by name prefix, by ACL user, by addr and laddr (IP and port ranges); others spares
    the pack's own (traffic, admin, witness name); connections_at_window_close counts what came back."""
    fault_admin.acl_setuser("svc", enabled=True, passwords=["+svc-pw"], commands=["+@all"], keys=["*"])
    mine = traffic(run, 2, Recorder())
    witness = redis.Redis.from_url(redis_server.url, client_name=run.witness_name)
    service = [redis.Redis.from_url(redis_server.url, client_name=f"svc-{i}") for i in range(3)]
    by_user = redis.Redis.from_url(redis_server.url, username="svc", password="svc-pw", client_name="other")
    for client in (witness, *service, by_user):
        client.ping()
    target = FaultTarget(fault_admin, run.traffic_tag, run.reset_pools, own_names=run.own_names)

    def kill(**params: object) -> dict[str, object]:
        fault = build_fault(ClientKillParams.model_validate({"name": "client_kill", **params}), target)
        details = fault.inject()
        return {**details, **fault.window_closed()}

    assert kill(scope="service", name_prefix="svc-") == {
        "connections_found": 3,
        "connections_killed": 3,
        "connections_at_window_close": 0,
    }
    for client in service:
        client.ping()  # the "service" reconnects
    closed = kill(scope="service", name_prefix="svc-")
    assert closed["connections_found"] == 3 and closed["connections_at_window_close"] == 0
    assert kill(scope="service", user="svc")["connections_killed"] == 1
    by_user.ping()
    port = int(by_user.client_info()["addr"].rpartition(":")[2])  # the client side's port
    assert kill(scope="service", addr=f"127.0.0.1:{port}-{port}")["connections_killed"] == 1
    assert kill(scope="service", addr=f"127.0.0.1:{port + 1}-65535", name_prefix="other")["connections_found"] == 0
    for client in service:
        client.ping()
    by_user.ping()
    assert kill(scope="service", laddr=f"127.0.0.1:{redis_server.port}", name_prefix="svc-")["connections_killed"] == 3
    assert kill(scope="service", laddr="127.0.0.1:1-2")["connections_found"] == 0
    for client in service:
        client.ping()
    before = ids_by_name(fault_admin)
    details = kill(scope="others", allow_scope_all=True)
    assert details["connections_killed"] == 4  # the 3 service connections and the other user's
    after = ids_by_name(fault_admin)
    for name in (run.admin_name, run.witness_name, f"{run.traffic_tag}0", f"{run.traffic_tag}1"):
        assert after[name] == before[name], name  # the pack's own: the same connections
    for client in (*mine, witness, *service, by_user):
        client.close()
    # A connection in its handshake (not yet named: it may be the pack's own reconnecting) is never a victim
    fault = build_fault(ClientKillParams(name="client_kill", scope="others", allow_scope_all=True), target)
    handshake = {"id": "7", "name": "", "cmd": "hello", "flags": "N", "user": "default", "addr": "127.0.0.1:5"}
    assert not fault._killable(handshake, None)  # type: ignore[attr-defined]
    assert fault._killable({**handshake, "cmd": "get"}, None)  # type: ignore[attr-defined]
