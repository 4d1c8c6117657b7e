"""lock: a distributed lock (SET NX PX with a token, released by a Lua compare-and-delete).

Inside the lock each holder does a read-modify-write (GET, hold, SET n+1) on the lock's counter
and counts its acknowledged increments. If mutual exclusion held, no increment is lost: the
*violations* are the increments the final counters fall short of (:func:`lock_violations`,
over the figures of every node: ``increments_acked`` adds up, ``counters_final_max`` is the
same reading on every node).
"""

from __future__ import annotations

from locust import tag, task
from locust.env import Environment

import contextlib
import random
import uuid

import gevent
from pydantic import Field

from config.schema import NonNegative, WorkloadSettings
from scenarios.client import RedisRequestFailed
from scenarios.registry import Gate, register_workload
from scenarios.run import IntegrityResult, RedisClient
from scenarios.scripts import COMPARE_AND_DELETE
from scenarios.user import RedisUser


def lock_violations(figures: dict[str, float]) -> int:
    return int(max(0, figures.get("increments_acked", 0) - figures.get("counters_final_max", 0)))


class LockCheck:
    def __init__(self, counters: list[str]) -> None:
        self.counters = counters
        self.acked = 0
        self.acquired = 0
        self.contended = 0

    def verify(self, client: RedisClient) -> IntegrityResult:
        final = sum(int(client.get(counter) or 0) for counter in self.counters)  # one slot each on a cluster
        return IntegrityResult(
            figures={
                "increments_acked": self.acked,
                "counters_final_max": final,
                "acquired": self.acquired,
                "contended": self.contended,
            }
        )


class LockWorkload(WorkloadSettings):
    locks: int = Field(4, ge=1, description="Distinct locks the users contend for.")
    ttl_ms: int = Field(2000, ge=1, description="Lock expiry (SET NX PX).")
    hold_ms: NonNegative = Field(5, description="Time spent inside the critical section.")


@register_workload
class LockUser(RedisUser):
    Settings = LockWorkload
    gates = (Gate("violations", "lock_violations", 0, "Critical sections two lock holders overlapped in."),)

    @staticmethod
    def derive_figures(figures: dict[str, float]) -> dict[str, float]:
        return {"violations": lock_violations(figures)}

    label = "lock"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.spec = self.settings(LockWorkload)
        # A lock and the counter it guards share a hash tag (one cluster slot).
        self.locks = [self.tagged_key(f"lock:{i}") for i in range(self.spec.locks)]
        counters = [self.tagged_key(f"lock:{i}", "counter") for i in range(self.spec.locks)]
        self.check = self.redis_run.check(self.label, lambda: LockCheck(counters))

    @tag("lock")
    @task
    def critical_section(self) -> None:
        i = random.randrange(len(self.locks))
        token = uuid.uuid4().hex
        if not self.client.set(self.locks[i], token, nx=True, px=self.spec.ttl_ms):
            self.check.contended += 1
            return
        self.check.acquired += 1
        try:
            counter = self.check.counters[i]
            value = int(self.client.get(counter) or 0)
            gevent.sleep(self.spec.hold_ms / 1000)
            self.client.set(counter, value + 1)
            self.check.acked += 1
        finally:
            with contextlib.suppress(RedisRequestFailed):  # else the lock expires after ttl_ms
                COMPARE_AND_DELETE.run(self.client, [self.locks[i]], [token])
