"""network: the network between the load generator and Redis degrades for a while: latency, a black
hole, connection resets, a bandwidth limit or slow closes, as a toxic on the fault proxy clients
connect through (``target.proxy``). Reverted by removing the toxic.

``blackhole`` is Toxiproxy's ``timeout`` toxic with ``timeout`` 0: data is dropped and connections
stay open, so clients see their socket timeouts rather than errors.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from chaos.faults.base import CommandRefused, FaultBase, FaultParams, FaultTarget
from chaos.faults.registry import register_fault
from targets.netproxy import NetworkDriver, NetworkProxyError


class _Toxic(FaultParams):
    """What every toxic has; each toxic adds only its own keys (another toxic's key is a profile error)."""

    name: Literal["network"]
    duration_s: float = Field(5.0, gt=0, description="How long the toxic stays on the proxy.")
    stream: Literal["downstream", "upstream"] = Field(
        "downstream", description="downstream: server-to-client data; upstream: client-to-server data."
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


NetworkToxic = LatencyToxic | BlackholeToxic | ResetPeerToxic | BandwidthToxic | SlowCloseToxic
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
        proxy.add_toxic(name, kind, attributes, self.params.stream)
        self.took_effect = time.monotonic()
        return {
            "toxic": self.params.toxic,
            "type": kind,
            "attributes": attributes,
            "stream": self.params.stream,
            "duration_s": self.params.duration_s,
            "proxy": f"{proxy.host}:{proxy.port}",
            "connections": proxy.connections(),
        }

    def revert(self) -> None:
        if self.toxic_name is not None:
            self.proxy.remove_toxic(self.toxic_name)
            self.toxic_name = None
