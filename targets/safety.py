"""Safety rails: chaos against a target off this machine needs an explicit opt-in.

The pack injects faults (``CLIENT KILL``, ``CLIENT PAUSE``, ``CONFIG SET maxmemory`` ...) only
against a target on loopback unless the profile says ``chaos.allow_remote: true`` or the command
line ``--allow-remote-chaos``. The check runs before anything connects, and reads the target's
hosts from its URL the way the client will (``config.hosts.parse_hosts``: redis-py's own parser for
``redis://`` and ``rediss://``, query ``?host=`` included; every listed node of ``sentinel://`` and
``cluster://``).

It resolves no name: a name that resolves to loopback still needs the opt-in, or the literal address.
"""

from __future__ import annotations

from typing import Final

from config.hosts import LoopbackRequired, require_loopback_or_opt_in
from config.redact import redact_url

# The embedded topologies the pack starts itself, always on 127.0.0.1.
_EMBEDDED: Final = ("embedded", "embedded-sentinel", "embedded-cluster")

CHAOS_OPT_IN: Final = (
    "Faults change the server's state, so a target off this machine needs an explicit opt-in: set "
    "chaos.allow_remote: true in the profile or pass --allow-remote-chaos (RESILIENCE_ALLOW_REMOTE_CHAOS=true); "
    "or run with --no-chaos (traffic only)"
)


def remote_chaos_refusal(url: str) -> str | None:
    """Why chaos against ``url`` needs the opt-in (its hosts off loopback), or None when it is local.

    A string, not a raise: the session keeps it for the faults asked for on demand later.
    """
    if url in _EMBEDDED:
        return None
    try:
        require_loopback_or_opt_in(url, CHAOS_OPT_IN, f"chaos against {redact_url(url)} refused")
    except LoopbackRequired as exc:
        return str(exc)
    return None
