"""What the scheduler records of each fault it ran: the report's ``faults`` list is made of these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FaultRecord:
    """One fault: what ran, when, what it did, and what triggered it."""

    fault_id: int
    name: str
    params: dict[str, Any]
    offset_s: float  # when the injection call began (the window's start) since the test started
    inject_ms: float  # how long the injection call took
    begin: float | None = None  # monotonic: when the injection call began, the window's start (None: not yet)
    t0: float | None = None  # monotonic: when the injection returned, None when it failed (or has not yet)
    took_effect: float | None = None  # monotonic: when the fault reached the target, if it knows (else t0)
    details: dict[str, Any] = field(default_factory=dict)  # what the injection returned: never changed after
    at_window_close: dict[str, Any] = field(default_factory=dict)  # what the fault counted as its window closed
    seen: dict[str, Any] = field(default_factory=dict)  # what it saw in the background (as of the last look)
    error: str | None = None
    duration_s: float = 0.0
    revert_error: str | None = None
    reverted: bool = False
    trigger: str = "schedule"  # "schedule", or "web": injected on demand from the web UI
    scheduled_s: float | None = None  # when the schedule wanted it, since the test started (None: on demand)
    late_ms: float | None = None  # how late the injection began against ``scheduled_s``
    watched: tuple[str, ...] = ()  # the data nodes the witness watched at the injection (host:port)
    outage_s: float | None = None  # the server's longest stretch without a timely reply (None: not witnessed)
    outage_started_s: float | None = None  # when it began, relative to ``begin`` (the window's start)

    @property
    def ok(self) -> bool:
        return self.error is None

    def all_details(self) -> dict[str, Any]:
        """The report's ``details``: the injection's, then what the fault counted as its window closed, then
        what it saw in the background (each its own record, written once by its owner and merged here)."""
        return {**self.details, **self.at_window_close, **self.seen}

    def brief(self) -> dict[str, Any]:
        """The short form (the web UI's status)."""
        return {
            "id": self.fault_id,
            "name": self.name,
            "trigger": self.trigger,
            "offset_s": round(self.offset_s, 3),
            "ok": self.ok,
        }
