"""client_kill: the server closes client connections (``CLIENT KILL``), as a failover or proxy would.

Which connections (``scope``):

- ``own`` (default): this run's traffic connections, by their ``CLIENT SETNAME`` tag;
- ``service``: the connections of the service under test (or any application), chosen by ACL ``user``,
  client ``name_prefix``, ``addr`` (the client's IP, optional port or port range) and ``laddr`` (the
  server's address it connected to), all given ones at once;
- ``others``: every client except the pack's own (its traffic, admin links and witness);
- ``all``: every client, the pack's traffic included (never its admin links or witness).

``others`` and ``all`` reach other applications' connections too: they need ``allow_scope_all: true``.
Replication links are never closed. On a cluster, every primary closes them.

The details say how many matching connections there were before (``connections_found``), how many the
server closed (``connections_killed``) and, counted again when the fault's window closes,
``connections_at_window_close``: has the service reconnected?
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from chaos.faults.base import FaultBase, FaultParams, probe
from chaos.faults.registry import register_fault

if TYPE_CHECKING:
    import redis

# 127.0.0.1, 127.0.0.1:6379, 127.0.0.1:40000-40100, ::1, [::1]:6379, [::1]:40000-40100
_PORTS = r"(?::(?P<lo>\d{1,5})(?:-(?P<hi>\d{1,5}))?)?"
_WITH_PORTS = (re.compile(r"^\[(?P<ip>[^\]]+)\]" + _PORTS + "$"), re.compile(r"^(?P<ip>[0-9.]+)" + _PORTS + "$"))


def parse_endpoint(text: str) -> tuple[str, int, int]:
    """``ip[:port[-port]]`` (IPv6 in brackets when a port follows): (the IP, lowest port, highest port).
    ValueError when it is not one."""
    text = text.strip()
    match = next((m for pattern in _WITH_PORTS if (m := pattern.match(text))), None)
    try:
        ip = str(ipaddress.ip_address(match["ip"] if match else text))
    except ValueError:
        raise ValueError(f"expected IP, IP:PORT or IP:PORT-PORT (IPv6 as [IP]:PORT), got {text!r}") from None
    lo = int(match["lo"]) if match and match["lo"] is not None else 0
    hi = int(match["hi"]) if match and match["hi"] is not None else (lo if match and match["lo"] else 65535)
    if not 0 <= lo <= hi <= 65535:
        raise ValueError(f"port range {lo}-{hi} is not within 0-65535, low to high")
    return ip, lo, hi


_HANDSHAKE = frozenset({"NULL", "hello", "auth"})  # CLIENT LIST's cmd of a connection not yet named


def _at(endpoint: tuple[str, int, int], address: str) -> bool:
    """Does the server's ``ip:port`` (CLIENT LIST's addr / laddr) fall in ``endpoint``?"""
    host, _, port = address.rpartition(":")
    try:
        ip = str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return False
    low_ip, lo, hi = endpoint
    return ip == low_ip and port.isdigit() and lo <= int(port) <= hi


class ClientKillParams(FaultParams):
    name: Literal["client_kill"]
    scope: Literal["own", "service", "others", "all"] = Field(
        "own",
        description="own: this run's traffic connections (by CLIENT SETNAME tag); service: the connections the "
        "selectors (user, name_prefix, addr, laddr) choose, never the pack's own; others: every client except "
        "the pack's own; all: every client except the pack's admin links and witness.",
    )
    type: Literal["normal", "pubsub", "any"] = Field(
        "any", description="Which connections: normal, pubsub (subscribers), or any of both."
    )
    user: str | None = Field(None, description="Only connections authenticated as this ACL user.")
    name_prefix: str | None = Field(None, min_length=1, description="Only connections whose CLIENT SETNAME starts so.")
    addr: str | None = Field(
        None, description="Only connections from this client address: IP, IP:PORT or IP:PORT-PORT ([IPv6]:PORT)."
    )
    laddr: str | None = Field(
        None, description="Only connections to this server address (the port they connected to): IP[:PORT[-PORT]]."
    )
    allow_scope_all: bool = Field(
        False,
        description="Confirms scope: others or all, which also close connections that are not this run's "
        "(other applications' clients): without it, those scopes are refused.",
    )

    @model_validator(mode="after")
    def _selection_valid(self) -> ClientKillParams:
        if self.scope in ("others", "all") and not self.allow_scope_all:
            raise ValueError(
                f"scope: {self.scope} closes connections that are not this run's (other applications' too): "
                "set allow_scope_all: true on this fault to confirm, or select them with scope: service "
                "(user, name_prefix, addr, laddr)"
            )
        if self.scope == "service" and not any((self.user, self.name_prefix, self.addr, self.laddr)):
            raise ValueError("scope: service needs a selector: user, name_prefix, addr or laddr")
        for key, value in (("addr", self.addr), ("laddr", self.laddr)):
            if value is not None:
                try:
                    parse_endpoint(value)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        return self


@register_fault(ClientKillParams)
class ClientKill(FaultBase):
    name: ClassVar[str] = "client_kill"
    params: ClientKillParams

    def __init__(self, params: Any, target: Any) -> None:
        super().__init__(params, target)
        p = self.params
        self._addr = parse_endpoint(p.addr) if p.addr else None
        self._laddr = parse_endpoint(p.laddr) if p.laddr else None

    def check(self) -> None:
        for admin in self.target.node_admins():
            self._check(admin)

    @staticmethod
    def _check(admin: redis.Redis) -> None:
        probe("CLIENT LIST", admin.client_list)
        probe("CLIENT KILL", lambda: admin.client_kill_filter(_id="999999999999"))  # no such client: kills none

    def _matches(self, client: dict[str, Any]) -> bool:
        p = self.params
        name = str(client.get("name", ""))
        kind = "pubsub" if "P" in str(client.get("flags", "")) or int(client.get("sub", 0) or 0) else "normal"
        if p.scope == "own":
            in_scope = name.startswith(self.target.traffic_tag)
        elif p.scope == "all":
            in_scope = name.startswith(self.target.traffic_tag) or not self.target.is_ours(name)
        else:  # service, others: never the pack's own
            in_scope = not self.target.is_ours(name)
        return (
            in_scope
            and (p.type == "any" or p.type == kind)
            and (p.user is None or client.get("user") == p.user)
            and (p.name_prefix is None or name.startswith(p.name_prefix))
            and (self._addr is None or _at(self._addr, str(client.get("addr", ""))))
            and (self._laddr is None or _at(self._laddr, str(client.get("laddr", ""))))
        )

    def _killable(self, client: dict[str, Any], pack: str | None) -> bool:
        """Never the pack's own admin links, nor replication links (M: master, S: replica), nor a connection
        still in its handshake: redis-py names a connection (CLIENT SETNAME) only after HELLO / AUTH, so an
        unnamed one there may be the pack's own reconnecting."""
        flags = str(client.get("flags", ""))
        ours = pack is not None and client.get("name") == pack
        handshake = not client.get("name") and str(client.get("cmd", "")) in _HANDSHAKE
        return not ours and not handshake and "M" not in flags and "S" not in flags and self._matches(client)

    def _victims(self, admin: redis.Redis) -> list[str]:
        me = str(admin.client_id())
        pack = admin.connection_pool.connection_kwargs.get("client_name")  # also the pack's other admin links
        return [str(c["id"]) for c in admin.client_list() if str(c["id"]) != me and self._killable(c, pack)]

    def inject(self) -> dict[str, Any]:
        found = killed = 0
        for admin in self.target.node_admins():
            ids = self._victims(admin)
            pipe = admin.pipeline(transaction=False)
            for client_id in ids:
                pipe.client_kill_filter(_id=client_id)
            # A connection that closed between CLIENT LIST and CLIENT KILL counts 0, not an error.
            found += len(ids)
            killed += sum(r for r in pipe.execute(raise_on_error=False) if isinstance(r, int))
        return {"connections_found": found, "connections_killed": killed}

    def window_closed(self) -> dict[str, Any]:
        """The matching connections again, as the window closes: the service's reconnections."""
        return {"connections_at_window_close": sum(len(self._victims(admin)) for admin in self.target.node_admins())}
