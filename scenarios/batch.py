"""pipeline and transaction: batched commands, and MULTI/EXEC under WATCH.

A batch is one request in Locust's statistics (``PIPELINE pipeline``, ``EXEC transaction``);
its commands are counted in the workload's figures. The transaction moves one unit between
two accounts of this node, so the accounts always sum to 0: the check reports any imbalance
(a transaction applied in part).
"""

from __future__ import annotations

from locust import tag, task
from locust.env import Environment

import random

from pydantic import Field
from redis.exceptions import WatchError

from config.schema import WorkloadSettings
from scenarios.client import RedisRequestFailed
from scenarios.registry import register_workload
from scenarios.run import IntegrityResult, RedisClient
from scenarios.user import RedisUser

TRANSACTION_ATTEMPTS = 3


class BatchFigures:
    def __init__(self, accounts: list[str] | None = None) -> None:
        self.accounts = accounts or []
        self.batches = 0
        self.commands = 0
        self.failed_batches = 0
        self.conflicts = 0

    def verify(self, client: RedisClient) -> IntegrityResult:
        figures: dict[str, float] = {
            "batches": self.batches,
            "commands": self.commands,
            "failed_batches": self.failed_batches,
        }
        if self.accounts:
            figures["conflicts"] = self.conflicts
            figures["imbalance"] = abs(sum(int(v or 0) for v in client.mget(self.accounts)))
        return IntegrityResult(figures=figures)


class BatchWorkload(WorkloadSettings):
    keyspace: int = Field(1000, ge=1)
    batch_size: int = Field(10, ge=1, description="Commands per pipeline.")
    value_bytes: int = Field(64, ge=0)


@register_workload
class PipelineUser(RedisUser):
    Settings = BatchWorkload
    label = "pipeline"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.spec = self.settings(BatchWorkload)
        self.value = b"p" * self.spec.value_bytes
        self.figures = self.redis_run.check(self.label, BatchFigures)

    @tag("pipeline")
    @task
    def batch(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        for _ in range(self.spec.batch_size):
            key = self.key("pipeline", random.randrange(self.spec.keyspace))
            if random.random() < 0.5:
                pipe.get(key)
            else:
                pipe.set(key, self.value)
        self.figures.batches += 1
        self.figures.commands += self.spec.batch_size
        try:
            pipe.execute()
        except RedisRequestFailed:
            self.figures.failed_batches += 1
            raise


class TransactionWorkload(BatchWorkload):
    batch_size: int = Field(3, ge=1, description="Commands per MULTI/EXEC transaction.")


@register_workload
class TransactionUser(RedisUser):
    Settings = TransactionWorkload
    label = "transaction"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.spec = self.settings(TransactionWorkload)
        node = self.redis_run.node
        # One hash tag: a transaction WATCHes and moves units between two of these (one cluster slot).
        tag = f"transaction:{node}"
        accounts = [self.tagged_key(tag, "account", i) for i in range(max(2, self.spec.keyspace))]
        self.figures = self.redis_run.check(self.label, lambda: BatchFigures(accounts))

    @tag("transaction")
    @task
    def transfer(self) -> None:
        src, dst = random.sample(self.figures.accounts, 2)
        for _ in range(TRANSACTION_ATTEMPTS):
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(src, dst)
                    pipe.get(src)
                    pipe.multi()
                    pipe.decrby(src, 1)
                    pipe.incrby(dst, 1)
                    self.figures.batches += 1
                    self.figures.commands += 2
                    pipe.execute()
                    return
                except WatchError:
                    self.figures.conflicts += 1
                except RedisRequestFailed:
                    self.figures.failed_batches += 1
                    raise
