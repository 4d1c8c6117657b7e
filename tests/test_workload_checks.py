"""Each workload's integrity check against a real server: it counts right, and it catches breakage."""

from __future__ import annotations

import gevent
import pytest
import redis

from config.schema import ClientOptions
from scenarios.acks import AckBook
from scenarios.batch import BatchFigures
from scenarios.client import ConnectionProbe, InstrumentedRedis, RedisRequestFailed, make_pool
from scenarios.lock import LockCheck, lock_violations
from scenarios.pubsub import lost_messages
from scenarios.queue import QueueCheck
from scenarios.stream import StreamCheck
from targets.embedded import EmbeddedRedis

from .conditions import blocked_in
from .helpers import Recorder


def acked_book(writer: str, n: int) -> AckBook:
    book = AckBook(writer)
    for seq in range(n):
        book.record(seq, acknowledged=True)
    return book


def test_queue_check_counts_consumed_queued_lost_and_duplicated(admin: redis.Redis) -> None:
    check = QueueCheck("q:jobs", "q:processing:*", "q:consumed")
    book = acked_book("0-1", 4)
    check.books.append(book)
    admin.hincrby("q:consumed", book.item(0), 1)  # consumed
    admin.lpush("q:jobs", f"{book.item(1)}|pad")  # still queued
    admin.lpush("q:processing:0-2", f"{book.item(2)}|pad")  # in a consumer's hands
    admin.hincrby("q:consumed", book.item(3), 1)
    result = check.verify(admin)
    assert (result.acknowledged, result.lost, result.duplicated) == (4, 0, 0)
    assert result.figures == {"consumed_total": 2, "queued_total": 2}
    admin.delete("q:jobs")  # an acknowledged job vanished
    admin.hincrby("q:consumed", book.item(3), 1)  # and one was processed twice
    result = check.verify(admin)
    assert (result.lost, result.duplicated) == (1, 1)


def test_stream_check_finds_deleted_and_twice_processed_entries(admin: redis.Redis) -> None:
    check = StreamCheck("s", "s:processed")
    book = acked_book("0-1", 3)
    check.books.append(book)
    ids = [admin.xadd("s", {"item": book.item(seq)}) for seq in range(3)]
    admin.hincrby("s:processed", book.item(0), 1)
    result = check.verify(admin)
    assert (result.acknowledged, result.lost, result.duplicated) == (3, 0, 0)
    assert result.figures["unprocessed"] == 2
    admin.xdel("s", ids[2])
    admin.hincrby("s:processed", book.item(0), 1)
    result = check.verify(admin)
    assert (result.lost, result.duplicated, result.figures["processed_twice"]) == (1, 1, 1)


def test_lock_check_counts_lost_increments_as_violations(admin: redis.Redis) -> None:
    check = LockCheck(["l:0", "l:1"])
    check.acked = 7
    admin.set("l:0", 4)
    admin.set("l:1", 3)
    assert lock_violations(check.verify(admin).figures) == 0
    admin.set("l:1", 1)  # two holders overlapped: two increments overwritten
    assert lock_violations(check.verify(admin).figures) == 2


def test_transaction_check_reports_imbalance(admin: redis.Redis) -> None:
    check = BatchFigures(["a:0", "a:1"])
    admin.set("a:0", -3)
    admin.set("a:1", 3)
    assert check.verify(admin).figures["imbalance"] == 0
    admin.incr("a:1")  # half a transfer
    assert check.verify(admin).figures["imbalance"] == 1


def test_lost_messages_from_merged_figures() -> None:
    assert lost_messages({"deliveries_expected": 10, "received": 7}) == 3
    assert lost_messages({"deliveries_expected": 10, "received": 12}) == 0  # a failed PUBLISH still delivered


def client_for(server: EmbeddedRedis, recorder: Recorder, name: str, retries: int = 10) -> InstrumentedRedis:
    probe = ConnectionProbe()
    pool = make_pool(server.url, ClientOptions(retries=retries), name, probe)
    return InstrumentedRedis(pool, recorder.hook, "pipeline", 1, probe)


def test_a_reset_mid_batch_is_one_failed_request_of_all_its_commands(
    redis_server: EmbeddedRedis, admin: redis.Redis
) -> None:
    """With no retry, so that the closed socket's error reaches the application whatever the parser and
    redis-py version make of it (what each does with retries: tests/conformance/)."""
    recorder = Recorder()
    client = client_for(redis_server, recorder, "rr-t-9", retries=0)
    pipe = client.pipeline(transaction=False)
    pipe.set("k", "v")
    pipe.blpop(["never"], 10)
    pipe.get("k")
    runner = gevent.spawn(pipe.execute)
    blocked_in(admin, "blpop", "rr-t-9")  # the batch reached the server's BLPOP
    client.connection_pool.disconnect(inuse_connections=True)
    with gevent.Timeout(5):
        runner.join()
    assert isinstance(runner.exception, RedisRequestFailed)
    (request,) = recorder.requests
    assert request["name"] == "PIPELINE pipeline"
    assert request["context"]["commands"] == 3
    assert request["exception"] is not None


def test_a_watch_conflict_is_not_a_failure(redis_server: EmbeddedRedis, admin: redis.Redis) -> None:
    recorder = Recorder()
    client = client_for(redis_server, recorder, "rr-t-8")
    with client.pipeline() as pipe:
        pipe.watch("acct")
        pipe.get("acct")
        admin.incr("acct")  # someone else changes it
        pipe.multi()
        pipe.incr("acct")
        with pytest.raises(redis.WatchError):
            pipe.execute()
    names = [(r["name"], r["exception"]) for r in recorder.requests]
    assert names == [("WATCH pipeline", None), ("GET pipeline", None), ("EXEC pipeline", None)]
