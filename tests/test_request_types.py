"""Request types a user class declares are measured: a user's own type gets fault windows and ``by_type``
figures, a type no running class declares does not (scenarios/request_types.py)."""

from __future__ import annotations

from locust import User, constant, task
from locust.env import Environment
from locust.event import Events

import logging
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import pytest
import redis

from chaos.plugin import attach_pack
from chaos.roles.local import LocalRole
from chaos.settings import Settings
from scenarios.cache import CacheUser
from scenarios.request_types import DeclaresRequestTypes, declared_request_types
from scenarios.service_user import ServiceUser
from scenarios.user import RedisUser
from targets.embedded import EmbeddedRedis

from .helpers import write_profile

FAULTS = 2
PAUSE_MS = 400


def test_the_types_the_user_classes_declare() -> None:
    class Plain(User):
        abstract = True

    class Mine(DeclaresRequestTypes, User):
        abstract = True
        request_types = ("MYDB",)

    class MoreOfMine(RedisUser):
        abstract = True
        request_types = (*RedisUser.request_types, "LOCK")

    assert declared_request_types([CacheUser, ServiceUser]) == {"REDIS", "HTTP"}
    assert declared_request_types([Plain, Mine, MoreOfMine]) == {"MYDB", "REDIS", "LOCK"}
    assert declared_request_types([Plain]) == set()


def test_a_request_type_that_is_not_a_tuple_of_names_is_refused_where_the_class_is_defined() -> None:
    with pytest.raises(
        TypeError, match=r"Typo\.request_types: expected a tuple of names such as \('MYDB',\), got 'MYDB'"
    ):
        type("Typo", (DeclaresRequestTypes,), {"request_types": "MYDB"})  # ("MYDB") is a string
    with pytest.raises(TypeError, match="got \\('',\\)"):
        type("Empty", (DeclaresRequestTypes,), {"request_types": ("",)})


def test_a_user_class_with_its_own_request_type_is_measured_in_the_fault_windows(
    tmp_path: Path, redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """A user of one's own (not a RedisUser) times its database calls as MYDB requests through its own
    redis-py client; a server-wide CLIENT PAUSE stalls them. The report measures MYDB as it measures the
    pack's REDIS requests; OTHER, which no class declares, is left out and said once in the log."""

    class MyDbUser(DeclaresRequestTypes, User):
        request_types = ("MYDB",)
        weight = 3
        wait_time = constant(0.005)

        def __init__(self, environment: Environment) -> None:
            super().__init__(environment)
            self.db = redis.Redis.from_url(redis_server.url)
            self.fire = environment.events.request.fire

        @task
        def ping(self) -> None:
            start = time.perf_counter()
            failed: Exception | None = None
            try:
                self.db.ping()
            except redis.RedisError as exc:
                failed = exc
            elapsed_ms = (time.perf_counter() - start) * 1000
            self.fire(
                request_type="MYDB",
                name="ping",
                response_time=elapsed_ms,
                response_length=0,
                exception=failed,
                context={"user": id(self)},
            )
            self.fire(request_type="OTHER", name="ping", response_time=elapsed_ms, response_length=0, exception=None)

        def on_stop(self) -> None:
            self.db.close()

    profile = write_profile(
        tmp_path / "p.yaml",
        {
            "target": {"url": redis_server.url},
            "workload": {
                "think_time": {"min_ms": 0, "max_ms": 5},
                "mix": {"cache": {"weight": 3}, "ledger": {"weight": 0}},
            },
            "chaos": {
                "start_after_s": 1,
                "every_s": 1.2,
                "jitter_s": 0,
                "count": FAULTS,
                "faults": [{"name": "client_pause", "pause_ms": PAUSE_MS}],
            },
            "recovery": {"max_window_s": 1.0, "degraded_latency_ms": 100},
        },
    )
    env = Environment(user_classes=[CacheUser, MyDbUser], events=Events())
    pack = attach_pack(env, Settings(profile_path=str(profile), report_path=str(tmp_path / "report.json")))
    assert isinstance(pack, LocalRole)
    closed = gevent.event.Event()  # the last fault's MYDB window closed recovered

    def recovered(fault_id: int, request_type: str, **_: Any) -> None:
        if (fault_id, request_type) == (FAULTS, "MYDB"):
            closed.set()

    env.events.fault_recovered.add_listener(recovered)  # type: ignore[attr-defined]
    runner = env.create_local_runner()
    caplog.set_level(logging.WARNING, logger="redis_resilience")
    runner.start(6, spawn_rate=6)
    try:
        assert closed.wait(timeout=30), "the last fault's MYDB window never closed recovered"
    finally:
        runner.quit()
        pack.close()

    report = pack.report
    assert report is not None
    mine = report["summary"]["by_type"]["MYDB"]
    assert mine["requests"] == env.stats.get("ping", "MYDB").num_requests > 0  # every one of them, as Locust counts
    assert mine["in_windows"]["requests"] > 0 and mine["faults_recovered"] == FAULTS
    assert set(report["summary"]["by_type"]) == {"REDIS", "MYDB"}  # OTHER: declared by no class, not measured
    assert set(report["baseline"]["by_type"]) == {"REDIS", "MYDB"}
    for fault in report["faults"]:
        assert fault["ok"], fault
        window = fault["by_type"]["MYDB"]
        assert window["requests"] > 0 and window["degraded"] > 0, window  # stalled by the pause
        assert window["recovered"] and PAUSE_MS / 1000 / 2 < window["recovery_s"] < 1.0, window
    warned = [r.getMessage() for r in caplog.records if "'OTHER'" in r.getMessage()]
    assert warned == [
        "redis-resilience: requests of type 'OTHER' are not measured: no running user class "
        "declares it in request_types (docs/extending.md)"
    ]
