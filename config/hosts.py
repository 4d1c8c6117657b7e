"""Hosts: which ones are this machine, which ones a URL names, and the rule that a URL off this
machine needs an explicit opt-in.

No name is resolved. Only literal loopback addresses (``127.0.0.0/8``, ``::1``, ``::ffff:127.x.y.z``)
and ``localhost`` count as local; any other name is remote, even one that resolves to loopback
today: ``/etc/hosts`` or DNS can say anything and change between the check and the connection, and
a look-up is itself traffic.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final, NamedTuple
from urllib.parse import unquote, urlsplit

from config.redact import redact_url

# The port a client takes when a URL names none, by scheme (sentinel:// and cluster:// are the pack's own).
DEFAULT_PORTS: Final = {"redis": 6379, "rediss": 6379, "sentinel": 26379, "cluster": 6379, "http": 80, "https": 443}


class HostPort(NamedTuple):
    host: str
    port: int


class LoopbackRequired(ValueError):
    """A URL names a host off this machine, or no host that can be checked, and the caller has no opt-in."""


def is_loopback_host(host: str) -> bool:
    """A literal loopback address or ``localhost``; no name is resolved."""
    host = host.strip().strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone (%eth0) names no host
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def parse_hosts(url: str) -> list[HostPort]:
    """The hosts a URL makes its client connect to, read the way that client reads them, ports filled in.

    - ``redis://``, ``rediss://``: redis-py's own parser (``?host=`` included; no host: ``localhost``);
    - ``sentinel://``, ``cluster://``: each ``HOST[:PORT]`` of the comma-separated list after any
      credentials, an IPv6 address in brackets (``[::1]:7000``); an empty host is ``127.0.0.1``;
    - ``http://``, ``https://``: the one host, which must be there.

    Hosts come unquoted and without brackets. ``ValueError`` (naming the URL, its password masked):
    another scheme, no host, a bad port, an IPv6 address without its brackets or with one unclosed.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower() if sep else ""
    shown = redact_url(url)
    if scheme in ("redis", "rediss"):
        from redis.connection import parse_url  # the client's own reading; imported here to keep config light

        kwargs = parse_url(url)
        return [HostPort(str(kwargs.get("host") or "localhost"), int(kwargs.get("port") or DEFAULT_PORTS[scheme]))]
    if scheme in ("sentinel", "cluster"):
        netloc = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
        return [_host_port(part, DEFAULT_PORTS[scheme], shown) for part in netloc.split(",")]
    if scheme in ("http", "https"):
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"no host in {shown!r}")
        return [HostPort(unquote(parts.hostname), parts.port or DEFAULT_PORTS[scheme])]
    expected = "a redis://, rediss://, sentinel://, cluster://, http:// or https:// URL"
    raise ValueError(f"no host to check in {shown!r}: expected {expected}")


def _host_port(part: str, default_port: int, shown: str) -> HostPort:
    """One ``HOST[:PORT]`` or ``[IPv6][:PORT]`` of a host list."""
    if part.startswith("["):
        host, closed, after = part[1:].partition("]")
        if not closed or (after and not after.startswith(":")):
            raise ValueError(f"bad host {part!r} in {shown!r}: expected [IPv6]:PORT")
        port = after[1:]
    elif part.count(":") > 1:
        raise ValueError(f"bad host {part!r} in {shown!r}: an IPv6 address goes in brackets, [IPv6]:PORT")
    else:
        host, _, port = part.partition(":")
    if port and not (port.isascii() and port.isdigit() and int(port) <= 65535):
        raise ValueError(f"bad port {port!r} in {shown!r}")
    return HostPort(unquote(host) or "127.0.0.1", int(port) if port else default_port)


def require_loopback_or_opt_in(url: str, opt_in: str | None, what: str) -> None:
    """Raise :class:`LoopbackRequired` unless every host ``url`` names (:func:`parse_hosts`) is loopback.

    A URL whose hosts cannot be read is refused too, with the parser's reason. The message opens with
    ``what`` (what is refused, its URL's password masked by the caller), names the hosts off this machine,
    and ends with ``opt_in``: the sentence saying how to allow it (``None``: nothing can). A caller that
    has the opt-in does not call this.
    """
    try:
        hosts = [host for host, _port in parse_hosts(url)]
    except ValueError as exc:
        reason = str(exc)
    else:
        remote = [host for host in dict.fromkeys(hosts) if not is_loopback_host(host)]
        if not remote:
            return
        verb = "is not a loopback address" if len(remote) == 1 else "are not loopback addresses"
        reason = f"{', '.join(remote)} {verb}"
    raise LoopbackRequired(f"{what}: {reason}" + (f". {opt_in}" if opt_in else ""))
