"""The service under test (the profile's ``service``), as the local or master node holds it.

:func:`open_service` resolves its URL (``--service-url``, else ``service.url``; ``embedded`` starts the
reference service of examples/service/ on the target's Redis), refuses one off loopback without the
opt-in, and runs the pre-flight before any user spawns: every endpoint answers once as expected, and
the health endpoint (``service.health``), if named, says healthy. At the end of each test
:meth:`ServiceUnderTest.health_at_end` asks it again (polled for up to ``health.wait_s``): a service that
did not come back breaches the SLO ``service_recovered_at_end``. Bad input is a
:class:`~chaos.settings.SetupError` with one line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from chaos.settings import SERVICE_FLAG, Settings, SetupError
from config.hosts import LoopbackRequired, require_loopback_or_opt_in
from config.redact import redact_url
from config.service import Expectation, MissingHeaderVariable, Service
from scenarios.service_user import Prepared, judge
from targets.service import ReferenceService, ServiceError

HEALTH_POLL_S = 0.25  # how often the health endpoint is asked again at the end, until it says healthy
REFERENCE_CLIENT_NAME = "rs-service"  # the reference service's CLIENT SETNAME (client_kill's name_prefix)
SERVICE_OPT_IN: Final = (
    "Load and faults hit that service, so a service off this machine needs an explicit opt-in: set "
    "service.allow_remote: true or pass --allow-remote-service (RESILIENCE_ALLOW_REMOTE_SERVICE=true)"
)


@dataclass
class Answer:
    """One call to the service: what it answered, and what is wrong with it (None: as expected)."""

    name: str
    status: int | None
    latency_ms: float
    problem: str | None

    @property
    def answered(self) -> str:
        shown = "no answer" if self.status is None else f"status {self.status}"
        return f"{shown} after {self.latency_ms:.0f} ms" + (f" ({self.problem})" if self.problem else "")

    @property
    def said(self) -> str:
        return f"{self.name}: {self.answered}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "latency_ms": round(self.latency_ms, 1),
            "ok": self.problem is None,
            "problem": self.problem,
        }


@dataclass
class ServiceUnderTest:
    """The service: its spec, resolved URL, the reference service if the pack started it, the pre-flight."""

    spec: Service
    url: str
    source: str
    reference: ReferenceService | None = None
    preflight_answers: list[Answer] = field(default_factory=list)

    @property
    def label(self) -> str:
        return redact_url(self.url)

    def call(self, expect: Expectation, name: str, method: str, path: str, body: str | None = None) -> Answer:
        """One request as the users send it (their headers, the expectation's judgement); never raises."""
        import requests  # locust's own dependency

        timeout = expect.timeout_s or self.spec.timeout_s
        headers = expect.resolved_headers()
        if body is not None:
            headers.setdefault("Content-Type", "application/json")
        started = time.perf_counter()
        try:
            response = requests.request(
                method, self.url.rstrip("/") + path, data=body, headers=headers, timeout=timeout, allow_redirects=True
            )
        except requests.RequestException as exc:
            return Answer(name, None, (time.perf_counter() - started) * 1000, redact_url(type(exc).__name__))
        latency_ms = (time.perf_counter() - started) * 1000
        return Answer(name, response.status_code, latency_ms, judge(expect, response.status_code, response.content))

    def health(self) -> Answer | None:
        """The health endpoint's answer now; None without one."""
        health = self.spec.health
        return None if health is None else self.call(health, f"GET {health.path}", "GET", health.path)

    def preflight(self) -> None:
        """Every endpoint once, then the health endpoint: a wrong answer stops the run (SetupError)."""
        self.preflight_answers = []
        for index, endpoint in enumerate(self.spec.endpoints):
            try:
                prepared = Prepared(endpoint, self.spec)
            except MissingHeaderVariable as exc:
                raise SetupError(f"{self.source}: service.endpoints[{index}]: {exc}") from None
            path, body = prepared.render("preflight")
            answer = self.call(endpoint, endpoint.label, endpoint.method, path, body)
            self.preflight_answers.append(answer)
            if answer.problem is not None:
                raise SetupError(
                    f"{self.source}: service.endpoints[{index}]: the service at {self.label} did not "
                    f"answer as expected before the load, {answer.said}"
                )
        try:
            health = self.health()
        except MissingHeaderVariable as exc:
            raise SetupError(f"{self.source}: service.health: {exc}") from None
        if health is not None:
            self.preflight_answers.append(health)
            if health.problem is not None:
                raise SetupError(
                    f"{self.source}: service.health: the service at {self.label} is not healthy "
                    f"before the load, {health.said}"
                )

    def health_at_end(self) -> dict[str, Any] | None:
        """The health endpoint asked until it says healthy, for up to ``health.wait_s``; None without one."""
        health = self.spec.health
        if health is None:
            return None
        started = time.monotonic()
        deadline = started + health.wait_s
        while True:
            answer = self.health()
            assert answer is not None  # health is set
            waited = time.monotonic() - started
            if answer.problem is None or time.monotonic() >= deadline:
                break
            time.sleep(HEALTH_POLL_S)
        healthy = answer.problem is None
        said = (
            f"{answer.name} healthy at the end, {waited:.1f} s after it ({answer.answered})"
            if healthy
            else f"{answer.name} still not healthy {health.wait_s:g} s after the end ({answer.answered})"
        )
        return {**answer.to_dict(), "healthy": healthy, "waited_s": round(waited, 3), "said": said}

    def facts(self) -> dict[str, Any]:
        """The report's ``service`` block (the end's health added by the caller)."""
        return {
            "url": self.label,
            "reference_pid": self.reference.pid if self.reference is not None else None,
            "preflight": [a.to_dict() for a in self.preflight_answers],
        }

    def close(self) -> None:
        if self.reference is not None:
            self.reference.stop()


def check_service_url(url: str, spec: Service, settings: Settings) -> None:
    """A service URL the users can call (scheme and host, no path; credentials as user:password only) and
    may call (on loopback, or opted in); SetupError otherwise. On a worker too, for its own --service-url."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        raise SetupError(f"{SERVICE_FLAG}: {shown!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SetupError(f"{SERVICE_FLAG}: expected an http:// or https:// URL with a host, got {shown!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise SetupError(
            f"{SERVICE_FLAG}: expected the service's base URL (no path or query: the endpoints' paths "
            f"go under it), got {shown!r}"
        )
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo and ":" not in userinfo:
        raise SetupError(
            f"{SERVICE_FLAG}: a token in the URL ({shown}) is neither sent as a header nor kept "
            "out of Locust's error messages: give it in a header with header_env "
            "(docs/service.md)"
        )
    if not (spec.allow_remote or settings.allow_remote_service):
        try:
            require_loopback_or_opt_in(url, SERVICE_OPT_IN, f"load against the service at {shown} refused")
        except LoopbackRequired as exc:
            raise SetupError(str(exc)) from None


def check_headers(spec: Service, source: str) -> None:
    """Every ``header_env`` variable the endpoints and the health endpoint need is set (SetupError)."""
    named: list[tuple[str, Expectation]] = [(f"service.endpoints[{i}]", e) for i, e in enumerate(spec.endpoints)]
    if spec.health is not None:
        named.append(("service.health", spec.health))
    for where, expect in named:
        try:
            expect.resolved_headers()
        except MissingHeaderVariable as exc:
            raise SetupError(f"{source}: {where}: {exc}") from None


def open_service(
    spec: Service | None, settings: Settings, redis_url: str, source: str, key_prefix: str = "rs:"
) -> ServiceUnderTest | None:
    """The service of the profile (None without one), started if embedded, checked before any load.
    ``key_prefix``: the embedded reference service's keys live under it (the run's: removed at the end)."""
    if spec is None:
        if settings.service_url:
            raise SetupError(f"{SERVICE_FLAG} is given but the profile {source} has no service section to load it")
        return None
    url = settings.service_url or spec.url
    reference = None
    check_headers(spec, source)
    if url == "embedded":
        if not redis_url.startswith(("redis://", "rediss://")):
            raise SetupError(
                f"{source}: service.url: embedded runs the reference service on a standalone Redis "
                "(target.url: embedded, redis:// or rediss://)"
            )
        settings_env = {
            "CLIENT_NAME": REFERENCE_CLIENT_NAME,
            "KEY_PREFIX": key_prefix + "service",
            **spec.reference_settings,
        }
        try:
            reference = ReferenceService(redis_url, settings_env).start()
        except ServiceError as exc:
            raise SetupError(f"{source}: service.url: embedded: {exc}") from None
        url = reference.url
    else:
        check_service_url(url, spec, settings)
    service = ServiceUnderTest(spec, url, source, reference)
    try:
        service.preflight()
    except SetupError:
        service.close()
        raise
    return service
