"""http: call an endpoint of the service under test, e.g. its own ``POST /chaos/redis-reset`` with
``{"force": true}``, so the service resets its Redis connections the way it would in production.
The call's status and latency go into the fault record; an unexpected status or a timeout makes
the fault fail (recorded, never fatal)."""

from __future__ import annotations

import os
import time
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from chaos.faults.base import FaultBase, FaultParams
from chaos.faults.registry import register_fault
from config.hosts import is_loopback_host
from config.redact import is_secret_key

JsonValue = dict[str, Any] | list[Any] | str | int | float | bool | None


def is_loopback(url: str) -> bool:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:  # e.g. an unclosed [IPv6 bracket: no host to call
        return False
    return is_loopback_host(host)


class HttpParams(FaultParams):
    name: Literal["http"]
    url: str = Field(pattern=r"^https?://.+", description="The endpoint, e.g. http://127.0.0.1:8080/chaos/redis-reset.")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Request headers. A secret-named one (Authorization, X-Api-Key, ...) belongs in header_env.",
    )
    header_env: dict[str, str] = Field(
        default_factory=dict, description="Headers whose value is read from an environment variable: {header: VAR}."
    )
    allow_inline_secrets: bool = Field(False, description="Allow a secret-named header written in the profile.")
    body: JsonValue = Field(default_factory=lambda: {"force": True}, description="Sent as JSON; null: no body.")
    timeout_s: float = Field(5.0, gt=0, description="The call fails after this long.")
    expect_status: list[int] = Field(default_factory=lambda: [200, 202, 204], description="Statuses that mean done.")
    allow_remote: bool = Field(False, description="Allow a URL that is not on loopback (chaos against a remote host).")

    @model_validator(mode="after")
    def _loopback_unless_allowed(self) -> HttpParams:
        try:
            urlsplit(self.url).port  # noqa: B018  (raises on a bad port or host)
        except ValueError as exc:
            raise ValueError(f"url: expected an http:// or https:// URL with a valid host and port ({exc})") from None
        if not self.allow_remote and not is_loopback(self.url):
            raise ValueError("url is not on loopback: set allow_remote: true to call a remote service")
        inline = sorted(h for h, v in self.headers.items() if v and is_secret_key(h))
        if inline and not self.allow_inline_secrets:
            raise ValueError(
                f"headers: {', '.join(inline)} holds a secret written in the profile: read it from the environment "
                "with header_env: {header: VARIABLE} (or set allow_inline_secrets: true)"
            )
        return self

    def resolved_headers(self) -> dict[str, str]:
        """The headers to send: ``header_env``'s read now (a missing variable is an error naming it)."""
        headers = dict(self.headers)
        for header, variable in self.header_env.items():
            value = os.environ.get(variable)
            if value is None:
                raise HttpCallFailed(f"header {header}: environment variable {variable} is not set")
            headers[header] = value
        return headers


class HttpCallFailed(Exception):
    """The endpoint answered with a status outside ``expect_status``."""


@register_fault(HttpParams)
class Http(FaultBase):
    name: ClassVar[str] = "http"
    params: HttpParams

    def inject(self) -> dict[str, Any]:
        import requests  # locust's own dependency; imported here to keep the profile schema light

        p = self.params
        started = time.perf_counter()
        response = requests.request(
            p.method,
            p.url,
            headers=p.resolved_headers(),
            json=p.body if p.body is not None else None,
            timeout=p.timeout_s,
        )
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        if response.status_code not in p.expect_status:
            raise HttpCallFailed(
                f"{p.method} {p.url} answered {response.status_code} after {latency_ms} ms, expected {p.expect_status}"
            )
        return {"status": response.status_code, "latency_ms": latency_ms, "response_bytes": len(response.content)}
