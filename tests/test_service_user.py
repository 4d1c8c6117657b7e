"""ServiceUser's judgement and its requests, in a real Locust Environment against a real HTTP server
(a gevent StreamServer on a loopback port that echoes what it got)."""

from __future__ import annotations

from locust.env import Environment
from locust.event import Events

import base64
import json
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
from gevent.server import StreamServer

from chaos.profile import parse_profile
from config.schema import Profile
from config.service import BodyCheck, Endpoint
from scenarios.run import PackRun, attach
from scenarios.service_user import ServiceUser, check_body, judge


def service_user(profile: Profile, url: str) -> tuple[ServiceUser, list[dict[str, Any]]]:
    """A ServiceUser of ``profile`` in a real Environment, and the requests it fires (as they come)."""
    env = Environment(user_classes=[ServiceUser], events=Events())
    attach(env, PackRun(profile, "redis://127.0.0.1:1", "svc", service_url=url))
    seen: list[dict[str, Any]] = []
    env.events.request.add_listener(lambda **kw: seen.append(kw))
    return ServiceUser(env), seen


def test_a_200_is_judged_by_its_status_and_its_body() -> None:
    healthy = [BodyCheck(path="status", equals="healthy")]
    endpoint = Endpoint(path="/health", checks=healthy)
    assert judge(endpoint, 200, b'{"status": "healthy"}') is None
    assert judge(endpoint, 200, b'{"status": "unhealthy"}') == 'status is "unhealthy", expected "healthy"'
    assert judge(endpoint, 503, b'{"status": "healthy"}') == "status 503, expected 2xx"
    assert judge(Endpoint(path="/x", expect_status=[404]), 404, b"") is None
    assert judge(Endpoint(path="/x"), 204, None) is None  # no checks: the body is not read
    assert check_body(healthy, b"<html>") == "the body is not JSON"
    nested = [BodyCheck(path="data.items.1.id", contains="b"), BodyCheck(path="tags", contains="x")]
    assert check_body(nested, b'{"data": {"items": [{"id": "a"}, {"id": "abc"}]}, "tags": ["x"]}') is None
    assert check_body(nested, b'{"data": {"items": [{"id": "a"}]}, "tags": ["x"]}') == "the body has no data.items.1.id"
    assert check_body([BodyCheck(path="n", contains="1")], b'{"n": 1}') == 'n (1) does not contain "1"'
    assert check_body([BodyCheck(path="v", equals=None)], b'{"v": null}') is None


@pytest.fixture
def echo() -> Iterator[str]:
    """A keep-alive HTTP server answering 200 with the request line, headers and body as JSON."""

    def handle(sock: Any, _address: Any) -> None:
        stream = sock.makefile("rb")
        while True:
            line = stream.readline()
            if not line:
                return
            headers = {}
            while (header := stream.readline()) not in (b"\r\n", b""):
                name, _, value = header.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = stream.read(int(headers.get("content-length", 0))).decode()
            if " /slow" in line.decode():
                gevent.sleep(1.2)
            payload = json.dumps({"line": line.decode().strip(), "headers": headers, "body": body}).encode()
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(payload), payload)
            )

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    yield f"http://{server.server_host}:{server.server_port}"
    server.stop()


def test_service_user_sends_each_endpoint_as_http_with_its_name_body_and_credentials(
    echo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKEN_FOR_TEST", "s3cret")
    url = echo.replace("http://", "http://alice:pw@")  # credentials in the URL: basic auth, out of the URL
    profile = parse_profile(
        {
            "service": {
                "url": url,
                "endpoints": [
                    {
                        "name": "PUT /items",
                        "method": "PUT",
                        "path": "/items/{n}",
                        "keys": 3,
                        "body": {"by": "{user}"},
                        "header_env": {"X-Api-Key": "TOKEN_FOR_TEST"},
                        "checks": [{"path": "line", "contains": "PUT /items/"}],
                    },
                    {"name": "GET /wrong", "path": "/w", "checks": [{"path": "headers.x-nope", "equals": "1"}]},
                ],
            }
        },
        "test",
    )
    user, seen = service_user(profile, url)
    put, wrong = user._endpoints
    user.send(put)
    user.send(wrong)
    first, second = seen
    assert (first["request_type"], first["name"], first["exception"]) == ("HTTP", "PUT /items", None), first
    assert first["context"] == {"user": user.user_key} and first["response_length"] > 0
    assert type(second["exception"]).__name__ == "BadAnswer" and "no headers.x-nope" in str(second["exception"])
    # What the server got: the key filled in, the user's key in the body, the secret header, basic auth
    user._agent.valid_response_codes = frozenset(range(100, 600))
    echoed = json.loads(user._agent.urlopen(user._base + "/echo", method="GET", headers=put.headers).content)
    assert echoed["headers"]["x-api-key"] == "s3cret"
    assert echoed["headers"]["authorization"] == "Basic " + base64.b64encode(b"alice:pw").decode()
    path, body = put.render(user.user_key)
    assert path in ("/items/0", "/items/1", "/items/2") and json.loads(body or "") == {"by": user.user_key}


def test_each_endpoint_has_its_own_timeout_longer_or_shorter_than_the_services(echo: str) -> None:
    profile = parse_profile(
        {
            "service": {
                "url": echo,
                "timeout_s": 0.6,
                "endpoints": [
                    {"name": "slow, given 3 s", "path": "/slow", "timeout_s": 3},
                    {"name": "slow, the service's 0.6 s", "path": "/slow"},
                    {"name": "slow, given 0.3 s", "path": "/slow", "timeout_s": 0.3},
                ],
            }
        },
        "test",
    )
    user, seen = service_user(profile, echo)
    assert user.network_timeout == 3  # the connection's: the longest
    for prepared in user._endpoints:
        user.send(prepared)
    given_3, given_default, given_short = seen
    assert given_3["exception"] is None and 1100 <= given_3["response_time"] < 2900, given_3
    assert given_default["exception"] is not None and 550 <= given_default["response_time"] < 1100, given_default
    assert given_short["exception"] is not None and 250 <= given_short["response_time"] < 900, given_short
