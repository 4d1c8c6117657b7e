"""Safety rails: chaos against a target off this machine needs an explicit opt-in.

The pack injects faults (``CLIENT KILL``, ``CLIENT PAUSE``, ``CONFIG SET maxmemory`` ...) only
against a target on loopback unless the profile says ``chaos.allow_remote: true`` or the command
line ``--allow-remote-chaos``. The check runs before anything connects, and reads the target's
hosts from its URL the way the client will (redis-py's own parser for ``redis://`` and
``rediss://``, query ``?host=`` included; every listed node of ``sentinel://`` and ``cluster://``).

It resolves no name. Only literal loopback addresses (``127.0.0.0/8``, ``::1``, ``::ffff:127.x.y.z``)
and ``localhost`` count as local; any other name is remote, even one that resolves to loopback
today: ``/etc/hosts`` or DNS can say anything and change between the check and the connection, and
a look-up is itself traffic. Such a name needs the opt-in, or the literal address.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from config.hosts import is_loopback_host
from config.redact import redact_url

# The embedded topologies the pack starts itself, always on 127.0.0.1.
_EMBEDDED = ("embedded", "embedded-sentinel", "embedded-cluster")


def target_hosts(url: str) -> list[str]:
    """The hosts a target URL makes the pack connect to (``[]`` for an embedded topology).

    Raises ``ValueError`` when the URL names no host the way its client would read it.
    """
    if url in _EMBEDDED:
        return []
    if url.startswith(("redis://", "rediss://")):
        from redis.connection import parse_url  # the client's own reading, ?host= included

        host = parse_url(url).get("host")
        return [str(host) if host else "localhost"]  # redis-py's default host
    if url.startswith(("sentinel://", "cluster://")):
        netloc = re.split(r"[/?#]", url.split("://", 1)[1], maxsplit=1)[0]
        hosts = []
        for part in netloc.rpartition("@")[2].split(","):
            if part.startswith("["):  # [IPv6]:port
                host = part[1:].partition("]")[0]
            else:
                host = part.rpartition(":")[0] if ":" in part else part
            hosts.append(unquote(host) or "127.0.0.1")  # the pack's sentinel and cluster parsers' default
        return hosts
    raise ValueError(f"no host to check in {redact_url(url)!r}")


def remote_chaos_refusal(url: str) -> str | None:
    """Why chaos against ``url`` needs the opt-in (its hosts off loopback), or None when it is local."""
    try:
        remote = [host for host in target_hosts(url) if not is_loopback_host(host)]
    except ValueError as exc:
        remote, reason = [], str(exc)
    else:
        reason = ""
    if not remote and not reason:
        return None
    what = f"{', '.join(remote)} {'is not a loopback address' if len(remote) == 1 else 'are not loopback addresses'}"
    return (
        f"chaos against {redact_url(url)} refused: {what if remote else reason}. Faults change the "
        "server's state, so a target off this machine needs an explicit opt-in: set chaos.allow_remote: true "
        "in the profile or pass --allow-remote-chaos (RESILIENCE_ALLOW_REMOTE_CHAOS=true); or run with "
        "--no-chaos (traffic only)"
    )
