"""ledger: sequence-numbered appends whose acknowledgements are remembered, then checked.

Each user appends ``<seq>:<padding>`` to its own list with RPUSH. A write is *acknowledged*
when RPUSH returned. At the end every acknowledged sequence number must be in the list exactly
once: missing ones are *lost*, repeated ones *duplicated* (a retry of a write the server had
already applied). Memory grows with failed writes only, never with acknowledged ones.
"""

from __future__ import annotations

from locust import tag, task
from locust.env import Environment

from typing import cast

from pydantic import Field

from config.schema import Weight, WorkloadSettings
from scenarios.acks import AckBook, tally
from scenarios.registry import register_workload
from scenarios.run import IntegrityResult, RedisClient
from scenarios.user import RedisUser


class LedgerBook(AckBook):
    """One user's list and what it appended to it."""

    def __init__(self, writer: str, key: str, value_bytes: int) -> None:
        super().__init__(writer)
        self.key = key
        self.padding = "x" * value_bytes

    def entry(self, seq: int) -> str:
        return f"{seq}:{self.padding}"

    def found(self, client: RedisClient, chunk: int = 10_000) -> tuple[dict[str, int], int]:
        """Occurrences of each item in the list, and entries past ``next_seq`` (cut off before recorded)."""
        counts: dict[str, int] = {}
        beyond = 0
        start = 0
        while True:
            entries = cast(list[bytes], client.lrange(self.key, start, start + chunk - 1))
            for raw in entries:
                seq = int(raw.split(b":", 1)[0])
                if seq >= self.next_seq:
                    beyond += 1
                else:
                    item = self.item(seq)
                    counts[item] = counts.get(item, 0) + 1
            if len(entries) < chunk:
                return counts, beyond
            start += chunk

    def verify(self, client: RedisClient, chunk: int = 10_000) -> IntegrityResult:
        counts, beyond = self.found(client, chunk)
        acknowledged, lost, duplicated, applied = tally([self], counts)
        return IntegrityResult(acknowledged, lost, duplicated, applied + beyond)


class LedgerCheck:
    """Every ledger user's book on this node."""

    def __init__(self) -> None:
        self.books: list[LedgerBook] = []

    def verify(self, client: RedisClient) -> IntegrityResult:
        result = IntegrityResult()
        for book in self.books:
            result.add(book.verify(client))
        return result


class LedgerWorkload(WorkloadSettings):
    weight: Weight = 1
    value_bytes: int = Field(64, ge=0)


@register_workload
class LedgerUser(RedisUser):
    Settings = LedgerWorkload
    label = "ledger"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        spec = self.settings(LedgerWorkload)
        self.book = LedgerBook(self.user_key, self.key("ledger", self.user_key), spec.value_bytes)
        self.redis_run.check(self.label, LedgerCheck).books.append(self.book)

    @tag("ledger")
    @task
    def append(self) -> None:
        with self.book.writing() as seq:
            self.client.rpush(self.book.key, self.book.entry(seq))
