"""http: call an endpoint of the service under test, e.g. its own ``POST /chaos/redis-reset`` with
``{"force": true}``, so the service resets its Redis connections the way it would in production.
Give the endpoint as a whole ``url``, or as a ``path`` under the profile's service (``service.url``,
the embedded reference service included). The call's status and latency go into the fault record;
an unexpected status or a timeout makes the fault fail (recorded, never fatal)."""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from chaos.faults.base import FaultBase, FaultParams
from chaos.faults.registry import register_fault
from config.hosts import parse_hosts, require_loopback_or_opt_in
from config.service import Headers, JsonValue, MissingHeaderVariable


class HttpParams(FaultParams, Headers):
    name: Literal["http"]
    url: str | None = Field(
        None, pattern=r"^https?://.+", description="The endpoint, e.g. http://127.0.0.1:8080/chaos/redis-reset."
    )
    path: str | None = Field(
        None, pattern=r"^/", description="Instead of url: a path under the profile's service (service.url)."
    )
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    body: JsonValue = Field(default_factory=lambda: {"force": True}, description="Sent as JSON; null: no body.")
    timeout_s: float = Field(5.0, gt=0, description="The call fails after this long.")
    expect_status: list[int] = Field(default_factory=lambda: [200, 202, 204], description="Statuses that mean done.")
    allow_remote: bool = Field(False, description="Allow a URL that is not on loopback (chaos against a remote host).")

    @model_validator(mode="after")
    def _loopback_unless_allowed(self) -> HttpParams:
        if (self.url is None) == (self.path is None):
            raise ValueError("give the endpoint as url or as path (under service.url), one of the two")
        if self.url is None:
            return self  # the service's URL is checked with the service
        try:
            parse_hosts(self.url)
        except ValueError as exc:
            raise ValueError(f"url: expected an http:// or https:// URL with a valid host and port ({exc})") from None
        if not self.allow_remote:
            require_loopback_or_opt_in(self.url, "Set allow_remote: true to call a remote service", "url")
        return self


class HttpCallFailed(Exception):
    """The endpoint answered with a status outside ``expect_status``."""


@register_fault(HttpParams)
class Http(FaultBase):
    name: ClassVar[str] = "http"
    params: HttpParams

    def inject(self) -> dict[str, Any]:
        import requests  # locust's own dependency; imported here to keep the profile schema light

        p = self.params
        url = p.url or f"{(self.target.service_url or '').rstrip('/')}{p.path}"
        if p.url is None and self.target.service_url is None:
            raise HttpCallFailed(f"path {p.path} needs a service (the profile's service.url): there is none")
        try:
            headers = p.resolved_headers()
        except MissingHeaderVariable as exc:
            raise HttpCallFailed(str(exc)) from None
        started = time.perf_counter()
        response = requests.request(
            p.method,
            url,
            headers=headers,
            json=p.body if p.body is not None else None,
            timeout=p.timeout_s,
        )
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        if response.status_code not in p.expect_status:
            raise HttpCallFailed(
                f"{p.method} {url} answered {response.status_code} after {latency_ms} ms, expected {p.expect_status}"
            )
        return {"status": response.status_code, "latency_ms": latency_ms, "response_bytes": len(response.content)}
