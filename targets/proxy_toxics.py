"""What the built-in fault proxy's toxics do to the data of one connection (see targets/netproxy.py for
the toxics, targets/builtin_proxy.py for the pumps that apply this).

A toxic is on the proxy (:class:`Toxic`); whether it acts on a connection is drawn once per
connection with its ``toxicity``, as Toxiproxy draws once per link: for the connections open when
the toxic is added, then for each connection made while it is on. The toxics that act on a
connection are folded, per direction, into one immutable :class:`Effects` that its pump reads once
per chunk; what must be counted per connection (``limit_data``'s bytes) lives in :class:`ConnToxics`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final

UPSTREAM, DOWNSTREAM = 0, 1


@dataclass(frozen=True)
class Toxic:
    name: str
    kind: str
    attributes: dict[str, int | float]
    direction: int
    toxicity: float = 1.0

    def attr_s(self, key: str) -> float:
        """A time attribute (ms) in seconds; missing means 0, as in Toxiproxy."""
        return float(self.attributes.get(key, 0)) / 1000

    def attr(self, key: str) -> int:
        """A whole-number attribute (bytes, microseconds); missing means 0, as in Toxiproxy."""
        return int(self.attributes.get(key, 0))

    def draw(self) -> bool:
        """Whether this toxic acts on a new link: ``random() < toxicity`` (Toxiproxy's draw; 1 is always, 0 never)."""
        return self.toxicity >= 1 or random.random() < self.toxicity


@dataclass(frozen=True)
class Slicer:
    """Toxiproxy's slicer: each chunk passed on in slices of ``average`` +/- ``variation`` bytes, each
    followed by ``delay_s``."""

    average: int
    variation: int
    delay_s: float

    def bounds(self, size: int) -> list[int]:
        """The ends of the slices of ``size`` bytes: Toxiproxy's ``chunk`` (a chunk no longer than
        average + variation is one slice; a longer one is cut near its middle, moved by a random
        -variation .. variation - 1, and each half sliced again). A slice is at most average + variation
        and, with variation < average (checked), never empty."""
        ends: list[int] = []
        todo = [(0, size)]  # a stack, right half below the left one: slices come out in order
        while todo:
            start, end = todo.pop()
            if end - start - self.average <= self.variation:
                ends.append(end)
                continue
            mid = start + (end - start) // 2
            if self.variation > 0:
                mid += random.randrange(self.variation * 2) - self.variation
            todo.append((mid, end))
            todo.append((start, mid))
        return ends


@dataclass(frozen=True)
class Effects:
    """What the toxics acting on one direction of a connection do to its data, folded into one value.

    Several toxics on one direction combine: any ``timeout`` drops, the shortest ``reset_peer``
    resets, latencies and close delays add, the lowest rate paces, each ``limit_data`` counts its own
    bytes (:class:`ConnToxics`), the last-added ``slicer`` slices.
    """

    drop: bool = False
    reset_after_s: float | None = None
    latency_s: float = 0.0
    jitter_s: float = 0.0
    rate_bytes_s: float | None = None
    close_delay_s: float = 0.0
    limited: bool = False
    slicer: Slicer | None = None

    def delay_s(self) -> float:
        if self.jitter_s:
            return self.latency_s + random.uniform(-self.jitter_s, self.jitter_s)
        return self.latency_s

    @classmethod
    def fold(cls, toxics: list[Toxic]) -> Effects:
        if not toxics:
            return CLEAN
        resets = [t.attr_s("timeout") for t in toxics if t.kind == "reset_peer"]
        rates = [float(t.attributes.get("rate", 0)) * 1000 for t in toxics if t.kind == "bandwidth"]
        rates = [r for r in rates if r > 0]  # rate 0: unlimited, as in Toxiproxy
        slicers = [t for t in toxics if t.kind == "slicer"]
        slicer = None
        if slicers:
            last = slicers[-1]
            slicer = Slicer(last.attr("average_size"), last.attr("size_variation"), last.attr("delay") / 1e6)
        return cls(
            drop=any(t.kind == "timeout" for t in toxics),
            reset_after_s=min(resets) if resets else None,
            latency_s=sum(t.attr_s("latency") for t in toxics if t.kind == "latency"),
            jitter_s=sum(t.attr_s("jitter") for t in toxics if t.kind == "latency"),
            rate_bytes_s=min(rates) if rates else None,
            close_delay_s=sum(t.attr_s("delay") for t in toxics if t.kind == "slow_close"),
            limited=any(t.kind == "limit_data" for t in toxics),
            slicer=slicer,
        )


CLEAN: Final = Effects()


@dataclass
class ConnToxics:
    """The toxics acting on one connection, its :class:`Effects` by direction, and what ``limit_data``
    counts on it: the bytes each may still pass, from when it began acting on the connection."""

    toxics: dict[str, Toxic] = field(default_factory=dict)
    effects: list[Effects] = field(default_factory=lambda: [CLEAN, CLEAN])  # by direction
    remaining: dict[str, int] = field(default_factory=dict)  # limit_data toxic -> bytes it may still pass

    def apply(self, toxic: Toxic) -> None:
        self.toxics[toxic.name] = toxic
        if toxic.kind == "limit_data":
            self.remaining[toxic.name] = toxic.attr("bytes")
        self._refold(toxic.direction)

    def unapply(self, name: str) -> bool:
        """Stop ``name`` acting here; False if it did not."""
        toxic = self.toxics.pop(name, None)
        if toxic is None:
            return False
        self.remaining.pop(name, None)
        self._refold(toxic.direction)
        return True

    def limit(self, direction: int, data: bytes) -> tuple[bytes, list[str]]:
        """``data`` as the ``limit_data`` toxics of ``direction`` let it pass (cut at the smallest
        budget), and the toxics whose budget it used up: the connection is to close after it."""
        budgets = [(name, left) for name, left in self.remaining.items() if self.toxics[name].direction == direction]
        if not budgets:
            return data, []
        allowed = max(0, min(left for _, left in budgets))
        if allowed < len(data):
            data = data[:allowed]
        spent: list[str] = []
        for name, left in budgets:
            left -= len(data)
            self.remaining[name] = left
            if left <= 0:
                spent.append(name)
        return data, spent

    def _refold(self, direction: int) -> None:
        self.effects[direction] = Effects.fold([t for t in self.toxics.values() if t.direction == direction])
