"""The reference service (examples/service/app.py): a real FastAPI process on a
real redis-server, started and stopped by PID through targets/service.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from targets.embedded import EmbeddedRedis
from targets.service import ReferenceService, ServiceError

from .helpers import SERVICE, eventually, pid_alive

# Each start imports FastAPI (about a second of CPU): kept apart from the timed runs of the heavy group,
# whose fault windows counted the stalls it caused as degraded requests (recovery 2.2-2.4 s, twice).
pytestmark = SERVICE


@pytest.fixture
def service(redis_server: EmbeddedRedis) -> Iterator[ReferenceService]:
    started = ReferenceService(redis_server.url, {"CLIENT_NAME": "rs-test", "KEY_PREFIX": "rs-test"}).start()
    pid = started.pid
    yield started
    started.stop()
    assert pid is not None and not pid_alive(pid)


def test_it_reads_writes_and_counts_in_redis(service: ReferenceService, admin: redis.Redis) -> None:
    assert service.call("PUT", "/items/a", {"value": "x"}) == (200, {"item": "a", "stored": True})
    assert service.get("/items/a") == (200, {"item": "a", "found": True, "value": "x"})
    assert service.get("/items/nope") == (404, {"item": "nope", "found": False})
    assert service.call("POST", "/counters/c/incr") == (200, {"counter": "c", "value": 1})
    assert service.call("POST", "/counters/c/incr") == (200, {"counter": "c", "value": 2})
    assert admin.get("rs-test:item:a") == b"x" and admin.get("rs-test:counter:c") == b"2"
    assert service.get("/health") == (200, {"status": "healthy"})


def test_status_counts_from_the_pool_and_the_server_and_a_reset_closes_the_pool(service: ReferenceService) -> None:
    service.get("/health")
    status, body = service.get("/chaos/status")
    assert status == 200 and body["resets"] == 0 and body["last_reset"] is None
    assert body["pool"]["opened_since_start"] >= 1 and body["pool"]["in_use"] + body["pool"]["idle"] >= 1
    assert body["server"] == {"clients": body["pool"]["in_use"] + body["pool"]["idle"], "error": None}
    opened = body["pool"]["opened_since_start"]
    status, reset = service.call("POST", "/chaos/redis-reset", {"force": True})
    assert status == 200 and reset["reset"] is True and reset["force"] is True
    _, after = service.get("/chaos/status")  # this request itself reconnects: one socket more
    assert after["resets"] == 1 and after["last_reset"] == reset["at"]
    assert after["pool"]["opened_since_start"] == opened + 1, (body, after)


def test_redis_down_is_503_and_the_service_comes_back_with_it(
    service: ReferenceService, redis_server: EmbeddedRedis
) -> None:
    redis_server.kill(hard=True)
    status, body = service.get("/health")
    assert status == 503 and body["status"] == "unhealthy", body
    status, body = service.get("/items/a")
    assert status == 503 and body["error"] == "ConnectionError", body
    assert service.pid is not None and pid_alive(service.pid)  # the service stays up while its Redis is not
    redis_server.restart()
    eventually("the service is healthy again", lambda: service.get("/health")[0] == 200, 10)


def test_a_service_that_cannot_start_is_a_clear_error() -> None:
    broken = ReferenceService("redis://127.0.0.1:1/0", {"MAX_CONNECTIONS": "not-a-number"})
    with pytest.raises(ServiceError, match="exited at start"):
        broken.start(timeout_s=20)
    assert broken.process is None
