"""The profile's ``target.proxy``: where the fault proxy of ``network`` faults runs."""

from __future__ import annotations

import urllib.parse
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from config.hosts import require_loopback_or_opt_in


class ProxySettings(BaseModel):
    """The profile's ``target.proxy``: clients reach Redis through a fault proxy (``network`` faults)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    driver: Literal["builtin", "toxiproxy"] = Field(
        "builtin",
        description="builtin: a proxy inside the Locust process; toxiproxy: a proxy on a running Toxiproxy server.",
    )
    toxiproxy_api: str = Field(
        "http://127.0.0.1:8474", description="The Toxiproxy server's HTTP API (driver toxiproxy); loopback only."
    )
    name: str = Field(
        "redis-resilience",
        pattern=r"^[A-Za-z0-9_.-]{1,100}$",
        description="The proxy's name at Toxiproxy (driver toxiproxy).",
    )
    listen_port: int = Field(0, ge=0, le=65535, description="Loopback port clients connect to; 0 picks a free one.")
    resp_aware: bool = Field(
        False,
        description="builtin only: read the Redis protocol on every connection, so that the proxy answers "
        "CLIENT MAINT_NOTIFICATIONS and pushes maintenance notifications (the maintenance fault); on by itself "
        "when chaos.faults lists a maintenance fault. Not over TLS (rediss://).",
    )

    @model_validator(mode="after")
    def _resp_aware_builtin(self) -> ProxySettings:
        if self.resp_aware and self.driver != "builtin":
            raise ValueError("resp_aware needs driver: builtin (Toxiproxy passes bytes, it cannot speak RESP)")
        return self

    @field_validator("toxiproxy_api")
    @classmethod
    def _loopback_http(cls, url: str) -> str:
        expected = "an http:// URL of a loopback address, such as http://127.0.0.1:8474"
        try:
            parts = urllib.parse.urlsplit(url)
        except ValueError as exc:  # e.g. an unclosed [IPv6 bracket
            raise ValueError(f"expected {expected}, got {url!r} ({exc})") from None
        if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/") or parts.query:
            raise ValueError(f"expected {expected}, got {url!r}")
        if parts.username or parts.password:
            raise ValueError(f"expected {expected} with no credentials")
        try:
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError:
            raise ValueError(f"expected {expected}, got a bad port in {url!r}") from None
        require_loopback_or_opt_in(url, None, f"expected {expected}")  # loopback only: no opt-in
        return url.rstrip("/")
