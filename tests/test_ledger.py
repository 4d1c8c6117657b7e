"""The ledger's integrity check, and the run's key cleanup, against a real redis-server."""

from __future__ import annotations

import redis

from chaos.profile import parse_profile
from scenarios.ledger import LedgerBook
from scenarios.run import PackRun


def written_book(admin: redis.Redis, n: int = 100, unacked: tuple[int, ...] = ()) -> LedgerBook:
    book = LedgerBook("0-0", "rr:t:ledger:0-0", value_bytes=8)
    for seq in range(n):
        if seq not in unacked:
            admin.rpush(book.key, book.entry(seq))
        book.record(seq, acknowledged=seq not in unacked)
    return book


def test_all_acknowledged_writes_present(admin: redis.Redis) -> None:
    book = written_book(admin)
    result = book.verify(admin)
    assert (result.acknowledged, result.lost, result.duplicated, result.unacknowledged_applied) == (100, 0, 0, 0)


def test_deleted_acknowledged_write_is_lost(admin: redis.Redis) -> None:
    book = written_book(admin)
    admin.lrem(book.key, 1, book.entry(42))
    assert book.verify(admin).lost == 1


def test_duplicated_write_is_counted(admin: redis.Redis) -> None:
    book = written_book(admin)
    admin.rpush(book.key, book.entry(7))  # as a retried RPUSH the server had already applied
    result = book.verify(admin)
    assert (result.lost, result.duplicated) == (0, 1)


def test_unacknowledged_writes_are_not_lost(admin: redis.Redis) -> None:
    book = written_book(admin, unacked=(3, 4))
    admin.rpush(book.key, book.entry(4))  # failed from the client's view, applied on the server
    admin.rpush(book.key, book.entry(100))  # cut off before it could be recorded
    result = book.verify(admin)
    assert (result.acknowledged, result.lost, result.unacknowledged_applied) == (98, 0, 2)


def test_verify_reads_long_lists_in_chunks(admin: redis.Redis) -> None:
    book = written_book(admin, n=2500)
    admin.lrem(book.key, 1, book.entry(2499))
    assert book.verify(admin, chunk=1000).lost == 1


def test_cleanup_removes_only_the_run_prefix(admin: redis.Redis) -> None:
    run = PackRun(parse_profile({}, "test"), "redis://unused", "abc")
    for i in range(1200):
        admin.set(f"{run.key_prefix}cache:{i}", "v")
    admin.set("rr:other-run:cache:1", "keep")
    admin.set("app:session:1", "keep")
    assert run.cleanup_keys(admin) == 1200
    assert sorted(admin.keys("*")) == [b"app:session:1", b"rr:other-run:cache:1"]
