"""ServiceUser: HTTP users against the service under test (the profile's ``service``), on Locust's
``FastHttpUser`` (geventhttpclient).

Each request is one of ``service.endpoints``, chosen by weight, sent on the user's own keep-alive
connections (as a real client reuses them), and fired on Locust's ``request`` event with request
type ``HTTP`` and the endpoint's name (``GET /items``): the recovery tracker counts it beside the
Redis requests, with a baseline and a degraded threshold of its own. A request is a failure when it
raised (refused, reset, timed out), when its status is not the expected one (any 2xx by default),
or when a body check fails: a 200 that says ``"status": "unhealthy"`` is no success.

The request is sent through the session's user agent directly (not ``FastHttpSession.request``):
the pack fires the event itself, once, with its own request type, and does no per-request work it
does not need (``bench/http_users.py`` compares it with a bare ``FastHttpUser``).
"""

from __future__ import annotations

from locust import task
from locust.contrib.fasthttp import FAILURE_EXCEPTIONS, FastHttpUser
from locust.env import Environment

import json
import random
import time
from bisect import bisect
from itertools import accumulate
from typing import Any, ClassVar

import gevent

from config.service import BodyCheck, Endpoint, Expectation, Service
from scenarios.request_types import DeclaresRequestTypes
from scenarios.run import run_of

REQUEST_TYPE = "HTTP"
ANY_STATUS = frozenset(range(100, 600))  # the agent never raises on a status: the expectation decides


class BadAnswer(Exception):
    """The service answered, but not what the endpoint expects (status or body)."""


def _at_path(body: Any, parts: tuple[str, ...]) -> Any:
    """The value at a dotted path's parts (a number indexes a list); KeyError when there is none."""
    value = body
    for part in parts:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit():
            try:
                value = value[int(part)]
            except IndexError:
                raise KeyError(part) from None
        else:
            raise KeyError(part)
    return value


def _shown(value: Any) -> str:
    return json.dumps(value)[:80]


class Judge:
    """An expectation (statuses, body checks) made ready to judge answers: ``judge(status, content)`` says
    why an answer is a failure, None when it is a success. Built once per endpoint and user; per answer it
    reads no model and splits no path (it is on the hot path)."""

    __slots__ = ("checks", "statuses")

    def __init__(self, expect: Expectation) -> None:
        given = expect.expect_status
        self.statuses = None if given is None else frozenset(given)  # None: any 2xx
        self.checks = tuple(
            (
                c.path,
                tuple(c.path.split(".")),
                "equals" in c.model_fields_set,
                c.equals if "equals" in c.model_fields_set else c.contains,
            )
            for c in expect.checks
        )

    def __call__(self, status: int, content: bytes | None) -> str | None:
        statuses = self.statuses
        if (status not in statuses) if statuses is not None else not 200 <= status < 300:
            return f"status {status}, expected {sorted(statuses) if statuses is not None else '2xx'}"
        return self.check_body(content) if self.checks else None

    def check_body(self, content: bytes | None) -> str | None:
        try:
            body = json.loads(content or b"null")
        except ValueError:
            return "the body is not JSON"
        for path, parts, equals, expected in self.checks:
            try:
                value = _at_path(body, parts)
            except KeyError:
                return f"the body has no {path}"
            if equals:
                if value != expected:
                    return f"{path} is {_shown(value)}, expected {_shown(expected)}"
                continue
            try:
                holds = expected in value
            except TypeError:
                holds = False
            if not holds:
                return f"{path} ({_shown(value)}) does not contain {_shown(expected)}"
        return None


def judge(expect: Expectation, status: int, content: bytes | None) -> str | None:
    """Why an answer is a failure (None: a success), judged once (the pre-flight)."""
    return Judge(expect)(status, content)


def check_body(checks: list[BodyCheck], content: bytes | None) -> str | None:
    """What is wrong with a JSON body against ``checks`` (None: all hold)."""
    return Judge(Expectation(checks=checks)).check_body(content)


