"""cache: read-heavy cache-aside traffic, GET with a SET on miss, plain SETs, all with a TTL."""

from __future__ import annotations

from locust import tag, task
from locust.env import Environment

import random

from scenarios.user import RedisUser, skewed_index


class CacheUser(RedisUser):
    label = "cache"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        spec = self.redis_run.profile.workload.mix.cache
        self.spec = spec
        self.value = b"v" * spec.value_bytes

    @tag("cache")
    @task
    def read_or_write(self) -> None:
        spec = self.spec
        key = self.key("cache", skewed_index(spec.keyspace, spec.hot_key_skew))
        if random.random() < spec.read_ratio:
            if self.client.get(key) is None:
                self.client.set(key, self.value, ex=spec.ttl_s)
        else:
            self.client.set(key, self.value, ex=spec.ttl_s)
