"""network: the network between the load generator and Redis degrades for a while: latency, a black
hole, connection resets, a bandwidth limit or slow closes, as a toxic on the fault proxy clients
connect through (``target.proxy``). Reverted by removing the toxic.

``blackhole`` is Toxiproxy's ``timeout`` toxic with ``timeout`` 0: data is dropped and connections
stay open, so clients see their socket timeouts rather than errors.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from chaos.faults.base import CommandRefused, FaultBase, FaultParams, FaultTarget
from targets.netproxy import NetworkDriver, NetworkProxyError


class NetworkParams(FaultParams):
    name: Literal["network"]
    toxic: Literal["latency", "blackhole", "reset_peer", "bandwidth", "slow_close"] = Field(
        description="latency: delay data; blackhole: drop data, connections stay open; reset_peer: reset "
        "connections (RST) at their next data; bandwidth: limit throughput; slow_close: delay closes."
    )
    duration_s: float = Field(5.0, gt=0, description="How long the toxic stays on the proxy.")
    latency_ms: int = Field(100, ge=0, description="latency: delay added to data, each way the toxic acts.")
    jitter_ms: int = Field(0, ge=0, description="latency: the delay varies by up to this much either way.")
    rate_kb_per_s: int = Field(
        64, ge=1, description="bandwidth: the limit, in kilobytes (1000 bytes) per second, as Toxiproxy's rate."
    )
    delay_ms: int = Field(1000, ge=0, description="slow_close: how long a close is held back.")
    timeout_ms: int = Field(0, ge=0, description="reset_peer: the reset comes this long after the first data.")
    stream: Literal["downstream", "upstream"] = Field(
        "downstream", description="downstream: server-to-client data; upstream: client-to-server data."
    )


class Network(FaultBase):
    name: ClassVar[str] = "network"
    params: NetworkParams

    def __init__(self, params: NetworkParams, target: FaultTarget) -> None:
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

    def toxic(self) -> tuple[str, dict[str, int | float]]:
        """The Toxiproxy toxic type and attributes this fault adds."""
        p = self.params
        if p.toxic == "latency":
            return "latency", {"latency": p.latency_ms, "jitter": p.jitter_ms}
        if p.toxic == "blackhole":
            return "timeout", {"timeout": 0}
        if p.toxic == "reset_peer":
            return "reset_peer", {"timeout": p.timeout_ms}
        if p.toxic == "bandwidth":
            return "bandwidth", {"rate": p.rate_kb_per_s}
        return "slow_close", {"delay": p.delay_ms}

    def inject(self) -> dict[str, Any]:
        proxy = self.proxy
        kind, attributes = self.toxic()
        name = f"rr-{self.params.toxic}-{self.target.fault_id}"
        self.toxic_name = name  # before adding: a revert after a failed add removes it if it got there
        proxy.add_toxic(name, kind, attributes, self.params.stream)
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
