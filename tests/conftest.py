"""Shared fixtures: real redis-server processes on free loopback ports, stopped by PID.

The tests run with the standard library patched by gevent, as a locust run does (``import locust``
patches it). The patch waits for ``pytest_configure``: a pytest-xdist worker builds its queue of tests
before that, and the queue must keep real thread primitives, as execnet fills it from a real thread.
Nothing at the top of this module imports the pack or Locust, so nothing is imported unpatched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import redis

    from targets.embedded import EmbeddedRedis


def pytest_configure(config: pytest.Config) -> None:
    """Patch with gevent in a test process; not in the xdist controller, which only hands out tests."""
    worker = hasattr(config, "workerinput")
    if not worker and getattr(config.option, "dist", "no") != "no":
        return  # the controller
    import locust  # noqa: F401  (monkey.patch_all(), as a locust run does)

    if worker:
        import gevent

        gevent.spawn(keep_the_hub_waiting)


def keep_the_hub_waiting() -> None:
    """An xdist worker's main thread waits for its next test on a lock that execnet's thread releases.
    Patched, that lock is gevent's: with nothing else scheduled, the hub would give up at once
    (``LoopExit: This operation would block forever``) instead of waiting to be woken from that
    thread. A timer that is always pending keeps it waiting (the wake-up itself is immediate)."""
    import gevent

    while True:
        gevent.sleep(3600)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests of an ``xdist_group`` first, in their own order: each group runs whole on one worker
    (``--dist loadgroup``), the heavy one for minutes; started last, it would run on alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("xdist_group") is None)


@pytest.fixture
def redis_server() -> Iterator[EmbeddedRedis]:
    from targets.embedded import EmbeddedRedis

    from .helpers import pid_alive

    server = EmbeddedRedis().start()
    try:
        yield server
    finally:
        pid = server.pid
        server.stop()
        assert pid is not None and not pid_alive(pid)


@pytest.fixture
def admin(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    import redis

    client = redis.Redis.from_url(redis_server.url, client_name="test-admin")
    try:
        yield client
    finally:
        client.close()
