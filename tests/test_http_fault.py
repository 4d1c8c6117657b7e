"""The http fault against a real HTTP endpoint on loopback (a service's own reset endpoint)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import pytest
import redis
from gevent.pywsgi import WSGIServer

from chaos.faults import FaultTarget, build_fault
from chaos.faults.http import HttpCallFailed, HttpParams
from chaos.profile import parse_profile
from config.loader import ProfileError
from config.redact import redact_params
from targets.embedded import EmbeddedRedis

from .helpers import finish, headless_args, locust, no_pools, write_profile


class ResetService:
    """A service with a Redis pool and its own ``POST /chaos/redis-reset`` endpoint."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.client = redis.Redis.from_url(redis_url)
        self.calls: list[dict[str, Any]] = []
        self.status = "200 OK"
        self.delay_s = 0.0
        self.server = WSGIServer(("127.0.0.1", 0), self.app, log=None)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/chaos/redis-reset"

    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read()
        self.calls.append(
            {
                "method": environ["REQUEST_METHOD"],
                "path": environ["PATH_INFO"],
                "auth": environ.get("HTTP_AUTHORIZATION"),
                "body": json.loads(body or b"null"),
            }
        )
        gevent.sleep(self.delay_s)  # the service's own work
        self.client.connection_pool.disconnect()  # what such endpoints do: drop every Redis connection
        start_response(self.status, [("Content-Type", "application/json")])
        return [b'{"reset": true}']


@pytest.fixture
def service(redis_server: EmbeddedRedis) -> Iterator[ResetService]:
    svc = ResetService(redis_server.url)
    yield svc
    svc.server.stop()
    svc.client.close()


def target(url: str) -> FaultTarget:
    return FaultTarget(redis.Redis.from_url(url), "rr-t-", no_pools)


def test_a_secret_header_comes_from_the_environment_never_inline(service: ResetService, monkeypatch: Any) -> None:
    with pytest.raises(ProfileError, match=r"headers: Authorization holds a secret written in the profile.*header_env"):
        parse_profile(
            {"chaos": {"faults": [{"name": "http", "url": service.url, "headers": {"Authorization": "Bearer x"}}]}},
            "p.yaml",
        )
    params = HttpParams(name="http", url=service.url, header_env={"Authorization": "RR_TEST_TOKEN"})
    fault = build_fault(params, target(service.redis_url))
    with pytest.raises(HttpCallFailed, match="environment variable RR_TEST_TOKEN is not set"):
        fault.inject()
    monkeypatch.setenv("RR_TEST_TOKEN", "Bearer from-env")
    assert fault.inject()["status"] == 200
    assert service.calls[-1]["auth"] == "Bearer from-env"


def test_http_fault_calls_the_endpoint_and_records_status_and_latency(service: ResetService) -> None:
    service.client.ping()
    (connection,) = service.client.connection_pool._available_connections
    assert connection._sock is not None
    service.delay_s = 0.1
    params = HttpParams(
        name="http", url=service.url, headers={"Authorization": "Bearer s3cret"}, allow_inline_secrets=True
    )
    details = build_fault(params, target(service.url.replace("http", "redis", 1))).inject()
    assert details["status"] == 200 and 100 <= details["latency_ms"] < 2000
    assert service.calls == [
        {"method": "POST", "path": "/chaos/redis-reset", "auth": "Bearer s3cret", "body": {"force": True}}
    ]
    assert connection._sock is None
    assert "s3cret" not in json.dumps(redact_params(params.model_dump()))


def test_unexpected_status_or_timeout_fails_the_fault(service: ResetService) -> None:
    service.status = "503 Service Unavailable"
    fault = build_fault(HttpParams(name="http", url=service.url), target("redis://127.0.0.1:1"))
    with pytest.raises(HttpCallFailed, match=r"answered 503 .* expected"):
        fault.inject()
    service.status, service.delay_s = "200 OK", 2.0
    fault = build_fault(HttpParams(name="http", url=service.url, timeout_s=0.3), target("redis://127.0.0.1:1"))
    with pytest.raises(Exception, match="timed out"), gevent.Timeout(5):
        fault.inject()


def test_a_remote_url_needs_allow_remote() -> None:
    message = r"^p\.yaml: chaos\.faults\[0\]: url: example\.com is not a loopback address\. Set allow_remote: true"
    with pytest.raises(ProfileError, match=message):
        parse_profile({"chaos": {"faults": [{"name": "http", "url": "http://example.com/reset"}]}}, "p.yaml")


def test_http_fault_in_a_headless_run_records_the_call(service: ResetService, tmp_path: Path) -> None:
    profile = write_profile(
        tmp_path / "p.yaml",
        {
            "chaos": {
                "start_after_s": 2,
                "every_s": 3,
                "count": 2,
                "faults": [{"name": "http", "url": service.url, "header_env": {"Authorization": "RR_TEST_TOKEN"}}],
            }
        },
    )
    report_path = tmp_path / "report.json"
    proc = locust(
        headless_args(
            5,
            "9s",
            "--resilience-profile",
            str(profile),
            "--redis-url",
            service.redis_url,
            "--resilience-report",
            str(report_path),
        ),
        env={**os.environ, "RR_TEST_TOKEN": "Bearer k3y-s3cret"},
    )
    out = finish(proc, timeout=60)  # cooperative under gevent: the service answers meanwhile
    assert proc.returncode == 0, out[-3000:]
    report = json.loads(report_path.read_text())
    faults = report["faults"]
    assert [f["name"] for f in faults] == ["http", "http"] and len(service.calls) == 2
    for f in faults:
        assert f["ok"] and f["details"]["status"] == 200 and f["details"]["latency_ms"] > 0
        assert f["params"]["header_env"] == {"Authorization": "***"} and f["recovery_s"] is not None
    assert [c["auth"] for c in service.calls] == ["Bearer k3y-s3cret"] * 2
    assert "k3y-s3cret" not in out and "k3y-s3cret" not in report_path.read_text()
