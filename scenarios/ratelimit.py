"""ratelimit: a fixed-window rate limiter in Lua (EVALSHA, SCRIPT LOAD on NOSCRIPT after a restart)."""

from __future__ import annotations

from locust import tag, task
from locust.env import Environment

import random

from pydantic import Field

from config.schema import WorkloadSettings
from scenarios.registry import register_workload
from scenarios.run import IntegrityResult, RedisClient
from scenarios.scripts import FIXED_WINDOW
from scenarios.user import RedisUser


class RateLimitFigures:
    """Decisions made on this node (nothing to check on the server: counters expire)."""

    def __init__(self) -> None:
        self.allowed = 0
        self.denied = 0
        self.script_loads = 0

    def verify(self, client: RedisClient) -> IntegrityResult:
        return IntegrityResult(
            figures={"allowed": self.allowed, "denied": self.denied, "script_loads": self.script_loads}
        )


class RateLimitWorkload(WorkloadSettings):
    limit: int = Field(50, ge=1, description="Requests allowed per window and client.")
    window_ms: int = Field(1000, ge=1)
    clients: int = Field(100, ge=1, description="Distinct rate-limited client ids.")


@register_workload
class RateLimitUser(RedisUser):
    Settings = RateLimitWorkload
    label = "ratelimit"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.spec = self.settings(RateLimitWorkload)
        self.figures = self.redis_run.check(self.label, RateLimitFigures)

    @tag("ratelimit")
    @task
    def check_limit(self) -> None:
        key = self.key("ratelimit", random.randrange(self.spec.clients))
        count, loaded = FIXED_WINDOW.run(self.client, [key], [self.spec.window_ms])
        self.figures.script_loads += loaded
        if int(count) <= self.spec.limit:
            self.figures.allowed += 1
        else:
            self.figures.denied += 1
