"""What the tests wait for, beside the processes of tests/helpers.py: conditions of the servers and of the
pack, each a bounded wait (``eventually``) whose failure names what did not happen, or a check to hand it."""

from __future__ import annotations

import time

import redis

from chaos.locust_test import MeasuredTest

from .helpers import eventually


def answered_at(conn: redis.Connection) -> float:
    """When the reply to the command ``conn`` has sent came (``time.monotonic()``)."""
    conn.read_response()
    return time.monotonic()


def window_closed(test: MeasuredTest | None, fault_id: int) -> bool:
    """Fault ``fault_id``'s window has closed on every request type's tracker of ``test`` (none is open)."""
    trackers = test.tracker.by_type.values() if test is not None else []
    closed = any(w.fault_id == fault_id for t in trackers for w in t.closed)
    return closed and not any(t.current is not None and t.current.fault_id == fault_id for t in trackers)


def blocked_in(admin: redis.Redis, command: str, name: str | None = None, timeout_s: float = 5) -> str:
    """Wait until a connection to ``admin``'s server (named ``name``, if given) is blocked in ``command``
    (``blpop``: CLIENT LIST's ``cmd`` and its ``b`` flag); its id."""
    found: list[str] = []

    def blocked() -> bool:
        found[:] = [
            str(c["id"])
            for c in admin.client_list()
            if c.get("cmd") == command and "b" in c.get("flags", "") and name in (None, c.get("name"))
        ]
        return bool(found)

    named = f" named {name}" if name is not None else ""
    eventually(f"a connection{named} blocked in {command.upper()}", blocked, timeout_s)
    return found[0]
