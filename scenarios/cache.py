"""cache: read-heavy cache-aside traffic, GET with a SET on miss, plain SETs, all with a TTL."""

from __future__ import annotations

from locust import tag, task
from locust.env import Environment

import random

from pydantic import Field

from config.schema import Rate, Skew, Weight, WorkloadSettings
from scenarios.registry import register_workload
from scenarios.user import RedisUser, skewed_index


class CacheWorkload(WorkloadSettings):
    weight: Weight = 3
    keyspace: int = Field(10_000, ge=1, description="Distinct cache keys.")
    hot_key_skew: Skew = 0.0
    value_bytes: int = Field(256, ge=0)
    read_ratio: Rate = 0.9
    ttl_s: int = Field(300, ge=1)


@register_workload
class CacheUser(RedisUser):
    Settings = CacheWorkload
    label = "cache"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        spec = self.settings(CacheWorkload)
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
