"""Conformance on one redis-server: each case's script runs on a bare redis-py client, then through the
pack's client, each on a fresh server state (no keys, no pause, the server up), with the same fault at
the same offset from the command's start; every command's outcome, retries, reconnections and duration
(within 20 ms) must match.

A command is held in flight by a blocking BLPOP, or by a write pause (``CLIENT PAUSE ... WRITE``) under a
SET: under ``CLIENT PAUSE ... ALL`` the server postpones the admin's ``CLIENT KILL`` too, so a GET
cannot be killed while the server holds it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gevent
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.schema import ClientOptions
from targets.embedded import EmbeddedRedis

from ..helpers import pid_alive
from .sides import (
    COMBOS,
    Combo,
    Concurrently,
    Outcome,
    PackSide,
    Side,
    assert_same_run_again,
    bare_redis,
    sleep_until,
    without_gc_pauses,
)


@dataclass
class Env:
    """What a script acts on: the server and an admin connection of its own."""

    server: EmbeddedRedis
    admin: redis.Redis

    def ids_of(self, name: str) -> list[str]:
        return [str(c["id"]) for c in self.admin.client_list() if c.get("name") == name]

    def kill(self, ids: list[str]) -> None:
        for client_id in ids:
            self.admin.client_kill_filter(_id=client_id)


Script = Callable[[Side, Env], None]


def kill_idle(side: Side, env: Env) -> None:
    side.call("warm-up SET", "set", "k", "v")
    env.kill(env.ids_of(side.client_name))
    gevent.sleep(0.05)  # the client's socket has seen the close
    side.call("GET after its idle connection was killed", "get", "k")
    side.call("GET again", "get", "k")


def kill_in_flight_set(side: Side, env: Env) -> None:
    side.call("warm-up SET", "set", "k", "v")
    ids = env.ids_of(side.client_name)
    env.admin.client_pause(300, all=False)
    paused = time.monotonic()
    faults = Concurrently()
    faults.after(0.1, lambda: env.kill(ids))
    side.call("SET held by a 300 ms WRITE pause, its connection killed at 100 ms", "set", "k", "v2")
    faults.join()
    sleep_until(paused + 0.35)
    side.call("GET after the pause", "get", "k")


def kill_in_flight_blpop(side: Side, env: Env) -> None:
    side.call("warm-up SET", "set", "k", "v")
    ids = env.ids_of(side.client_name)
    faults = Concurrently()
    faults.after(0.1, lambda: env.kill(ids))
    side.call("BLPOP (0.4 s), its connection killed at 100 ms", "blpop", ["q"], 0.4)
    faults.join()
    side.call("GET after", "get", "k")


def pool_disconnect_in_flight(side: Side, env: Env) -> None:
    side.call("warm-up SET", "set", "k", "v")
    faults = Concurrently()
    faults.after(0.1, side.reset_pools)
    side.call("BLPOP (0.4 s), its pool disconnected at 100 ms", "blpop", ["q"], 0.4)
    faults.join()
    side.call("GET after", "get", "k")


def server_restart(side: Side, env: Env) -> None:
    side.call("warm-up SET", "set", "k", "v")
    env.server.kill(hard=True)
    down = time.monotonic()
    side.call("GET while the server is down", "get", "k")
    sleep_until(down + 1.0)
    env.server.restart()
    side.call("GET after the restart (1 s down)", "get", "k")
    side.call("GET again", "get", "k")


def pause_write(side: Side, env: Env) -> None:
    side.call("warm-up SET", "set", "k", "v")
    env.admin.client_pause(500, all=False)
    side.call("GET during a 500 ms WRITE pause", "get", "k")
    side.call("SET during the WRITE pause", "set", "k", "v2")
    side.call("GET after", "get", "k")


def pause_all(side: Side, env: Env) -> None:
    side.call("warm-up SET", "set", "k", "v")
    env.admin.client_pause(500, all=True)
    side.call("GET during a 500 ms ALL pause", "get", "k")
    side.call("GET after", "get", "k")


def socket_timeout(side: Side, env: Env) -> None:
    side.call("warm-up SET", "set", "k", "v")
    sleeper = redis.Redis(host=env.server.host, port=env.server.port, socket_timeout=5, retry=Retry(NoBackoff(), 0))
    began = time.monotonic()
    asleep = gevent.spawn(sleeper.execute_command, "DEBUG", "SLEEP", 0.5)
    gevent.sleep(0.02)  # the server is asleep when the GET arrives
    side.call("GET (socket timeout 0.2 s) 20 ms into a 0.5 s DEBUG SLEEP", "get", "k")
    asleep.join(5)
    assert asleep.successful(), asleep.exception
    sleeper.close()
    sleep_until(began + 0.6)
    side.call("GET after", "get", "k")


@dataclass(frozen=True)
class Case:
    name: str
    script: Script
    settings: dict[str, Any]

    def __str__(self) -> str:
        return self.name


CASES = [
    Case("client_kill-idle", kill_idle, {}),
    Case("client_kill-in_flight_set", kill_in_flight_set, {}),
    Case("client_kill-in_flight_blpop", kill_in_flight_blpop, {}),
    Case("pool_disconnect-in_flight_blpop", pool_disconnect_in_flight, {}),
    Case("server_restart-down_1s", server_restart, {}),
    Case("client_pause-500ms_write", pause_write, {}),
    Case("client_pause-500ms_all", pause_all, {}),
    Case("socket_timeout-0.2s_debug_sleep_0.5s", socket_timeout, {"socket_timeout_s": 0.2}),
]


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedRedis]:
    """One server for the module (on each xdist worker that runs its tests): every side leaves it fresh."""
    # DEBUG SLEEP; a timer tick every 2 ms (hz 500, as the pack's client_pause raises it to): a pause or a
    # BLPOP timeout ends on a tick, 100 ms late at worst at the default hz 10, which durations would show
    server = EmbeddedRedis(extra_args=("--enable-debug-command", "local", "--hz", "500")).start()
    try:
        yield server
    finally:
        pid = server.pid
        server.stop()
        assert pid is not None and not pid_alive(pid)


def run_side(make: Callable[[], Side], script: Script, server: EmbeddedRedis) -> Side:
    """``script`` on a side made by ``make``, on a fresh server state."""
    if not server.running:
        server.restart()
    admin = redis.Redis(
        host=server.host, port=server.port, client_name="cf-admin", socket_timeout=5, retry=Retry(NoBackoff(), 2)
    )
    admin.client_unpause()
    admin.delete("k", "q")
    side = make()
    try:
        with without_gc_pauses():
            script(side, Env(server, admin))
    finally:
        side.close()
        admin.client_unpause()
        admin.close()
    return side


@pytest.mark.parametrize("combo", COMBOS, ids=str)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_pack_reports_what_bare_redis_py_does(server: EmbeddedRedis, case: Case, combo: Combo) -> None:
    options: ClientOptions = combo.options(**case.settings)

    def both() -> tuple[list[Outcome], list[Outcome]]:
        bare = run_side(lambda: bare_redis(server.host, server.port, options, "cf-bare"), case.script, server)
        pack = run_side(lambda: PackSide(server.url, options, "cf-pack"), case.script, server)
        return bare.outcomes, pack.outcomes

    assert_same_run_again(both)
