"""The witness (targets/witness.py): a probe process per node reports the server's own unavailability,
on a clock of its own, against a real redis-server that is paused, killed and restarted."""

from __future__ import annotations

import socket
import time

import gevent
import pytest
import redis

from targets.embedded import EmbeddedRedis
from targets.witness import Witness, WitnessError
from targets.witness_probe import command

from .helpers import eventually, pid_alive


def started(server: EmbeddedRedis) -> Witness:
    return Witness(server.host, server.port, "rr-test-witness").start()


def pings(admin: redis.Redis) -> int:
    """How many PINGs the server has answered (the witness's probes: the test's own clients send none)."""
    stats = admin.info("commandstats").get("cmdstat_ping", {})
    return int(stats.get("calls", 0))


def probed(admin: redis.Redis, times: int, since: int) -> None:
    """Wait (bounded) until the witness has probed ``times`` more than ``since``: what it saw meanwhile is reported."""
    eventually(f"the witness probed {times} times", lambda: pings(admin) >= since + times, 10)


def test_a_pause_is_an_outage_of_its_length_from_when_the_server_stopped_answering(
    redis_server: EmbeddedRedis, admin: redis.Redis
) -> None:
    witness = started(redis_server)
    try:
        assert "rr-test-witness" in {c.get("name") for c in admin.client_list()}
        before = time.monotonic()
        admin.client_pause(500, all=True)
        paused_at = time.monotonic()
        eventually("the witness reported the pause", lambda: bool(witness.gaps), 5)
        gap = witness.outage(before, before + 2)
        assert gap is not None
        assert 0.45 <= gap.seconds <= 0.62, gap  # the probe's period is 2 ms; its next PING waits out the pause
        assert before - 0.01 <= gap.start <= paused_at + 0.01, (before, gap, paused_at)
    finally:
        witness.stop()


def test_a_crash_and_restart_is_one_outage_until_the_server_answers_again(redis_server: EmbeddedRedis) -> None:
    witness = started(redis_server)
    try:
        killed_at = time.monotonic()
        redis_server.kill(hard=True)
        eventually("the witness saw the server go", lambda: witness.down_since is not None, 5)
        # the outage under test lasts 0.5 s: a length, not a wait for anything
        gevent.sleep(max(0.0, killed_at + 0.5 - time.monotonic()))
        redis_server.restart()
        answered_at = time.monotonic()
        eventually("the witness reported the restart", lambda: bool(witness.gaps), 5)
        gap = witness.outage(killed_at, killed_at + 5)
        assert gap is not None
        assert killed_at - 0.01 <= gap.start <= killed_at + 0.05, (killed_at, gap)
        assert 0.5 <= gap.seconds <= answered_at - killed_at + 0.1, (gap, answered_at - killed_at)
    finally:
        witness.stop()


def test_a_quiet_server_has_no_outage_and_stop_ends_the_probe(redis_server: EmbeddedRedis, admin: redis.Redis) -> None:
    witness = started(redis_server)
    process = witness.process
    assert process is not None
    start = time.monotonic()
    probed(admin, 400, pings(admin))  # about 1 s of probes, every one answered in time
    gap = witness.outage(start, time.monotonic())
    assert gap is None or gap.seconds < 0.2, gap  # a late reply of a busy machine at most, never an outage
    witness.stop()
    assert process.poll() is not None and not pid_alive(process.pid)
    witness.stop()  # twice: nothing happens


def test_a_node_that_does_not_answer_is_a_clear_error() -> None:
    # A port held bound but not listening: connections are refused, and no other test's server can take it
    # (a free_port() released here was once taken by another test's server before the witness connected).
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        witness = Witness("127.0.0.1", port, "rr-test-witness")
        t0 = time.monotonic()
        with pytest.raises(WitnessError, match=rf"the witness of 127\.0\.0\.1:{port} got no reply within 5s"):
            witness.start()
        assert time.monotonic() - t0 < 10
        assert witness.process is None


def test_commands_are_resp_arrays() -> None:
    assert command("CLIENT", "SETNAME", "rr-x") == b"*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$4\r\nrr-x\r\n"


@pytest.mark.parametrize("publish", [True, False])
def test_a_write_pause_is_an_outage_for_a_publishing_witness_only(
    redis_server: EmbeddedRedis, admin: redis.Redis, publish: bool
) -> None:
    witness = Witness(redis_server.host, redis_server.port, "rr-test-witness", publish=publish).start()
    try:
        assert witness.publish is publish
        before = time.monotonic()
        admin.client_pause(500, all=False)  # WRITE: a PING passes, a PUBLISH waits
        admin.set("rr-test-after-the-pause", 1)  # a write: held until the pause ends
        if publish:  # the PUBLISHes waited: a gap of the pause's length
            eventually("the witness reported the write pause", lambda: any(g.seconds > 0.3 for g in witness.gaps), 5)
            gap = witness.outage(before, time.monotonic())
            assert gap is not None and 0.45 <= gap.seconds <= 0.62, gap
        else:  # the PINGs passed: probes after the pause, and no gap of it reported
            probed(admin, 50, pings(admin))
            gap = witness.outage(before, time.monotonic())
            assert gap is None or gap.seconds < 0.2, gap
    finally:
        witness.stop()


def test_a_user_without_publish_is_watched_with_ping(redis_server: EmbeddedRedis, admin: redis.Redis) -> None:
    admin.acl_setuser("watcher", enabled=True, passwords=["+w-secret"], commands=["+ping", "+client", "+auth"])
    witness = Witness(redis_server.host, redis_server.port, "rr-test-witness", "watcher", "w-secret", publish=True)
    try:
        witness.start()
        assert witness.publish is False  # PUBLISH refused by the ACL: PING instead
        assert "rr-test-witness" in {c.get("name") for c in admin.client_list()}
    finally:
        witness.stop()


def test_an_outage_still_going_on_counts_until_the_window_ends(redis_server: EmbeddedRedis) -> None:
    witness = started(redis_server)
    try:
        killed_at = time.monotonic()
        redis_server.kill(hard=True)  # and not restarted: no GAP line will come, a DOWN line does
        eventually("the witness saw the server go", lambda: witness.down_since is not None, 5)
        now = time.monotonic()
        gap = witness.outage(killed_at, now)
        assert gap is not None and abs(gap.start - killed_at) <= 0.05 and gap.end == now, (killed_at, gap, now)
    finally:
        witness.stop()
        redis_server.restart()
