"""A throwaway server on a free loopback port, with its own temp dir, stopped by PID: ``redis-server``, or
the binary of another kind targets/servers.py found (``valkey-server``)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from targets.servers import ServerBinaries, ServerNotFound, find_server

# How each ``target.persistence`` of a profile configures an embedded server.
PERSISTENCE_ARGS: dict[str, tuple[str, ...]] = {
    "none": ("--appendonly", "no"),
    "aof": ("--appendonly", "yes", "--appendfsync", "everysec"),
    "aof_always": ("--appendonly", "yes", "--appendfsync", "always"),
}


def config_text(args: list[str]) -> str:
    """``--name value ...`` options as config file lines (``name "value" ...``)."""
    lines: list[list[str]] = []
    for arg in args:
        if arg.startswith("--"):
            lines.append([arg[2:]])
        else:
            lines[-1].append('"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "".join(" ".join(line) + "\n" for line in lines)


class EmbeddedRedisError(Exception):
    """The embedded server could not be started. ``str()`` is a one-line message."""


def die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when its parent dies (best effort)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1
READY_POLL_S = 0.002  # how often a starting server is asked whether it answers (its start-up time is measured)


def end_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 5.0) -> None:
    """Send ``sig`` to a child the pack started, wait for it, then SIGKILL it if it has not exited
    within ``timeout_s`` (a child already gone: nothing to do)."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, sig)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout_s)


def server_binaries(kind: str = "redis", binary: str | None = None) -> ServerBinaries:
    """The binaries of ``kind`` (targets/servers.py), or EmbeddedRedisError: one line saying how to install them."""
    try:
        return find_server(kind, binary)
    except ServerNotFound as exc:
        raise EmbeddedRedisError(str(exc)) from None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """Start with :meth:`start`, stop with :meth:`stop` (idempotent; SIGTERM, then SIGKILL).

    :param server: the binaries to run (targets/servers.py); None: redis-server, found at the start
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        extra_args: tuple[str, ...] = (),
        persistence: str = "none",
        server: ServerBinaries | None = None,
    ) -> None:
        self.server = server
        self.host = host
        self.extra_args = extra_args
        self.persistence = persistence
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.dir: Path | None = None
        self.startup_s = 0.0  # from the gate's opening to the first answer: the fastest seen (0: not yet)
        self.gated = False  # a process waits at the gate (see prepare)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def binary(self) -> str:
        """The server binary's name, as messages say it (``redis-server``, ``valkey-server``)."""
        return self.server.name if self.server is not None else "redis-server"

    def start(self, timeout_s: float = 10.0, attempts: int = 3) -> Self:
        if self.server is None:
            self.server = server_binaries()
        last_error = "no attempt made"
        for _ in range(attempts):  # a free port can be taken between probing and binding
            self.port = free_port(self.host)
            self.dir = Path(tempfile.mkdtemp(prefix="redis-resilience-", dir=self.temp_root()))
            if self._spawn(timeout_s):
                return self
            last_error = self._log_tail()
            self.stop()
        raise EmbeddedRedisError(f"{self.binary} did not start on {self.host}: {last_error}")

    def _spawn(self, timeout_s: float) -> bool:
        """Start the server on ``self.port`` in ``self.dir``; True once it answers PING."""
        self.prepare()
        return self._release(timeout_s)

    def prepare(self) -> None:
        """Fork the server's process now, held at a gate (a shell waiting for one line on its stdin,
        then exec'ing the server): :meth:`restart` then only opens the gate. Forking a large
        load generator takes tens of ms under load; exec and start-up alone take a steady ~17 ms, so
        a restart lands on time (chaos/faults/server_restart.py)."""
        if self.process is not None and self.process.poll() is None:
            return  # running, or already at the gate
        assert self.dir is not None and self.server is not None
        args = [
            self.server.server,
            *self.command_args(),
            "--daemonize",
            "no",
            "--logfile",
            str(self.dir / "redis.log"),
        ]
        # Its own session: a Ctrl-C in the terminal reaches Locust only, which stops the server
        # after checking acknowledged writes. If Locust itself is killed, the server follows it.
        self.process = subprocess.Popen(
            ["/bin/sh", "-c", 'read -r _ && exec "$@"', "redis-gate", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self.gated = True

    def _release(self, timeout_s: float) -> bool:
        """Open the gate: the server execs and starts; True once it answers (its start-up time measured)."""
        assert self.process is not None and self.process.stdin is not None
        released = time.monotonic()
        with contextlib.suppress(OSError):
            self.process.stdin.write(b"go\n")
            self.process.stdin.close()
        self.gated = False
        ready = self._wait_ready(timeout_s)
        took = time.monotonic() - released
        if ready:
            self.startup_s = min(self.startup_s, took) if self.startup_s else took
        return ready

    def temp_root(self) -> str | None:
        """Where the server's temp dir is made (None: the system's temp dir)."""
        return None

    def command_args(self) -> list[str]:
        """What the server is started with: its config file, written from :meth:`config_args` on the
        first start and kept after, as a deployment's is. A restart then comes back with what
        ``CONFIG REWRITE`` put there: Sentinel rewrites a node's role when it reconfigures it (from
        the command line instead, a promoted replica restarted as a replica of its own replica)."""
        assert self.dir is not None
        conf = self.dir / "redis.conf"
        if not conf.exists():
            conf.write_text(config_text(self.config_args()))
        return [str(conf)]

    def config_args(self) -> list[str]:
        """The server's settings, as command-line options."""
        assert self.dir is not None
        return [
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--dir",
            str(self.dir),
            "--save",
            "",
            *PERSISTENCE_ARGS[self.persistence],
            "--protected-mode",
            "yes",
            "--repl-diskless-sync-delay",
            "0",  # a replica (re)joining syncs at once, not after 5 s
            *self.extra_args,
        ]

    def kill(self, hard: bool = True, timeout_s: float = 10.0) -> None:
        """Crash (SIGKILL) or shut down cleanly (SIGTERM: Redis flushes its AOF and exits); keep the data dir."""
        process, self.process = self.process, None
        self.gated = False
        if process is not None:
            end_process(process, signal.SIGKILL if hard else signal.SIGTERM, timeout_s)

    def restart(self, timeout_s: float = 10.0) -> None:
        """Start again on the same port, from the same data dir (what persistence kept); at once when
        :meth:`prepare` forked it already."""
        if self.running and not self.gated:
            return
        if not self._spawn(timeout_s):
            error = self._log_tail()
            self.kill()
            raise EmbeddedRedisError(f"{self.binary} did not restart on {self.host}:{self.port}: {error}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def probe_client(self) -> redis.Redis:
        """What start-up pings the server with (a TLS server's subclass brings its certificates)."""
        return redis.Redis(
            host=self.host, port=self.port, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
        )

    def _wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self.probe_client() as probe:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    return False
                with contextlib.suppress(redis.RedisError):
                    # Our own process answers, not another one that took the port between free_port()
                    # and our bind (parallel tests): that one's PONG would hide our failed start.
                    if int(probe.info("server")["process_id"]) == self.process.pid:
                        return True
                time.sleep(READY_POLL_S)
            return False

    def _log_tail(self) -> str:
        if self.dir is None:
            return "unknown error"
        try:
            lines = (self.dir / "redis.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log written"
        return lines[-1] if lines else "empty log"

    def stop(self, timeout_s: float = 5.0) -> None:
        self.kill(hard=False, timeout_s=timeout_s)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
