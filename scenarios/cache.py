"""cache: read-heavy cache-aside traffic, GET with a SET on miss, plain SETs, all with a TTL."""

from __future__ import annotations

from locust import tag, task
from locust.env import Environment

import random

from scenarios.user import RedisUser


class CacheUser(RedisUser):
    label = "cache"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        spec = self.redis_run.profile.workload.mix.cache
        self.spec = spec
        self.key_base = f"{self.redis_run.key_prefix}cache:"
        self.value = b"v" * spec.value_bytes

    @tag("cache")
    @task
    def read_or_write(self) -> None:
        spec = self.spec
        key = f"{self.key_base}{random.randrange(spec.keyspace)}"
        if random.random() < spec.read_ratio:
            if self.client.get(key) is None:
                self.client.set(key, self.value, ex=spec.ttl_s)
        else:
            self.client.set(key, self.value, ex=spec.ttl_s)
