"""Helpers for the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from scenarios.client import RedisRequestFailed
from scenarios.run import PoolResetResult

ROOT = Path(__file__).resolve().parent.parent
LOCUST = str(Path(sys.executable).with_name("locust"))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): read its state
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def write_profile(path: Path, overrides: dict[str, Any]) -> Path:
    """A profile file: config/ci.yaml with ``overrides`` merged in (nested dicts merge)."""
    base = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())

    def merge(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        for key, value in new.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value
        return into

    path.write_text(yaml.safe_dump(merge(base, overrides)))
    return path


def no_pools(fault_id: int) -> PoolResetResult:
    """A FaultTarget's reset_pools where the test has no users: nothing to reset."""
    return PoolResetResult(pools=0, connections=0, in_use=0)


def eventually(
    what: str, check: Callable[[], bool], timeout_s: float, explain: Callable[[], str] | None = None
) -> None:
    """A bounded wait on a condition of the servers (errors count as not yet); ``explain()`` adds to a failure."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError, RedisRequestFailed):
            pass
        time.sleep(0.05)
    pytest.fail(f"not within {timeout_s}s: {what}" + (f"\n{explain()}" if explain else ""))
