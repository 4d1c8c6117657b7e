"""client.connection (pooled, dedicated) and client.parser (hiredis, python) against a real redis-server:
both modes count hidden retries and reconnections by the same hooks, and the counts are what the server
saw (its ``total_connections_received``) under ``client_kill`` and ``pool_reset``; ``batch()`` is one
request of all its commands."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from chaos.faults import FaultTarget, build_fault
from chaos.faults.client_kill import ClientKillParams
from chaos.faults.pool_reset import PoolResetParams
from chaos.profile import parse_profile
from chaos.run_setup import check_connection_mode
from chaos.settings import SetupError
from scenarios.client import InstrumentedRedis, RedisRequestFailed
from scenarios.run import PackRun
from targets.embedded import EmbeddedRedis

from .helpers import Recorder, no_retry_admin, traffic_clients

MODES = ["pooled", "dedicated"]


def make_run(server: EmbeddedRedis, connection: str, parser: str = "hiredis") -> PackRun:
    profile = parse_profile({"client": {"connection": connection, "parser": parser}}, "test")
    return PackRun(profile, server.url, f"m{connection[0]}{parser[0]}")


@pytest.fixture
def fault_admin(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = no_retry_admin(redis_server.url, "rradmin-m-0")
    yield client
    client.close()


def users(run: PackRun, n: int, recorder: Recorder) -> list[InstrumentedRedis]:
    """``n`` users' clients, each connected (one command made)."""
    clients = traffic_clients(run, n, recorder)
    for i, client in enumerate(clients):
        client.set(f"k{i}", i)
    return clients


def connections_received(admin: redis.Redis) -> int:
    return int(admin.info("stats")["total_connections_received"])


def traffic_ids(admin: redis.Redis, tag: str) -> set[str]:
    return {str(c["id"]) for c in admin.client_list() if str(c.get("name", "")).startswith(tag)}


def counted(clients: list[InstrumentedRedis]) -> tuple[int, int]:
    return sum(c.probe.retries for c in clients), sum(c.probe.reconnections for c in clients)


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_makes_its_pool_and_one_connection_per_user(
    redis_server: EmbeddedRedis, fault_admin: redis.Redis, mode: str
) -> None:
    run = make_run(redis_server, mode)
    clients = users(run, 3, Recorder())
    for _ in range(20):
        for i, client in enumerate(clients):
            assert client.get(f"k{i}") == str(i).encode()
    assert {type(c.connection_pool) for c in clients} == {redis.ConnectionPool}  # stock redis-py's own pool
    assert [c.connection is not None for c in clients] == [mode == "dedicated"] * 3  # single_connection_client
    assert len(traffic_ids(fault_admin, run.traffic_tag)) == 3
    assert [c.probe.connections for c in clients] == [1, 1, 1]
    assert counted(clients) == (0, 0)
    assert run.reset_pools().connections == 3


@pytest.mark.parametrize("mode", MODES)
def test_client_kill_every_connection_is_counted_as_the_server_saw_it(
    redis_server: EmbeddedRedis, fault_admin: redis.Redis, mode: str
) -> None:
    """Idle connections killed: the next command reconnects once per user, and the server's count of new
    connections is the pack's. Whether redis-py needed a retry for it (a dedicated connection's command
    finds the closed socket; a pooled checkout finds it first) is redis-py's to decide: the conformance
    suite checks the pack counts what a bare client does (tests/conformance/, client_kill-idle)."""
    recorder = Recorder()
    run = make_run(redis_server, mode)
    clients = users(run, 4, recorder)
    before_ids = traffic_ids(fault_admin, run.traffic_tag)
    received = connections_received(fault_admin)
    target = FaultTarget(fault_admin, run.traffic_tag, run.reset_pools)
    fault = build_fault(ClientKillParams(name="client_kill"), target)
    assert fault.inject()["connections_killed"] == 4
    recorder.requests.clear()
    for i, client in enumerate(clients):
        assert client.get(f"k{i}") == str(i).encode()  # no failure: redis-py reconnects out of sight
    retries, reconnections = counted(clients)
    assert reconnections == 4 == connections_received(fault_admin) - received
    assert [r["exception"] for r in recorder.requests] == [None] * 4
    assert [r["context"]["reconnections"] for r in recorder.requests] == [1] * 4
    assert sum(r["context"]["retries"] for r in recorder.requests) == retries  # each retry in its request
    assert traffic_ids(fault_admin, run.traffic_tag).isdisjoint(before_ids)


