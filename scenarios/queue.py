"""queue: producers LPUSH jobs, consumers take them with BLMOVE (reliable) or BRPOP, then record them.

The check: every acknowledged push is consumed exactly once, or still queued at the end (in
the queue, or in a consumer's processing list). A blocking pop interrupted by a reset is the
classic hidden failure: with BRPOP a job popped on the server whose reply was lost is gone;
with BLMOVE it waits in the processing list.
"""

from __future__ import annotations

from locust import tag, task
from locust.env import Environment

from typing import cast

from pydantic import Field

from config.schema import Positive, WorkloadSettings
from scenarios.acks import AckBook, tally
from scenarios.registry import register_workload
from scenarios.run import IntegrityResult, RedisClient
from scenarios.user import RedisUser


def job_id(job: bytes | str) -> str:
    raw = job if isinstance(job, bytes) else job.encode()
    return raw.split(b"|", 1)[0].decode()


def read_list(client: RedisClient, key: str, counts: dict[str, int], chunk: int = 10_000) -> int:
    start = total = 0
    while True:
        jobs = cast(list[bytes], client.lrange(key, start, start + chunk - 1))
        for job in jobs:
            item = job_id(job)
            counts[item] = counts.get(item, 0) + 1
        total += len(jobs)
        if len(jobs) < chunk:
            return total
        start += chunk


class QueueCheck:
    def __init__(self, jobs: str, processing_pattern: str, consumed: str) -> None:
        self.jobs = jobs
        self.processing_pattern = processing_pattern
        self.consumed = consumed
        self.books: list[AckBook] = []

    def verify(self, client: RedisClient) -> IntegrityResult:
        counts: dict[str, int] = {}
        for item, n in cast(dict[bytes, bytes], client.hgetall(self.consumed)).items():
            counts[item.decode()] = int(n)
        consumed = sum(counts.values())
        queued = read_list(client, self.jobs, counts)
        for key in client.scan_iter(match=self.processing_pattern, count=500):
            queued += read_list(client, key.decode(), counts)
        acknowledged, lost, duplicated, applied = tally(self.books, counts)
        return IntegrityResult(
            acknowledged, lost, duplicated, applied, figures={"consumed_total": consumed, "queued_total": queued}
        )


class QueueWorkload(WorkloadSettings):
    reliable: bool = Field(
        True, description="BLMOVE to a processing list (reliable queue); false: BRPOP, which can lose a job."
    )
    value_bytes: int = Field(64, ge=0)
    block_s: Positive = Field(0.5, description="How long a consumer blocks waiting for a job.")


@register_workload
class QueueUser(RedisUser):
    Settings = QueueWorkload
    label = "queue"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.spec = self.settings(QueueWorkload)
        # One hash tag: BLMOVE moves a job between two of these keys (one cluster slot).
        self.jobs = self.tagged_key("queue", "jobs")
        self.processing = self.tagged_key("queue", "processing", self.user_key)
        self.consumed = self.tagged_key("queue", "consumed")
        self.padding = "j" * self.spec.value_bytes
        self.book = AckBook(self.user_key)
        check = self.redis_run.check(
            self.label, lambda: QueueCheck(self.jobs, self.tagged_key("queue", "processing", "*"), self.consumed)
        )
        check.books.append(self.book)

    @tag("queue")
    @task
    def produce(self) -> None:
        with self.book.writing() as seq:
            self.client.lpush(self.jobs, f"{self.book.item(seq)}|{self.padding}")

    @tag("queue")
    @task
    def consume(self) -> None:
        if self.spec.reliable:
            job = self.client.blmove(self.jobs, self.processing, self.spec.block_s, "RIGHT", "LEFT")  # type: ignore[arg-type]
            if job is not None:
                self.client.hincrby(self.consumed, job_id(job), 1)
                self.client.lrem(self.processing, 1, job)  # type: ignore[arg-type]
        else:
            popped = self.client.brpop([self.jobs], self.spec.block_s)
            if popped is not None:
                self.client.hincrby(self.consumed, job_id(popped[1]), 1)
