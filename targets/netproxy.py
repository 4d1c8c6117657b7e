"""A TCP fault proxy between the load generator and Redis: one driver interface, two drivers.

Clients connect to the driver's ``host:port`` instead of Redis; ``network`` faults add and remove
*toxics* on it, named and parametrised as Toxiproxy's (https://github.com/Shopify/toxiproxy#toxics):

- ``latency`` (``latency``, ``jitter`` ms): each chunk is held ``latency`` +/- ``jitter`` ms from
  its arrival, chunks keep their order;
- ``timeout`` (``timeout`` ms): data is dropped; the connection is closed after ``timeout``, or,
  with 0, left open until the toxic is removed (a black hole);
- ``reset_peer`` (``timeout`` ms): at the first data, wait ``timeout`` then reset the connection
  (RST: ``SO_LINGER`` 0);
- ``bandwidth`` (``rate`` KB/s, 1 KB = 1000 bytes as in Toxiproxy): data paced to that rate;
- ``slow_close`` (``delay`` ms): a close is passed on that much later;
- ``limit_data`` (``bytes``): the connection is closed once that many bytes have passed in the
  toxic's direction, counted from when the toxic began acting on it (a reply is cut mid-frame);
- ``slicer`` (``average_size``, ``size_variation`` bytes, ``delay`` microseconds): data is passed on
  in slices of ``average_size`` +/- ``size_variation`` bytes (at most their sum; Toxiproxy's halving),
  each followed by ``delay``.

``downstream`` toxics act on server -> client data, ``upstream`` ones on client -> server. Every toxic
has a ``toxicity`` (0..1, Toxiproxy's field beside its attributes): the chance that it acts on a
connection, drawn once per connection: for those open when it is added, and for each new one.

This module is the interface (:class:`NetworkDriver`, the toxics' checks); targets/proxies.py opens
a driver. The drivers are
``BuiltinProxy`` (targets/builtin_proxy.py), a gevent proxy inside the Locust process (nothing to
install), and ``ToxiproxyDriver`` (targets/toxiproxy.py), a proxy on a running Toxiproxy server
driven through its HTTP API.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal, Protocol

Stream = Literal["downstream", "upstream"]
TOXIC_KINDS: Final = ("latency", "timeout", "reset_peer", "bandwidth", "slow_close", "limit_data", "slicer")
_ATTRIBUTES: Final = {
    "latency": ("latency", "jitter"),
    "timeout": ("timeout",),
    "reset_peer": ("timeout",),
    "bandwidth": ("rate",),
    "slow_close": ("delay",),
    "limit_data": ("bytes",),
    "slicer": ("average_size", "size_variation", "delay"),
}
_WHOLE: Final = ("limit_data", "slicer")  # attributes Toxiproxy decodes as integers


@dataclass
class ToxicCounts:
    """What one toxic did while on, where the driver knows it cheaply: the connections it acted on (its
    toxicity's draw won), and those it closed (``limit_data``)."""

    applied: int = 0
    cut: int = 0


class NetworkProxyError(Exception):
    """The fault proxy cannot be opened or driven. ``str()`` is a one-line message."""


class NetworkDriver(Protocol):
    """A fault proxy: clients connect to ``host:port``; toxics change what passes.

    Toxics act on existing connections and on new ones until removed. ``remove_toxic`` of a name
    that is not there does nothing (reverts may run twice).
    """

    host: str
    port: int

    def check(self) -> None:
        """Probe, harmlessly, that the proxy can work; raise :class:`NetworkProxyError` if not."""
        ...

    def add_toxic(
        self, name: str, kind: str, attributes: dict[str, int | float], stream: Stream, toxicity: float = 1.0
    ) -> None: ...

    def remove_toxic(self, name: str) -> None: ...

    def toxic_counts(self, name: str) -> ToxicCounts | None:
        """What toxic ``name`` has done so far, while it is on; None if it is not, or where not known."""
        ...

    def remove_all(self) -> None: ...

    def close(self) -> None:
        """Remove the proxy: its port refuses connections, its connections are closed."""
        ...

    def connections(self) -> int | None:
        """Client connections open through the proxy now, or None where that is not known cheaply."""
        ...


def check_toxic(kind: str, attributes: dict[str, int | float], stream: str, toxicity: float = 1.0) -> None:
    if kind not in _ATTRIBUTES:
        raise NetworkProxyError(f"unknown toxic {kind!r}: expected one of {', '.join(TOXIC_KINDS)}")
    unknown = set(attributes) - set(_ATTRIBUTES[kind])
    if unknown:
        raise NetworkProxyError(f"toxic {kind} takes {', '.join(_ATTRIBUTES[kind])}, not {', '.join(sorted(unknown))}")
    if any(not math.isfinite(value) or value < 0 for value in attributes.values()):
        raise NetworkProxyError(f"toxic {kind}: attributes must be finite and not negative, got {attributes}")
    if kind in _WHOLE and any(value != int(value) for value in attributes.values()):
        raise NetworkProxyError(f"toxic {kind}: attributes must be whole numbers, got {attributes}")
    if kind == "slicer":
        average, variation = attributes.get("average_size", 0), attributes.get("size_variation", 0)
        if average < 1 or variation >= average:
            raise NetworkProxyError(
                f"toxic slicer: average_size must be at least 1 and size_variation below it, got {attributes}"
            )
    if not (math.isfinite(toxicity) and 0 <= toxicity <= 1):
        raise NetworkProxyError(f"toxicity must be between 0 and 1, got {toxicity}")
    if stream not in ("downstream", "upstream"):
        raise NetworkProxyError(f"stream must be downstream or upstream, got {stream!r}")
