"""session: one hash per web session (HSET / HGETALL), its TTL renewed on every access (sliding)."""

from __future__ import annotations

from locust import tag, task
from locust.env import Environment

import random
import time

from pydantic import Field

from config.schema import WorkloadSettings
from scenarios.registry import register_workload
from scenarios.user import RedisUser


class SessionWorkload(WorkloadSettings):
    sessions_per_user: int = Field(20, ge=1)
    value_bytes: int = Field(128, ge=0)
    ttl_s: int = Field(1800, ge=1, description="Sliding: every access renews it.")


@register_workload
class SessionUser(RedisUser):
    Settings = SessionWorkload
    label = "session"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.spec = self.settings(SessionWorkload)
        self.sessions = [self.key("session", self.user_key, i) for i in range(self.spec.sessions_per_user)]
        self.cart = "c" * self.spec.value_bytes

    @tag("session")
    @task
    def visit(self) -> None:
        key = random.choice(self.sessions)
        if not self.client.hgetall(key):  # a new (or expired) session: log in
            self.client.hset(key, mapping={"user": self.user_key, "cart": self.cart, "seen": time.time()})
        else:
            self.client.hset(key, "seen", time.time())
        self.client.expire(key, self.spec.ttl_s)
