"""What ran: the tools' versions, the client implementation in effect, and each data node's server.

The report's ``environment`` block (docs/report.md) is :meth:`RunEnvironment.as_report`;
:func:`versions_line` is the one line the console's and the HTML page's headers show, and what
``redis-resilience compare`` names when two runs differ (:func:`version_key`).
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from config.schema import ClientOptions

if TYPE_CHECKING:  # not imported at run time: it imports redis, which the report tools load only after Locust
    from targets.server_version import ServerVersion

VersionKey = tuple[str | None, str | None, tuple[str, ...]] | None
"""redis-py's and hiredis's versions and the servers' (``redis 7.0``); None: not recorded."""

NOT_RECORDED = "versions not recorded (a report made before reports named them)"  # the headers' line


def package_version(distribution: str) -> str | None:
    """The installed version of ``distribution``; None when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _tools() -> dict[str, str | None]:
    return {
        "python": platform.python_version(),
        "locust": package_version("locust"),
        "gevent": package_version("gevent"),
        "redis": package_version("redis"),
        "hiredis": package_version("hiredis"),
    }


@dataclass(frozen=True)
class RunEnvironment:
    """What one run ran, read once when it opened its target (tools' versions: this process's).

    :param client: the profile's client settings (the parser and connection mode in effect)
    :param servers: each data node the run targets, as its ``INFO server`` said
    """

    client: ClientOptions
    servers: tuple[ServerVersion, ...]
    tools: dict[str, str | None] = field(default_factory=_tools)

    def as_report(self) -> dict[str, Any]:
        """The report's ``environment`` block (a new dict each time: the report owns it)."""
        return {
            **self.tools,
            "client": {
                "implementation": "redis-py",
                "parser": self.client.parser,
                "connection": self.client.connection,
                "maint_notifications": self.client.maint_notifications,
            },
            "servers": [_server_entry(s) for s in self.servers],
        }


def _server_entry(server: ServerVersion) -> dict[str, str | None]:
    entry = {"node": server.node, "server": server.server, "version": server.version}
    if server.error is not None:
        entry["error"] = server.error
    return entry


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _server_label(server: Mapping[str, Any], major_minor: bool) -> str:
    version = server.get("version")
    if version is None:
        return f"server unknown ({server.get('node')}: {server.get('error') or 'not asked'})"
    shown = _major_minor(str(version)) if major_minor else str(version)
    return f"{server.get('server') or 'redis'} {shown}"


def client_label(environment: Mapping[str, Any]) -> str:
    """``redis-py 8.2.0 + hiredis 3.5.0``, or ``redis-py 8.2.0 (python parser)``; a dedicated connection said."""
    client = environment.get("client") or {}
    notes = []
    text = f"redis-py {environment.get('redis') or '?'}"
    if client.get("parser", "hiredis") == "hiredis":
        text += f" + hiredis {environment.get('hiredis') or '(not installed)'}"
    else:
        notes.append(f"{client.get('parser')} parser")
    if client.get("connection") == "dedicated":
        notes.append("dedicated connection")
    if client.get("maint_notifications", "auto") != "auto":
        notes.append(f"maintenance notifications {client.get('maint_notifications')}")
    return text + (f" ({', '.join(notes)})" if notes else "")


def versions_line(environment: Mapping[str, Any] | None, major_minor: bool = False) -> str:
    """The one line that says what ran: ``redis-py 8.2.0 + hiredis 3.5.0 → redis 7.0.15``.

    Several servers of one version are named once, different ones each; ``major_minor`` names the
    servers' versions as ``compare`` compares them (``redis 7.0``). A report without an ``environment``
    block (made before it existed): :data:`NOT_RECORDED`."""
    if environment is None:
        return NOT_RECORDED
    labels: list[str] = []
    for server in environment.get("servers") or []:
        label = _server_label(server, major_minor)
        if label not in labels:
            labels.append(label)
    return f"{client_label(environment)} → {', '.join(labels) or 'no server asked'}"


def version_key(environment: Mapping[str, Any] | None) -> VersionKey:
    """What two runs must share for ``compare`` to compare them without being told: the redis-py and
    hiredis versions and each server's major.minor version (None: not recorded, unknown)."""
    if environment is None:
        return None
    servers = sorted({_server_label(s, major_minor=True) for s in environment.get("servers") or []})
    return environment.get("redis"), environment.get("hiredis"), tuple(servers)
