"""Opening the fault proxy a profile's ``target.proxy`` asks for: one of the drivers of the interface in
targets/netproxy.py (which the drivers import; this module imports them, so nothing goes in a circle)."""

from __future__ import annotations

from config.proxy import ProxySettings
from targets.builtin_proxy import BuiltinProxy
from targets.greenlets import OnCrash
from targets.netproxy import NetworkDriver
from targets.toxiproxy import ToxiproxyDriver


def open_proxy(
    settings: ProxySettings,
    upstream_host: str,
    upstream_port: int,
    on_crash: OnCrash | None = None,
    resp_aware: bool = False,
) -> NetworkDriver:
    """Open the proxy ``settings`` ask for, in front of ``upstream_host:upstream_port``; ``on_crash``
    hears of a crashed greenlet of the built-in proxy (see :class:`BuiltinProxy`); ``resp_aware``: the
    built-in proxy reads RESP (``settings.resp_aware``, or a maintenance fault scheduled)."""
    if settings.driver == "toxiproxy":
        return ToxiproxyDriver(settings, upstream_host, upstream_port)
    return BuiltinProxy(upstream_host, upstream_port, settings.listen_port, on_crash, resp_aware or settings.resp_aware)
