"""The profile's ``service:`` section: HTTP users against a Redis-backed service (docs/service.md)."""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from config.base import NonNegative, Positive, Strict, ThinkTime
from config.redact import is_secret_key

JsonValue = dict[str, Any] | list[Any] | str | int | float | bool | None


class Headers(Strict):
    """Request headers; a secret-named one (Authorization, X-Api-Key, Cookie, ...) comes from the environment."""

    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Request headers. A secret-named one (Authorization, X-Api-Key, ...) belongs in header_env.",
    )
    header_env: dict[str, Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=dict, description="Headers whose value is read from an environment variable: {header: VAR}."
    )
    allow_inline_secrets: bool = Field(False, description="Allow a secret-named header written in the profile.")

    @model_validator(mode="after")
    def _no_inline_secret(self) -> Headers:
        inline = sorted(h for h, v in self.headers.items() if v and is_secret_key(h))
        if inline and not self.allow_inline_secrets:
            raise ValueError(
                f"headers: {', '.join(inline)} holds a secret written in the profile: read it from the environment "
                "with header_env: {header: VARIABLE} (or set allow_inline_secrets: true)"
            )
        return self

    def resolved_headers(self) -> dict[str, str]:
        """The headers to send, ``header_env``'s read now; :class:`MissingHeaderVariable` names a missing one."""
        headers = dict(self.headers)
        for header, variable in self.header_env.items():
            value = os.environ.get(variable)
            if value is None:
                raise MissingHeaderVariable(f"header {header}: environment variable {variable} is not set")
            headers[header] = value
        return headers


class MissingHeaderVariable(LookupError):
    """A ``header_env`` variable is not set."""


class BodyCheck(Strict):
    """A check on a JSON response body: the value at ``path`` equals ``equals``, or (a string, a list) contains
    ``contains``. A 200 whose body says ``"status": "unhealthy"`` fails ``{path: status, equals: healthy}``."""

    path: str = Field(
        pattern=r"^[^.\s]+(\.[^.\s]+)*$",
        description="Dotted path into the JSON body: 'status', 'data.items.0.id' (a number indexes a list).",
    )
    equals: JsonValue = Field(None, description="The value must be this (JSON scalars and structures compare equal).")
    contains: JsonValue = Field(None, description="The value (a string or a list) must contain this.")

    @model_validator(mode="after")
    def _one_test(self) -> BodyCheck:
        given = [k for k in ("equals", "contains") if k in self.model_fields_set]
        if len(given) != 1:
            raise ValueError("a body check needs exactly one of equals or contains")
        return self

    @model_serializer(mode="wrap")
    def _given_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Dumped with the one test it has (``equals: null`` is a test), so a master's profile sent to its
        workers validates there again."""
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if k == "path" or k in self.model_fields_set}


StatusCode = Annotated[int, Field(ge=100, le=599)]


class Expectation(Headers):
    """What a request sends besides its path, and what its answer must be to count as healthy."""

    expect_status: list[StatusCode] | None = Field(None, description="Statuses that are a success; null: any 2xx.")
    checks: list[BodyCheck] = Field(
        default_factory=list, description="Checks on the JSON body; one that fails makes the request a failure."
    )
    timeout_s: Positive | None = Field(None, description="This request fails after this long; null: service.timeout_s.")


class Endpoint(Expectation):
    """One endpoint the HTTP users call."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    path: str = Field(
        pattern=r"^/",
        description="Path under the service URL; {n} is a random number below keys, {user} the user's own key.",
    )
    name: str | None = Field(None, description="The name in Locust's statistics and the report; null: 'METHOD path'.")
    weight: int = Field(1, ge=0, description="Relative share of this endpoint in each user's requests.")
    body: JsonValue = Field(None, description="Sent as JSON ({n} and {user} in strings are filled in); null: no body.")
    keys: int = Field(1000, ge=1, description="How many different {n} there are.")

    @property
    def label(self) -> str:
        return self.name or f"{self.method} {self.path}"


class Health(Expectation):
    """The service's health endpoint: healthy before the load starts and again at the end."""

    path: str = Field("/health", pattern=r"^/", description="Path of the health endpoint (GET).")
    wait_s: NonNegative = Field(
        10, description="At the end, how long the service may take to say healthy again (polled) before the SLO fails."
    )


class Service(Strict):
    """HTTP users against a service whose Redis is the target: ``target`` names that Redis, the faults act on it."""

    url: str = Field(
        "embedded",
        pattern=r"^(embedded|https?://[^/?#]+/?)$",
        description="The service's base URL (http:// or https://, no path); 'embedded' starts the reference service "
        "(examples/service/) on the target. --service-url (RESILIENCE_SERVICE_URL) overrides it.",
    )
    allow_remote: bool = Field(
        False, description="Allow a service URL that is not on loopback (also --allow-remote-service)."
    )
    weight: int = Field(1, ge=0, description="Relative number of HTTP users, against the weights of workload.mix.")
    think_time: ThinkTime = ThinkTime()
    timeout_s: Positive = Field(5.0, description="A request fails after this long (an endpoint may say otherwise).")
    reuse_connections: bool = Field(
        True,
        description="Keep-alive connections, as a real client has; false: a new one each request.",
    )
    endpoints: list[Endpoint] = Field(min_length=1, description="What the HTTP users call, by weight.")
    health: Health | None = Field(None, description="The health endpoint: checked before the load and at the end.")
    reference_settings: dict[Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")], str] = Field(
        default_factory=dict,
        description="url: embedded only: the reference service's settings (RS_<NAME> of examples/service/app.py, "
        "without RS_), e.g. {RETRIES: '3', MAX_CONNECTIONS: '20'}.",
    )

    @model_validator(mode="after")
    def _callable(self) -> Service:
        if sum(e.weight for e in self.endpoints) == 0:
            raise ValueError("the weights of service.endpoints sum to 0: give at least one endpoint a weight > 0")
        if self.reference_settings and self.url != "embedded":
            raise ValueError("reference_settings applies to url: embedded only (the pack starts that service)")
        return self
