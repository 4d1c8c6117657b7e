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

import redis

from scenarios.client import RedisRequestFailed
from scenarios.run import IntegrityResult
from scenarios.user import RedisUser


class LedgerBook:
    """What one user wrote: every sequence number below ``next_seq`` was acknowledged unless in ``unacked``."""

    workload = "ledger"

    def __init__(self, key: str, value_bytes: int) -> None:
        self.key = key
        self.padding = "x" * value_bytes
        self.next_seq = 0
        self.unacked: set[int] = set()

    def entry(self, seq: int) -> str:
        return f"{seq}:{self.padding}"

    def record(self, seq: int, acknowledged: bool) -> None:
        if not acknowledged:
            self.unacked.add(seq)
        self.next_seq = seq + 1

    def verify(self, client: redis.Redis, chunk: int = 10_000) -> IntegrityResult:
        seen = bytearray(self.next_seq)  # occurrences per sequence number, capped at 255
        extra = 0  # entries at or past next_seq: a write cut off before it could be recorded
        duplicated = 0
        start = 0
        while True:
            entries = cast(list[bytes], client.lrange(self.key, start, start + chunk - 1))
            for raw in entries:
                seq = int(raw.split(b":", 1)[0])
                if seq >= self.next_seq:
                    extra += 1
                elif seen[seq] == 0:
                    seen[seq] = 1
                else:
                    duplicated += 1
                    seen[seq] = min(255, seen[seq] + 1)
            if len(entries) < chunk:
                break
            start += chunk
        acknowledged = self.next_seq - len(self.unacked)
        lost = sum(1 for seq in range(self.next_seq) if seen[seq] == 0 and seq not in self.unacked)
        applied = sum(1 for seq in self.unacked if seen[seq]) + extra
        return IntegrityResult(
            acknowledged=acknowledged, lost=lost, duplicated=duplicated, unacknowledged_applied=applied
        )


class LedgerUser(RedisUser):
    label = "ledger"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        spec = self.redis_run.profile.workload.mix.ledger
        self.book = LedgerBook(f"{self.redis_run.key_prefix}ledger:{self.user_key}", spec.value_bytes)
        self.redis_run.checks.append(self.book)

    @tag("ledger")
    @task
    def append(self) -> None:
        book = self.book
        seq = book.next_seq
        try:
            self.client.rpush(book.key, book.entry(seq))
        except RedisRequestFailed:
            book.record(seq, acknowledged=False)
            raise
        book.record(seq, acknowledged=True)
