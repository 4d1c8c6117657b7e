"""The reference service (examples/service/app.py) as a process the pack starts and stops, like the
embedded redis-server: on a free loopback port, ready once its health endpoint answers 200, stopped
by PID (SIGTERM, then SIGKILL), and gone with the process that started it."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Final

from targets.embedded import die_with_parent, end_process, free_port

ROOT: Final = Path(__file__).resolve().parent.parent
APP: Final = "examples.service.app:app"
POLL_S: Final = 0.05


class ServiceError(Exception):
    """The reference service did not start (its dependencies missing, or no healthy answer in time)."""


class ReferenceService:
    """:meth:`start`, then :attr:`url`, then :meth:`stop` (idempotent).

    :param redis_url: the Redis the service uses
    :param settings: more of its ``RS_*`` settings (see examples/service/app.py), without the prefix
    """

    def __init__(self, redis_url: str, settings: dict[str, str] | None = None, host: str = "127.0.0.1") -> None:
        self.redis_url, self.settings, self.host = redis_url, dict(settings or {}), host
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, timeout_s: float = 20.0, wait_healthy: bool = True) -> ReferenceService:
        """Start it; with ``wait_healthy``, return once ``/health`` says 200, else once it answers at all."""
        missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
        if missing:
            raise ServiceError(
                f"the reference service needs {' and '.join(missing)}: install the service extra "
                "(pip install -e '.[service]'; ./dev does)"
            )
        self.port = free_port(self.host)
        env = {**os.environ, "RS_REDIS_URL": self.redis_url, **{f"RS_{k}": v for k, v in self.settings.items()}}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                APP,
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                self.process = None
                raise ServiceError(f"the reference service exited at start: {error.strip()[-500:]}")
            status, _ = self.get("/health")
            if status == 200 or (status is not None and not wait_healthy):
                return self
            time.sleep(POLL_S)
        self.stop()
        raise ServiceError(
            f"the reference service gave no {'healthy ' if wait_healthy else ''}answer within "
            f"{timeout_s:g}s on {self.url}"
        )

    def get(self, path: str) -> tuple[int | None, Any]:
        """``GET path``: the status and the JSON body (None, None when nothing answered)."""
        return self.call("GET", path)

    def call(self, method: str, path: str, body: Any = None, timeout_s: float = 5.0) -> tuple[int | None, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")
        except (urllib.error.URLError, OSError, ValueError):
            return None, None

    def stop(self, timeout_s: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        end_process(process, timeout_s=timeout_s)
        if process.stderr is not None:
            process.stderr.close()
