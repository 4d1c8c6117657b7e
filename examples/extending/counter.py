"""counter: users add to shared counters (INCRBY) and count what the server acknowledged.

A workload of your own, outside the pack: one module, registered by its decorator line. Its
settings are profile keys under ``workload.mix.counter``; its end-of-run check reads the counters
back, and ``lost_increments`` becomes a report figure and an SLO (``slo.max_lost_increments``).
"""

from __future__ import annotations

from locust import task
from locust.env import Environment

import random

from pydantic import Field

from config.schema import WorkloadSettings
from scenarios.registry import Gate, register_workload
from scenarios.run import IntegrityResult, RedisClient
from scenarios.user import RedisUser


class CounterSettings(WorkloadSettings):
    counters: int = Field(8, ge=1, description="Distinct counters the users add to.")
    step: int = Field(1, ge=1, description="What each INCRBY adds.")


class CounterCheck:
    """This node's acknowledged increments; ``verify`` reads the counters' final values."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.acknowledged = 0

    def verify(self, client: RedisClient) -> IntegrityResult:
        final = sum(int(client.get(key) or 0) for key in self.keys)
        # "_max": the same reading on every node, merged by max; the others add up across nodes.
        return IntegrityResult(figures={"added_acked": self.acknowledged, "final_total_max": final})


@register_workload
class CounterUser(RedisUser):
    label = "counter"
    Settings = CounterSettings
    gates = (Gate("lost_increments", "lost_increments", 0, "Acknowledged increments missing from the counters."),)

    @staticmethod
    def derive_figures(figures: dict[str, float]) -> dict[str, float]:
        return {"lost_increments": max(0, int(figures.get("added_acked", 0) - figures.get("final_total_max", 0)))}

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.spec = self.settings(CounterSettings)
        keys = [self.key("counter", i) for i in range(self.spec.counters)]
        self.check = self.redis_run.check(self.label, lambda: CounterCheck(keys))

    @task
    def add(self) -> None:
        self.client.incrby(random.choice(self.check.keys), self.spec.step)
        self.check.acknowledged += self.spec.step  # reached only when the server acknowledged it
