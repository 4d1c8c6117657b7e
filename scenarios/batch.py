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

from config.schema import Rate, WorkloadSettings
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
    depth: int = Field(
        10, ge=1, le=10_000, description="Commands per pipeline: one round trip, one request in Locust's statistics."
    )
    read_ratio: Rate = Field(0.5, description="Share of the pipeline's commands that are GETs (the rest SETs).")
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
        self.key_prefix = self.key("pipeline", "")

    @tag("pipeline")
    @task
    def batch(self) -> None:
        spec, prefix, value = self.spec, self.key_prefix, self.value
        draw, keys = random.random, random.randrange
        commands = [
            ("GET", f"{prefix}{keys(spec.keyspace)}")
            if draw() < spec.read_ratio
            else ("SET", f"{prefix}{keys(spec.keyspace)}", value)
            for _ in range(spec.depth)
        ]
        self.figures.batches += 1
        self.figures.commands += spec.depth
        try:
            self.client.batch(commands)
        except RedisRequestFailed:
            self.figures.failed_batches += 1
            raise


class TransactionWorkload(WorkloadSettings):
    keyspace: int = Field(1000, ge=1, description="Accounts the transactions move units between.")
    batch_size: int = Field(3, ge=1, description="Commands per MULTI/EXEC transaction.")
    value_bytes: int = Field(64, ge=0)


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
