"""Lua scripts run the way applications run them: EVALSHA first, SCRIPT LOAD on NOSCRIPT.

A restarted or failed-over server has an empty script cache, so the NOSCRIPT fallback is part
of what is under test. The EVALSHA answered NOSCRIPT is a request of its own in Locust's
statistics (a success: the application handles it), followed by SCRIPT LOAD and EVALSHA.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from scenarios.traffic_client import TrafficClient


class RedisScript:
    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def run(self, client: TrafficClient, keys: Sequence[Any], args: Sequence[Any]) -> tuple[Any, bool]:
        """Returns the script's result and whether it had to be loaded (NOSCRIPT)."""
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args), False
        except NoScriptError:
            pass
        client.script_load(self.source)
        return client.evalsha(self.sha, len(keys), *keys, *args), True


COMPARE_AND_DELETE = RedisScript(
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
)

FIXED_WINDOW = RedisScript(
    "local n = redis.call('incr', KEYS[1]) if n == 1 then redis.call('pexpire', KEYS[1], ARGV[1]) end return n"
)
