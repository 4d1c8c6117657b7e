"""network: the network between the load generator and Redis degrades for a while: latency, a black
hole, connection resets, a bandwidth limit, slow closes, connections cut after some bytes, or data
passed on in small delayed slices, as a toxic on the fault proxy clients connect through
(``target.proxy``). Reverted by removing the toxic.

``blackhole`` is Toxiproxy's ``timeout`` toxic with ``timeout`` 0: data is dropped and connections
stay open, so clients see their socket timeouts rather than errors. ``toxicity`` is the share of
connections a toxic acts on, drawn per connection by the proxy (Toxiproxy's field of that name).

What the toxic did is counted where the driver knows it cheaply (the built-in proxy): the
connections it acted on, and those ``limit_data`` cut, read as the toxic is removed (or as the
fault's window closes, if that comes first) and reported when the window closes.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from chaos.faults.base import CommandRefused, FaultBase, FaultParams, FaultTarget
from chaos.faults.registry import register_fault
from targets.netproxy import NetworkDriver, NetworkProxyError, ToxicCounts


class _Toxic(FaultParams):
    """What every toxic has; each toxic adds only its own keys (another toxic's key is a profile error)."""

    name: Literal["network"]
    duration_s: float = Field(5.0, gt=0, description="How long the toxic stays on the proxy.")
    stream: Literal["downstream", "upstream"] = Field(
        "downstream", description="downstream: server-to-client data; upstream: client-to-server data."
    )
    toxicity: float = Field(
        1.0,
        ge=0,
        le=1,
        description="The share of connections the toxic acts on (0..1): drawn once per connection, for those "
        "open when it is added and for each one made while it is on, as Toxiproxy's toxicity.",
    )

    def toxiproxy(self) -> tuple[str, dict[str, int | float]]:
        """The Toxiproxy toxic type and attributes this toxic is."""
        raise NotImplementedError


class LatencyToxic(_Toxic):
    toxic: Literal["latency"] = Field(description="latency: delay data.")
    latency_ms: int = Field(100, ge=0, description="Delay added to data, each way the toxic acts.")
    jitter_ms: int = Field(0, ge=0, description="The delay varies by up to this much either way.")

    def toxiproxy(self) -> tuple[str, dict[str, int | float]]:
        return "latency", {"latency": self.latency_ms, "jitter": self.jitter_ms}


class BlackholeToxic(_Toxic):
    toxic: Literal["blackhole"] = Field(description="blackhole: drop data, connections stay open.")

    def toxiproxy(self) -> tuple[str, dict[str, int | float]]:
        return "timeout", {"timeout": 0}


class ResetPeerToxic(_Toxic):
    toxic: Literal["reset_peer"] = Field(description="reset_peer: reset connections (RST) at their next data.")
    timeout_ms: int = Field(0, ge=0, description="The reset comes this long after the first data.")

    def toxiproxy(self) -> tuple[str, dict[str, int | float]]:
        return "reset_peer", {"timeout": self.timeout_ms}


class BandwidthToxic(_Toxic):
    toxic: Literal["bandwidth"] = Field(description="bandwidth: limit throughput.")
    rate_kb_per_s: int = Field(
        64, ge=1, description="The limit, in kilobytes (1000 bytes) per second, as Toxiproxy's rate."
    )

    def toxiproxy(self) -> tuple[str, dict[str, int | float]]:
        return "bandwidth", {"rate": self.rate_kb_per_s}


class SlowCloseToxic(_Toxic):
    toxic: Literal["slow_close"] = Field(description="slow_close: delay closes.")
    delay_ms: int = Field(1000, ge=0, description="How long a close is held back.")

    def toxiproxy(self) -> tuple[str, dict[str, int | float]]:
        return "slow_close", {"delay": self.delay_ms}


class LimitDataToxic(_Toxic):
    toxic: Literal["limit_data"] = Field(
        description="limit_data: close each connection once a number of bytes has passed (cuts a reply mid-frame)."
    )
    bytes: int = Field(
        ge=0, description="Bytes passed in the toxic's direction, from when it acts on a connection, before the close."
    )

    def toxiproxy(self) -> tuple[str, dict[str, int | float]]:
        return "limit_data", {"bytes": self.bytes}


class SlicerToxic(_Toxic):
    toxic: Literal["slicer"] = Field(description="slicer: pass data on in small writes, each followed by a delay.")
    average_size: int = Field(ge=1, description="The average size of a write, in bytes.")
    size_variation: int = Field(
        0, ge=0, description="Writes vary by up to this many bytes (below average_size; at most the sum of the two)."
    )
    delay_us: int = Field(0, ge=0, description="Microseconds after each write.")

    @model_validator(mode="after")
    def _variation_below_average(self) -> SlicerToxic:
        if self.size_variation >= self.average_size:
            raise ValueError(f"size_variation ({self.size_variation}) must be below average_size ({self.average_size})")
        return self

    def toxiproxy(self) -> tuple[str, dict[str, int | float]]:
        return "slicer", {
            "average_size": self.average_size,
            "size_variation": self.size_variation,
            "delay": self.delay_us,
        }


NetworkToxic = (
    LatencyToxic | BlackholeToxic | ResetPeerToxic | BandwidthToxic | SlowCloseToxic | LimitDataToxic | SlicerToxic
)
# The network fault's params: one model per toxic, told apart by ``toxic``.
NetworkParams = Annotated[NetworkToxic, Field(discriminator="toxic")]


@register_fault(NetworkParams)
class Network(FaultBase):
    name: ClassVar[str] = "network"
    params: NetworkToxic

    def __init__(self, params: NetworkToxic, target: FaultTarget) -> None:
        super().__init__(params, target)
        self.hold_s = params.duration_s
        self.toxic_name: str | None = None  # the toxic on the proxy, while injected
        self.counts: ToxicCounts | None = None  # what it did, read as it was removed

    @property
    def proxy(self) -> NetworkDriver:
        if self.target.network is None:
            raise CommandRefused(
                "network", "needs target.proxy in the profile (clients must connect through the fault proxy)"
            )
        driver: NetworkDriver = self.target.network
        return driver

    def check(self) -> None:
        try:
            self.proxy.check()
        except NetworkProxyError as exc:
            raise CommandRefused("network", str(exc)) from None

    def inject(self) -> dict[str, Any]:
        proxy = self.proxy
        kind, attributes = self.params.toxiproxy()
        name = f"rr-{self.params.toxic}-{self.target.fault_id}"
        self.toxic_name = name  # before adding: a revert after a failed add removes it if it got there
        proxy.add_toxic(name, kind, attributes, self.params.stream, self.params.toxicity)
        self.took_effect = time.monotonic()
        counts = proxy.toxic_counts(name)
        return {
            "toxic": self.params.toxic,
            "type": kind,
            "attributes": attributes,
            "toxicity": self.params.toxicity,
            "stream": self.params.stream,
            "duration_s": self.params.duration_s,
            "proxy": f"{proxy.host}:{proxy.port}",
            "connections": proxy.connections(),
            "connections_affected": None if counts is None else counts.applied,  # of the open ones
        }

    def revert(self) -> None:
        if self.toxic_name is not None:
            proxy = self.proxy
            self.counts = proxy.toxic_counts(self.toxic_name) or self.counts
            proxy.remove_toxic(self.toxic_name)
            self.toxic_name = None

    def window_closed(self) -> dict[str, Any]:
        """What the toxic did until it was removed (or until now, if it is still on), where the driver knows."""
        counts = self.counts if self.toxic_name is None else self.proxy.toxic_counts(self.toxic_name)
        if counts is None:
            return {}
        details: dict[str, Any] = {"connections_affected_total": counts.applied}
        if self.params.toxic == "limit_data":
            details["connections_cut"] = counts.cut
        return details
