"""Host names: which ones are this machine (no name is resolved)."""

from __future__ import annotations

import ipaddress


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
