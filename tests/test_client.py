"""The instrumented client against a real redis-server: events, names, hidden retries and reconnections."""

from __future__ import annotations

from typing import Any

import gevent
import pytest
import redis

from config.schema import ClientOptions
from scenarios.client import ConnectionProbe, InstrumentedRedis, RedisRequestFailed, make_pool
from targets.embedded import EmbeddedRedis, free_port

from .conditions import blocked_in
from .helpers import Recorder


def make_client(
    server: EmbeddedRedis, recorder: Recorder, name: str = "rr-test-0", **options: Any
) -> InstrumentedRedis:
    probe = ConnectionProbe()
    pool = make_pool(server.url, ClientOptions.model_validate(options), name, probe)
    return InstrumentedRedis(pool, recorder.hook, "cache", 7, probe)


def test_every_command_fires_a_request(redis_server: EmbeddedRedis) -> None:
    rec = Recorder()
    client = make_client(redis_server, rec)
    client.set("k", "v")
    assert client.get("k") == b"v"
    with client.named("checkout"):
        client.get("k")
    names = [r["name"] for r in rec.requests]
    assert names == ["SET cache", "GET cache", "checkout"]
    first = rec.requests[0]
    assert first["request_type"] == "REDIS"
    assert first["exception"] is None
    assert first["response_time"] > 0
    assert first["context"] == {"user": 7, "commands": 1, "blocking": False, "retries": 0, "reconnections": 0}


def test_connections_carry_the_run_tag(redis_server: EmbeddedRedis, admin: redis.Redis) -> None:
    client = make_client(redis_server, Recorder(), name="rr-abc-3")
    client.ping()
    assert "rr-abc-3" in [c.get("name") for c in admin.client_list()]


def test_killed_connection_is_a_hidden_retry(redis_server: EmbeddedRedis, admin: redis.Redis) -> None:
    rec = Recorder()
    client = make_client(redis_server, rec, name="rr-t-1", retries=3)
    waiter = gevent.spawn(client.blpop, ["q"], 20)
    killed = blocked_in(admin, "blpop", "rr-t-1")
    admin.client_kill_filter(_id=killed)
    assert blocked_in(admin, "blpop", "rr-t-1") != killed  # the retry re-issued BLPOP on a new connection
    admin.lpush("q", "x")
    with gevent.Timeout(5):
        assert waiter.get() == (b"q", b"x")
    (request,) = rec.requests
    assert request["exception"] is None  # the application saw nothing...
    assert request["context"]["retries"] == 1  # ...but redis-py retried once
    assert request["context"]["reconnections"] == 1


def test_without_retries_the_kill_is_a_failure(redis_server: EmbeddedRedis, admin: redis.Redis) -> None:
    rec = Recorder()
    client = make_client(redis_server, rec, name="rr-t-2", retries=0)
    waiter = gevent.spawn(client.blpop, ["q"], 20)
    admin.client_kill_filter(_id=blocked_in(admin, "blpop", "rr-t-2"))
    with gevent.Timeout(5):
        waiter.join()
    assert isinstance(waiter.exception, RedisRequestFailed)
    assert isinstance(waiter.exception.cause, redis.ConnectionError)
    (request,) = rec.requests
    assert isinstance(request["exception"], redis.ConnectionError)
    assert request["name"] == "BLPOP cache"


def test_unreachable_server_fails_after_counted_retries() -> None:
    rec = Recorder()
    probe = ConnectionProbe()
    options = ClientOptions.model_validate({"retries": 2, "backoff": {"kind": "none"}, "socket_connect_timeout_s": 1})
    pool = make_pool(f"redis://127.0.0.1:{free_port()}/0", options, "rr-t-3", probe)
    client = InstrumentedRedis(pool, rec.hook, "cache", 1, probe)
    with pytest.raises(RedisRequestFailed):
        client.get("k")
    assert rec.requests[0]["context"]["retries"] >= 2
