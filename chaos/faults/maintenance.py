"""maintenance: the maintenance notifications Redis Cloud and Redis Software push to clients before they
move, migrate or fail over a node, pushed by the built-in fault proxy in its RESP-aware mode
(targets/resp_wire.py) to the clients that asked for them (redis-py 8 does, on every new connection).

- ``moving``: ``MOVING <seq> <ttl> <host:port>`` naming a second listener of the proxy, on another
  loopback address and the same port (redis-py applies the host and keeps its port). redis-py hands its
  pool over to it; after ``ttl_s`` the proxy closes the connections still on the old listener, as the old
  node goes away. ``window_closed`` counts those that moved and ``handoff_s``: from the notification to
  the last connection that came to the new listener.
- ``migrating`` / ``failing_over``: ``MIGRATING`` / ``FAILING_OVER <seq> <ttl> <shards>``, then ``MIGRATED``
  / ``FAILED_OVER <seq> <shards>`` after ``duration_s``: redis-py relaxes its socket timeouts between them.

The proxy answers the handshake's ``CLIENT MAINT_NOTIFICATIONS`` itself, so the server behind it may be
any Redis or Valkey. Only the clients that asked are notified (``client.maint_notifications: off`` asks
not), ``fraction`` of them.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import time
from typing import Any, ClassVar, Literal

import gevent
from pydantic import Field, field_validator

from chaos.faults.base import CommandRefused, FaultBase, FaultParams, FaultTarget
from chaos.faults.registry import register_fault
from targets.builtin_proxy import BuiltinProxy, ProxyConnection
from targets.greenlets import describe, spawn_reported
from targets.resp_wire import push_frame

logger = logging.getLogger(__name__)

Event = Literal["moving", "migrating", "failing_over"]
_FRAMES: dict[str, tuple[str, str]] = {
    "migrating": ("MIGRATING", "MIGRATED"),
    "failing_over": ("FAILING_OVER", "FAILED_OVER"),
}
SHARDS = "[1]"  # the shards a MIGRATING names (one: the proxy stands for one node)


class MaintenanceParams(FaultParams):
    name: Literal["maintenance"]
    event: Event = Field(
        "moving",
        description="moving: MOVING to a second listener of the proxy (moving_host, same port), the old one's "
        "connections closed after ttl_s; migrating: MIGRATING, then MIGRATED after duration_s; failing_over: "
        "FAILING_OVER, then FAILED_OVER after duration_s.",
    )
    fraction: float = Field(
        1.0, gt=0, le=1, description="The share of the connections that asked for notifications to notify."
    )
    ttl_s: int = Field(
        5, ge=1, description="The notification's time to live (MOVING: the old endpoint's connections go after it)."
    )
    duration_s: float = Field(
        2.0, gt=0, description="migrating, failing_over: the MIGRATED / FAILED_OVER follows after this."
    )
    moving_host: str = Field(
        "127.0.0.2", description="moving: the loopback address of the proxy's second listener (127.0.0.0/8)."
    )

    @field_validator("moving_host")
    @classmethod
    def _loopback(cls, host: str) -> str:
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"expected an IPv4 loopback address such as 127.0.0.2, got {host!r}") from None
        if not address.is_loopback or host == "127.0.0.1":
            raise ValueError(f"expected a loopback address other than the proxy's own 127.0.0.1, got {host}")
        return host


@register_fault(MaintenanceParams)
class Maintenance(FaultBase):
    name: ClassVar[str] = "maintenance"
    speaks_resp: ClassVar[bool] = True  # the proxy reads RESP: its answers and pushes go between frames
    params: MaintenanceParams

    def __init__(self, params: MaintenanceParams, target: FaultTarget) -> None:
        super().__init__(params, target)
        self.hold_s = float(params.ttl_s) if params.event == "moving" else params.duration_s
        self.seq = target.fault_id * 2  # the start's; its completion's is the next (redis-py keys them by it)
        self.notified: list[ProxyConnection] = []  # the proxy's connections notified
        self.done = False

    @property
    def proxy(self) -> BuiltinProxy:
        proxy = self.target.network
        if not isinstance(proxy, BuiltinProxy) or not proxy.resp_aware:
            raise CommandRefused(
                "maintenance",
                "needs target.proxy with the built-in driver (it pushes the notifications; Toxiproxy cannot)",
            )
        return proxy

    def check(self) -> None:
        proxy = self.proxy
        if self.params.event == "moving":
            proxy.listen_also(self.params.moving_host)  # up front: a taken address is bad input, not a failed fault

    def inject(self) -> dict[str, Any]:
        proxy, params = self.proxy, self.params
        moving = params.event == "moving"
        candidates = proxy.notified(besides=params.moving_host if moving else None)  # MOVING: not those there
        count = min(len(candidates), max(1, round(params.fraction * len(candidates)))) if candidates else 0
        chosen = random.sample(candidates, count)
        details: dict[str, Any] = {"event": params.event, "connections": len(candidates), "fraction": params.fraction}
        if moving:
            proxy.listen_also(params.moving_host)
            endpoint = f"{params.moving_host}:{proxy.port}"
            frame = push_frame("MOVING", self.seq, params.ttl_s, endpoint)
            details.update(endpoint=endpoint, ttl_s=params.ttl_s)
        else:
            frame = push_frame(_FRAMES[params.event][0], self.seq, params.ttl_s, SHARDS)
            details.update(duration_s=params.duration_s)
        self.took_effect = time.monotonic()
        self.notified = _push(chosen, frame)
        details.update(notified=len(self.notified), seq=self.seq)
        return details

    def revert(self) -> None:
        if self.done or self.took_effect is None:
            return
        self.done = True
        proxy, params = self.proxy, self.params
        if params.event == "moving":  # the old node is gone: what did not move is cut
            for listener in {c.listener for c in proxy.conns} - {params.moving_host}:
                proxy.close_through(listener)
        else:
            _push(
                [c for c in self.notified if not c.closed], push_frame(_FRAMES[params.event][1], self.seq + 1, SHARDS)
            )

    def window_closed(self) -> dict[str, Any]:
        if self.params.event != "moving" or self.took_effect is None:
            return {}
        arrivals = [t for t in self.proxy.arrivals.get(self.params.moving_host, []) if t >= self.took_effect]
        return {
            "moved": len(arrivals),
            "handoff_s": round(max(arrivals) - self.took_effect, 4) if arrivals else None,
        }


def _push(conns: list[ProxyConnection], frame: bytes) -> list[ProxyConnection]:
    """Push ``frame`` to every connection at once (each at its next frame boundary); those it reached (a
    connection closed meanwhile is not)."""
    jobs = [(conn, spawn_reported(_push_failed, conn.wire.push, frame)) for conn in conns if conn.wire is not None]
    gevent.joinall([job for _, job in jobs])
    return [conn for conn, job in jobs if job.value]


def _push_failed(exc: BaseException) -> None:
    logger.debug("maintenance: a notification did not reach its connection: %s", describe(exc))