@pytest.mark.parametrize("mode", MODES)
def test_pool_reset_is_one_reconnection_per_user_in_either_mode(
    redis_server: EmbeddedRedis, fault_admin: redis.Redis, mode: str
) -> None:
    recorder = Recorder()
    run = make_run(redis_server, mode)
    clients = users(run, 3, recorder)
    received = connections_received(fault_admin)
    fault = build_fault(PoolResetParams(name="pool_reset"), FaultTarget(fault_admin, run.traffic_tag, run.reset_pools))
    assert fault.inject() == {"pools": 3, "connections_closed": 3, "in_use": 3 if mode == "dedicated" else 0}
    recorder.requests.clear()
    for client in clients:
        client.ping()
    assert counted(clients) == (0, 3)
    assert connections_received(fault_admin) - received == 3
    assert [r["context"]["reconnections"] for r in recorder.requests] == [1, 1, 1]


@pytest.mark.parametrize("mode", MODES)
def test_batch_is_one_request_of_all_its_commands(redis_server: EmbeddedRedis, admin: redis.Redis, mode: str) -> None:
    recorder = Recorder()
    run = make_run(redis_server, mode)
    (client,) = users(run, 1, recorder)
    recorder.requests.clear()
    replies = client.batch([("SET", "b:a", b"1"), ("GET", "b:a"), ("INCR", "b:n"), ("GET", "b:missing")])
    assert replies == [True, b"1", 1, None]  # redis-py's pipeline, its reply callbacks applied
    (request,) = recorder.requests
    assert (request["name"], request["context"]["commands"], request["exception"]) == ("PIPELINE cache", 4, None)
    with pytest.raises(RedisRequestFailed, match="wrong number of arguments"):
        client.batch([("SET", "b:x", 1), ("INCR", "b:a", "extra"), ("SET", "b:y", 2)])
    assert admin.mget("b:x", "b:y") == [b"1", b"2"]  # every command ran; the error is raised after all replies
    assert recorder.requests[-1]["exception"] is not None
    assert client.get("b:a") == b"1"  # the connection is clean afterwards


def test_what_a_cluster_target_does_not_take_is_refused_up_front() -> None:
    url = "cluster://127.0.0.1:7000"
    check_connection_mode(parse_profile({}, "p.yaml"), url, "p.yaml")
    with pytest.raises(SetupError, match=r"p.yaml: client.connection: dedicated is for redis://"):
        check_connection_mode(parse_profile({"client": {"connection": "dedicated"}}, "p.yaml"), url, "p.yaml")
    with pytest.raises(SetupError, match=r"client.parser: python is not available on a cluster"):
        check_connection_mode(parse_profile({"client": {"parser": "python"}}, "p.yaml"), url, "p.yaml")
    check_connection_mode(parse_profile({"client": {"connection": "dedicated"}}, "p.yaml"), "redis://h:1/0", "p.yaml")


@pytest.mark.parametrize("mode", MODES)
def test_a_watching_pipeline_or_a_subscription_keeps_its_connection_to_itself(
    redis_server: EmbeddedRedis, admin: redis.Redis, fault_admin: redis.Redis, mode: str
) -> None:
    """A pipeline under WATCH and a subscription hold a connection of their own (redis-py's, in both modes:
    a single-connection client's pipeline checks another out of its pool), so the user's commands
    meanwhile go on another, and cannot drop the WATCH or eat a subscription's messages."""
    run = make_run(redis_server, mode)
    (client,) = users(run, 1, Recorder())
    admin.set("acct", 0)
    with client.pipeline() as pipe:
        pipe.watch("acct")
        (watching,) = [c for c in fault_admin.client_list() if c.get("cmd") == "watch"]
        fault_admin.client_kill_filter(_id=watching["id"])  # the watching connection dies
        assert client.ping() is True  # another connection: no retry of the watching one
        admin.set("acct", 100)  # someone else writes the watched key
        pipe.multi()
        pipe.set("acct", 1)
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert admin.get("acct") == b"100"  # the lost update did not happen
    pubsub = client.pubsub()
    pubsub.subscribe("ch")
    assert client.get("acct") == b"100"
    confirmed = pubsub.get_message(timeout=2)
    assert confirmed is not None and confirmed["type"] in ("subscribe", b"subscribe")
    admin.publish("ch", "hello")
    message = pubsub.get_message(timeout=2)
    assert message is not None and message["data"] == b"hello"
    pubsub.close()


def test_batch_splits_a_command_name_of_several_words_as_redis_py_does(redis_server: EmbeddedRedis) -> None:
    run = make_run(redis_server, "dedicated")
    (client,) = users(run, 1, Recorder())
    assert client.batch([("CONFIG GET", "maxmemory"), ("GET", "k0")])[1] == b"0"
