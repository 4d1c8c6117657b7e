"""Shared fixtures: real redis-server processes on free loopback ports, stopped by PID."""

from __future__ import annotations

import locust  # noqa: F401  (first: patches the standard library with gevent, as a locust run does)

from collections.abc import Iterator

import pytest
import redis

from targets.embedded import EmbeddedRedis

from .helpers import pid_alive


@pytest.fixture
def redis_server() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis().start()
    try:
        yield server
    finally:
        pid = server.pid
        server.stop()
        assert pid is not None and not pid_alive(pid)


@pytest.fixture
def admin(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, client_name="test-admin")
    try:
        yield client
    finally:
        client.close()
