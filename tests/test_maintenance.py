"""The maintenance fault: the built-in proxy's RESP-aware mode answering redis-py's CLIENT MAINT_NOTIFICATIONS
and pushing MOVING / MIGRATING / FAILING_OVER, on real sockets, a real redis-server behind it (which does not
know the command) and stock redis-py handling them; and a real pack run."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
import redis
from redis.maint_notifications import MaintNotificationsConfig

from chaos.faults import FaultTarget, build_fault
from chaos.profile import parse_profile
from targets.builtin_proxy import BuiltinProxy
from targets.embedded import EmbeddedRedis
from targets.resp_wire import take_frames

from .helpers import eventually, finish, headless_args, locust, no_pools, write_profile

RELAXED_S = 10  # redis-py's relaxed_timeout by default
SOCKET_TIMEOUT_S = 5.0


@pytest.fixture
def proxy(redis_server: EmbeddedRedis) -> Iterator[BuiltinProxy]:
    crashes: list[BaseException] = []
    driver = BuiltinProxy(redis_server.host, redis_server.port, on_crash=crashes.append, resp_aware=True)
    try:
        yield driver
    finally:
        driver.close()
    assert not crashes


def pool_through(proxy: BuiltinProxy, host: str = "127.0.0.1", **kwargs: Any) -> redis.ConnectionPool:
    return redis.ConnectionPool(host=host, port=proxy.port, socket_timeout=SOCKET_TIMEOUT_S, **kwargs)


def fault(proxy: BuiltinProxy, redis_server: EmbeddedRedis, fault_id: int = 1, **params: Any) -> Any:
    spec = parse_profile({"chaos": {"faults": [{"name": "maintenance", **params}]}}, "test").chaos.faults[0]
    admin = redis.Redis.from_url(redis_server.url)
    return build_fault(spec, FaultTarget(admin, "rr-t-", no_pools, fault_id=fault_id, network=proxy))


def timeouts(pool: redis.ConnectionPool) -> set[float | None]:
    """The socket timeout of every connection of the pool now (redis-py's own sockets)."""
    conns = [*pool._available_connections, *pool._in_use_connections]  # what the pool holds; read, not changed
    return {c._sock.gettimeout() for c in conns if c._sock is not None}


@pytest.mark.parametrize(
    "frame",
    [
        b"+OK\r\n",
        b"$-1\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"$3\r\na\r\n\r\n",
        b"%1\r\n+k\r\n:1\r\n",
        b"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n",
        b">3\r\n+MIGRATED\r\n:2\r\n*1\r\n:1\r\n",
        b"_\r\n",
        b"PING\r\n",
    ],
)
def test_whole_frames_are_found_and_a_part_waits(frame: bytes) -> None:
    """A frame of every RESP3 type (an attribute with the value it describes, a bulk holding CRLF, a push):
    found whole after a second one is added, and not while a byte is missing."""
    frames = take_frames(bytearray(b""), frame + frame[:-1])
    assert frames == [frame]
    buf = bytearray()
    assert take_frames(buf, frame[:-1]) == [] and take_frames(buf, frame[-1:]) == [frame] and not buf


def test_the_proxy_answers_the_handshake_the_server_does_not_know(
    proxy: BuiltinProxy, redis_server: EmbeddedRedis
) -> None:
    on = MaintNotificationsConfig(enabled=True)  # a refusal is an error, not a quiet fallback
    with pytest.raises(redis.ResponseError):  # redis-server 7.0 itself does not know the command
        redis.Redis(host=redis_server.host, port=redis_server.port, maint_notifications_config=on).ping()
    client = redis.Redis(connection_pool=pool_through(proxy, maint_notifications_config=on))
    assert client.ping() and client.set("k", "v") and client.get("k") == b"v"
    assert len(proxy.notified()) == 1  # it asked, the proxy said +OK
    client.close()


def test_the_proxys_answer_keeps_its_place_among_pipelined_replies(proxy: BuiltinProxy) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as raw:
        raw.sendall(
            b"*1\r\n$4\r\nPING\r\n*3\r\n$6\r\nCLIENT\r\n$19\r\nMAINT_NOTIFICATIONS\r\n$2\r\nON\r\n"
            b"*2\r\n$4\r\nECHO\r\n$5\r\nafter\r\n"
        )
        got = b""
        while got.count(b"\r\n") < 4:
            got += raw.recv(1024)
    assert got == b"+PONG\r\n+OK\r\n$5\r\nafter\r\n"  # PING's, then ours, then ECHO's


@pytest.mark.parametrize("event", ["migrating", "failing_over"])
def test_a_start_relaxes_redis_pys_timeouts_and_its_end_restores_them(
    proxy: BuiltinProxy, redis_server: EmbeddedRedis, event: str
) -> None:
    pool = pool_through(proxy)
    client = redis.Redis(connection_pool=pool)
    client.ping()
    assert timeouts(pool) == {SOCKET_TIMEOUT_S}
    maint = fault(proxy, redis_server, event=event, duration_s=1)
    details = maint.inject()
    assert details["notified"] == 1 and details["connections"] == 1, details
    client.ping()  # redis-py reads the push with its next reply
    assert timeouts(pool) == {RELAXED_S}
    maint.revert()  # MIGRATED / FAILED_OVER
    client.ping()
    assert timeouts(pool) == {SOCKET_TIMEOUT_S}
    client.close()


def test_a_push_waits_for_the_end_of_a_reply_being_sent(proxy: BuiltinProxy, redis_server: EmbeddedRedis) -> None:
    """A 4 MB reply passes in slow slices; the push comes between two frames, never inside the reply."""
    pool = pool_through(proxy)
    client = redis.Redis(connection_pool=pool)
    value = b"x" * (4 << 20)
    client.set("big", value)
    proxy.add_toxic("slow", "slicer", {"average_size": 65536, "size_variation": 0, "delay": 2000}, "downstream")
    conn = pool.get_connection()
    conn.send_command("GET", "big")
    # the reply is on its way: its first slice has reached the client, 63 more follow 2 ms apart
    eventually("the first slice of the 4 MB reply reached the client", lambda: conn.can_read(timeout=0), 5)
    reader = gevent.spawn(conn.read_response)  # read on while the push waits for the reply's end
    maint = fault(proxy, redis_server, event="migrating")
    assert maint.inject()["notified"] == 1
    assert gevent.wait([reader], timeout=10), "the 4 MB reply did not arrive whole within 10 s"
    assert reader.get() == value
    pool.release(conn)
    proxy.remove_toxic("slow")
    client.ping()
    assert timeouts(pool) == {RELAXED_S}
    maint.revert()
    client.close()


def test_moving_hands_the_pool_over_to_the_second_listener(proxy: BuiltinProxy, redis_server: EmbeddedRedis) -> None:
    pool = pool_through(proxy)
    client = redis.Redis(connection_pool=pool)
    failures: list[BaseException] = []

    def work() -> None:
        for _ in range(400):
            try:
                client.incr("n")
            except redis.RedisError as exc:
                failures.append(exc)
            gevent.sleep(0.002)  # the users' think time: the traffic's pace, not a wait for anything

    users = [gevent.spawn(work) for _ in range(5)]
    eventually("5 connections", lambda: len(proxy.notified()) == 5, 5)
    maint = fault(proxy, redis_server, event="moving", ttl_s=1)
    maint.check()
    details = maint.inject()
    assert details["notified"] == 5 and details["endpoint"] == f"127.0.0.2:{proxy.port}", details
    eventually("the pool on 127.0.0.2", lambda: {c.listener for c in proxy.conns} == {"127.0.0.2"}, 5)
    assert {(c.host, c.port) for c in pool._available_connections} <= {("127.0.0.2", proxy.port)}
    maint.revert()  # after ttl_s: the old listener's connections are cut (none is left)
    gevent.joinall(users, timeout=20)
    assert not failures and client.get("n") == b"2000"
    closed = maint.window_closed()
    assert closed["moved"] >= 5 and 0 <= closed["handoff_s"] < 1.0, closed
    client.close()


def test_fraction_and_clients_that_did_not_ask(proxy: BuiltinProxy, redis_server: EmbeddedRedis) -> None:
    pool = pool_through(proxy, max_connections=20)
    conns = [pool.get_connection() for _ in range(20)]
    deaf = redis.Redis(connection_pool=pool_through(proxy, maint_notifications_config=MaintNotificationsConfig(False)))
    deaf.ping()  # its connection did not ask: never notified
    details = fault(proxy, redis_server, event="migrating", fraction=0.5).inject()
    assert (details["connections"], details["notified"]) == (20, 10), details
    for conn in conns:
        pool.release(conn)
    pool.disconnect()
    deaf.close()


def test_the_toxiproxy_driver_and_tls_are_refused() -> None:
    with pytest.raises(Exception, match="resp_aware needs driver: builtin"):
        parse_profile({"target": {"proxy": {"driver": "toxiproxy", "resp_aware": True}}}, "t")
    with pytest.raises(Exception, match="loopback address other than"):
        parse_profile({"chaos": {"faults": [{"name": "maintenance", "moving_host": "127.0.0.1"}]}}, "t")


def run_pack(tmp_path: Path, client: dict[str, Any], server: str = "redis") -> dict[str, Any]:
    profile = write_profile(
        tmp_path / "maint.yaml",
        {
            "target": {"url": "embedded", "server": server, "proxy": {"driver": "builtin"}},
            "client": client,
            "chaos": {
                "start_after_s": 2,
                "every_s": 4,
                "count": 2,
                "order": "cycle",
                "faults": [
                    {"name": "maintenance", "event": "moving", "ttl_s": 2},
                    {"name": "maintenance", "event": "migrating", "duration_s": 1},
                ],
            },
            "recovery": {"max_window_s": 3.5},
            "slo": {"max_recovery_p95_s": None, "max_error_rate_in_windows": None},
        },
    )
    report_path = tmp_path / "report.json"
    proc = locust(
        headless_args(10, "11s", "--resilience-profile", str(profile), "--resilience-report", str(report_path))
    )
    out = finish(proc, timeout=90)
    assert "Traceback" not in out and report_path.exists(), out[-4000:]
    report: dict[str, Any] = json.loads(report_path.read_text())
    return report


def test_a_pack_run_moves_redis_pys_connections_and_says_how_long_the_handoff_took(tmp_path: Path) -> None:
    moving, migrating = run_pack(tmp_path, {})["faults"]
    details = moving["details"]
    assert moving["ok"] and details["notified"] == details["connections"] >= 10, moving  # a pool per user
    assert details["moved"] >= details["notified"] and details["handoff_s"] is not None, details
    assert details["handoff_s"] < 2.0 and moving["failures"] == 0, moving  # handed over within the ttl, no error
    # the connections live on at the new endpoint, where the next notice reaches them
    assert migrating["ok"] and migrating["details"]["notified"] >= 10 and migrating["failures"] == 0, migrating
    deaf, _ = run_pack(tmp_path, {"maint_notifications": "off"})["faults"]  # none asked: none is told
    assert deaf["ok"] and deaf["details"]["notified"] == 0 and deaf["details"]["moved"] == 0, deaf
    # they stayed on the old endpoint, which the proxy closes after the ttl: redis-py reconnects them
    assert deaf["reconnections"] >= 10, deaf


def test_on_valkey_the_proxy_tells_redis_py_all_the_same(tmp_path: Path) -> None:
    """The RESP-aware proxy answers redis-py's CLIENT MAINT_NOTIFICATIONS itself, so the server behind it
    (Valkey here, Redis 7.0 elsewhere: both would refuse it) does not matter: the notices reach redis-py."""
    report = run_pack(tmp_path, {}, "valkey")
    moving, migrating = report["faults"]
    details = moving["details"]
    assert moving["ok"] and details["notified"] == details["connections"] >= 10, moving
    assert details["moved"] >= details["notified"] and details["handoff_s"] is not None, details
    assert moving["failures"] == 0 and migrating["ok"] and migrating["failures"] == 0, report["faults"]
    assert {s["server"] for s in report["environment"]["servers"]} == {"valkey"}, report["environment"]
