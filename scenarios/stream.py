"""stream: XADD producers, a consumer group reading with XREADGROUP and acknowledging with XACK.

Entries left pending by a reset (delivered, never acknowledged) are reclaimed with XAUTOCLAIM
once idle for ``claim_idle_ms``. The check: every acknowledged XADD is in the stream, and was
processed by a consumer at most once (more is *duplicated*: at-least-once delivery showing);
entries not yet processed at the end are counted, not lost.
"""

from __future__ import annotations

from locust import tag, task
from locust.env import Environment

from typing import Any, cast

import redis
from pydantic import Field
from redis.exceptions import ResponseError

from config.schema import WorkloadSettings
from scenarios.acks import AckBook, tally
from scenarios.registry import register_workload
from scenarios.run import IntegrityResult, RedisClient
from scenarios.user import RedisUser

GROUP = "rr"
CLAIM_EVERY = 20  # consume calls between two XAUTOCLAIM sweeps


class StreamCheck:
    def __init__(self, stream: str, processed: str) -> None:
        self.stream = stream
        self.processed = processed
        self.books: list[AckBook] = []
        self.reclaimed = 0

    def verify(self, client: RedisClient, chunk: int = 10_000) -> IntegrityResult:
        present: dict[str, int] = {}
        start = "-"
        while True:
            entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(self.stream, start, "+", count=chunk))
            for _, fields in entries:
                item = fields[b"item"].decode()
                present[item] = present.get(item, 0) + 1
            if len(entries) < chunk:
                break
            start = "(" + entries[-1][0].decode()
        processed = {k.decode(): int(v) for k, v in cast(dict[bytes, bytes], client.hgetall(self.processed)).items()}
        acknowledged, lost, appended_twice, applied = tally(self.books, present)
        own = {book.item(seq) for book in self.books for seq in book.acknowledged_seqs()}
        processed_twice = sum(n - 1 for item, n in processed.items() if item in own and n > 1)
        unprocessed = sum(1 for item in own if item in present and processed.get(item, 0) == 0)
        return IntegrityResult(
            acknowledged,
            lost,
            appended_twice + processed_twice,
            applied,
            figures={"unprocessed": unprocessed, "processed_twice": processed_twice, "reclaimed": self.reclaimed},
        )


class StreamWorkload(WorkloadSettings):
    value_bytes: int = Field(64, ge=0)
    batch: int = Field(10, ge=1, description="Entries read per XREADGROUP.")
    block_ms: int = Field(500, ge=1)
    claim_idle_ms: int = Field(2000, ge=1, description="Pending entries idle this long are reclaimed (XAUTOCLAIM).")


@register_workload
class StreamUser(RedisUser):
    Settings = StreamWorkload
    label = "stream"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.spec = self.settings(StreamWorkload)
        self.stream = self.key("stream", "events")
        self.processed = self.key("stream", "processed")
        self.consumer = f"c-{self.user_key}"
        self.padding = "e" * self.spec.value_bytes
        self.book = AckBook(self.user_key)
        self.check = self.redis_run.check(self.label, lambda: StreamCheck(self.stream, self.processed))
        self.check.books.append(self.book)
        self.reads = 0

    def on_start(self) -> None:
        # Set-up, not traffic: bypass the instrumentation (BUSYGROUP just means another user was first).
        try:
            self.client.execute_unmeasured("XGROUP", "CREATE", self.stream, GROUP, "0", "MKSTREAM")
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        except (redis.RedisError, OSError):
            pass  # a fault at start-up: the first XREADGROUP will tell

    @tag("stream")
    @task
    def produce(self) -> None:
        with self.book.writing() as seq:
            self.client.xadd(self.stream, {"item": self.book.item(seq), "v": self.padding})

    @tag("stream")
    @task
    def consume(self) -> None:
        self.reads += 1
        if self.reads % CLAIM_EVERY == 0:
            claimed = self.client.xautoclaim(
                self.stream, GROUP, self.consumer, self.spec.claim_idle_ms, "0-0", count=self.spec.batch
            )
            entries = claimed[1]  # [next start id, entries, deleted ids]
            self.check.reclaimed += len(entries)
            self.process(entries)
        replies = self.client.xreadgroup(
            GROUP, self.consumer, {self.stream: ">"}, count=self.spec.batch, block=self.spec.block_ms
        )
        for _stream, read in cast(list[tuple[bytes, list[Any]]], replies or []):
            self.process(read)

    def process(self, entries: list[Any]) -> None:
        for entry_id, fields in entries:
            if fields:  # an entry deleted meanwhile comes back empty
                self.client.hincrby(self.processed, fields[b"item"], 1)
            self.client.xack(self.stream, GROUP, entry_id)