class Prepared:
    """An endpoint ready to send: its method, headers, and its path and body as templates."""

    __slots__ = ("body", "endpoint", "headers", "judge", "method", "name", "path", "timeout_s", "variable")

    def __init__(self, endpoint: Endpoint, service: Service, basic_auth: str | None = None) -> None:
        self.endpoint = endpoint
        self.judge = Judge(endpoint)
        self.method = endpoint.method
        self.name = endpoint.label
        self.path = endpoint.path
        self.body = None if endpoint.body is None else json.dumps(endpoint.body)
        self.variable = any("{n}" in t or "{user}" in t for t in (self.path, self.body or ""))
        self.headers = endpoint.resolved_headers()
        if self.body is not None:
            self.headers.setdefault("Content-Type", "application/json")
        if not service.reuse_connections:
            self.headers["Connection"] = "close"
        if basic_auth is not None:  # credentials in the service URL (http://user:password@host)
            self.headers.setdefault("Authorization", basic_auth)
        # The connection's timeout is the longest any endpoint has (longest_timeout_s); a shorter one is timed
        # on its own (None: the connection's covers it).
        timeout_s = endpoint.timeout_s or service.timeout_s
        self.timeout_s = timeout_s if timeout_s < longest_timeout_s(service) else None

    def render(self, user_key: str) -> tuple[str, str | None]:
        """The path and body of one request: ``{n}`` a random key number, ``{user}`` the user's key."""
        if not self.variable:
            return self.path, self.body
        n = str(random.randrange(self.endpoint.keys))
        path = self.path.replace("{n}", n).replace("{user}", user_key)
        body = None if self.body is None else self.body.replace("{n}", n).replace("{user}", user_key)
        return path, body


def longest_timeout_s(service: Service) -> float:
    """The users' connection timeout: the longest of the service's and its endpoints' own."""
    return max([service.timeout_s, *(e.timeout_s for e in service.endpoints if e.timeout_s is not None)])


class ServiceUser(DeclaresRequestTypes, FastHttpUser):
    """A client of the service: weighted endpoints, think time and timeouts from the profile's ``service``.

    Its weight is ``service.weight`` (scenarios/user.py's :func:`apply_profile_weights`); its host the
    service's URL as the run resolved it (``--service-url``, the profile, or the embedded reference
    service), never Locust's ``--host``.
    """

    label = "service"
    request_types: ClassVar[tuple[str, ...]] = (REQUEST_TYPE,)  # what the recovery tracker measures of it
    max_retries = 0  # a failed request is the service's answer, not retried out of sight

    def __init__(self, environment: Environment) -> None:
        run = run_of(environment)
        service = run.profile.service
        if service is None or run.service_url is None:
            raise RuntimeError("ServiceUser runs only in a run with a service (the profile's service section)")
        self.host = run.service_url
        self.network_timeout = self.connection_timeout = longest_timeout_s(service)
        super().__init__(environment)
        self.user_key = run.new_user_key()
        self._context = {"user": self.user_key}
        self._base = (self.client.base_url or run.service_url).rstrip("/")  # user:password@ taken out of it
        self._agent = self.client.client
        self._agent.valid_response_codes = ANY_STATUS  # type: ignore[misc]
        self._fire = environment.events.request.fire
        self._endpoints = [Prepared(e, service, self.client.auth_header) for e in service.endpoints if e.weight > 0]
        self._cumulative = list(accumulate(e.endpoint.weight for e in self._endpoints))
        think = service.think_time
        self._think_s = (think.min_ms / 1000, think.max_ms / 1000)

    def wait_time(self) -> float:
        low, high = self._think_s
        return low + random.random() * (high - low)

    @task
    def call(self) -> None:
        endpoints = self._endpoints
        index = 0 if len(endpoints) == 1 else bisect(self._cumulative, random.random() * self._cumulative[-1])
        self.send(endpoints[index])

    def send(self, prepared: Prepared) -> None:
        """One request, timed and judged, fired as ``HTTP`` with the endpoint's name."""
        path, body = prepared.render(self.user_key)
        exception: BaseException | None = None
        length = 0
        started = time.perf_counter()
        try:
            if prepared.timeout_s is None:
                response = self._agent.urlopen(
                    self._base + path, method=prepared.method, payload=body, headers=prepared.headers
                )
                content = response.content
            else:
                with gevent.Timeout(prepared.timeout_s, TimeoutError(f"no answer within {prepared.timeout_s:g}s")):
                    response = self._agent.urlopen(
                        self._base + path, method=prepared.method, payload=body, headers=prepared.headers
                    )
                    content = response.content
            length = len(content) if content else 0
            problem = prepared.judge(response.status_code, content)
            if problem is not None:
                exception = BadAnswer(problem)
        except (*FAILURE_EXCEPTIONS, TimeoutError) as exc:
            exception = exc
        self._fire(
            request_type=REQUEST_TYPE,
            name=prepared.name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exception,
            context=self._context,
        )
