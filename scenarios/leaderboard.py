"""leaderboard: a sorted set scored with ZINCRBY and read with ZREVRANGE WITHSCORES and ZRANK."""

from __future__ import annotations

from locust import tag, task
from locust.env import Environment

import random

from pydantic import Field

from config.schema import Skew, WorkloadSettings
from scenarios.registry import register_workload
from scenarios.user import RedisUser, skewed_index


class LeaderboardWorkload(WorkloadSettings):
    members: int = Field(1000, ge=1)
    hot_key_skew: Skew = 1.0
    top_n: int = Field(10, ge=1)


@register_workload
class LeaderboardUser(RedisUser):
    Settings = LeaderboardWorkload
    label = "leaderboard"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.spec = self.settings(LeaderboardWorkload)
        self.board = self.key("leaderboard")

    def member(self) -> str:
        return f"player:{skewed_index(self.spec.members, self.spec.hot_key_skew)}"

    @tag("leaderboard")
    @task(3)
    def score(self) -> None:
        self.client.zincrby(self.board, random.randint(1, 10), self.member())

    @tag("leaderboard")
    @task(2)
    def top(self) -> None:
        self.client.zrevrange(self.board, 0, self.spec.top_n - 1, withscores=True)

    @tag("leaderboard")
    @task(1)
    def rank(self) -> None:
        self.client.zrank(self.board, self.member())
