"""Background greenlets whose crash is reported, never silent, and that their owner stops.

gevent prints an uncaught exception of a spawned greenlet to stderr and forgets it: a proxy pump,
a pub/sub listener or a failover watcher that crashes then silently stops doing what the run
measures. So every background greenlet of the pack is spawned here, with ``link_exception`` to a
callback its owner gives, which records the crash where the report or the user sees it (a fault's
details or revert error, Locust's user errors). Its owner keeps it and ends it with :func:`stop`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import gevent

from config.redact import redact_url

OnCrash = Callable[[BaseException], None]
STOP_TIMEOUT_S: Final = 5.0  # how long stop() waits for a killed greenlet to end (its finally blocks)


def spawn_reported(on_crash: OnCrash, body: Callable[..., Any], *args: Any) -> gevent.Greenlet:
    """Spawn ``body(*args)``; if it raises, ``on_crash(exception)`` runs once it has died (in a greenlet
    of its own, as gevent runs links: it may block, e.g. to send a message).

    A kill (``GreenletExit``) is an ending, not a crash.
    """
    greenlet = gevent.spawn(body, *args)
    greenlet.link_exception(lambda dead: on_crash(dead.exception))
    return greenlet


def spawn_later_reported(seconds: float, on_crash: OnCrash, body: Callable[..., Any], *args: Any) -> gevent.Greenlet:
    """:func:`spawn_reported`, started ``seconds`` from now (a timer)."""
    greenlet = gevent.spawn_later(seconds, body, *args)
    greenlet.link_exception(lambda dead: on_crash(dead.exception))
    return greenlet


def stop(greenlet: gevent.Greenlet | None, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Kill ``greenlet`` and join it, for at most ``timeout_s``; True when it has ended (or there was none).

    When it returns, the crash callback of a greenlet that crashed has run (up to its first blocking
    call): gevent queues the links at the greenlet's death, before the yield to the hub made here.
    """
    if greenlet is None:
        return True
    greenlet.kill(block=True, timeout=timeout_s)
    gevent.sleep(0)
    return bool(greenlet.dead)


def describe(exc: BaseException) -> str:
    """A crash in one line, for a report field: ``"ValueError: what it said"`` (credentials in URLs redacted)."""
    return redact_url(f"{type(exc).__name__}: {exc}")
