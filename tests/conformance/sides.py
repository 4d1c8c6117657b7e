"""The two sides of a conformance case: a bare redis-py client built as an application builds it from the
profile's client settings (no pack code at all), and the pack's traffic client built from the same
settings. Each side runs the same script of commands and records one :class:`Outcome` per command;
:func:`assert_same` compares them outcome by outcome.

What each side counts, and how:

- retries: bare, a backoff composed around redis-py's ``ConstantBackoff`` whose ``compute`` counts (redis-py
  asks its backoff once per retry); pack, the ``retries`` of the command's request event;
- reconnections: bare, a ``redis_connect_func`` that counts, then runs redis-py's handshake
  (``connection.on_connect()``); a connection object's first connect is not counted; pack, the event's
  ``reconnections``;
- duration: bare, ``perf_counter`` around the call; pack, the event's ``response_time``.

Both sides back off by the same constant (10 ms), so that their durations compare.
"""

from __future__ import annotations

from locust.event import EventHook

import gc
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import gevent
import redis
from redis._parsers import _RESP2Parser  # redis-py's Python parser: what an application passes for it
from redis.backoff import AbstractBackoff, ConstantBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import AbstractConnection
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from config.schema import Backoff, ClientOptions
from scenarios.client import ConnectionProbe, RedisRequestFailed
from scenarios.traffic_client import traffic_client  # the one maker of a user's client, whatever the target

BACKOFF_S = 0.01
DURATION_TOLERANCE_MS = 20.0
SLEEP_SLACK_MS = 3.0  # per backoff sleep in the command: a busy gevent hub may end each a few ms late, on either side
# How far from its offset a scripted fault may run: well inside the command it hits (100 ms into 300-400 ms);
# a busy 2-core hub runs a timer 10 ms late at times.
OFFSET_TOLERANCE_S = 0.025
DEFAULT_RETRIES = ClientOptions().retries  # redis-py's own default, as the profile's


@dataclass(frozen=True)
class Combo:
    """One set of client settings a case runs with."""

    parser: str
    retries: int
    connection: str

    def __str__(self) -> str:
        return f"{self.parser}-retries{self.retries}-{self.connection}"

    def options(self, **overrides: Any) -> ClientOptions:
        return ClientOptions.model_validate(
            {
                "retries": self.retries,
                "backoff": Backoff(kind="constant", base_s=BACKOFF_S),
                "parser": self.parser,
                "connection": self.connection,
                **overrides,
            }
        )


COMBOS = [
    Combo(parser, retries, connection)
    for parser in ("hiredis", "python")
    for retries in (DEFAULT_RETRIES, 0)
    for connection in ("pooled", "dedicated")
]


@dataclass(frozen=True)
class Outcome:
    """What one command did, as one side saw it."""

    step: str
    result: Any  # the reply (None when it raised)
    error: str | None  # the exception's class (the pack's: its ``cause``), None when it answered
    message: str
    retries: int
    reconnections: int
    ms: float

    def line(self) -> str:
        what = f"raised {self.error}({self.message!r})" if self.error else f"-> {self.result!r}"
        return f"{what}, retries {self.retries}, reconnections {self.reconnections}, {self.ms:.0f} ms"


def error_name(exc: BaseException) -> str:
    kind = type(exc)
    return f"{kind.__module__}.{kind.__qualname__}"


# ---- the bare side ---------------------------------------------------------------------------------


class Counter:
    """What the bare side counts. redis-py deep-copies its ``Retry`` (backoff included) into every
    connection: the counter stays one object."""

    def __init__(self) -> None:
        self.retries = 0
        self.reconnections = 0
        self.seen: weakref.WeakSet[AbstractConnection] = weakref.WeakSet()

    def __deepcopy__(self, memo: dict[int, Any]) -> Counter:
        return self

    def count(self, connection: AbstractConnection) -> None:
        """A connection made: its first connect is a connection, every later one a reconnection."""
        if connection in self.seen:
            self.reconnections += 1
        else:
            self.seen.add(connection)

    def connect(self, connection: AbstractConnection) -> None:
        """``redis_connect_func``: count, then redis-py's own handshake."""
        self.count(connection)
        connection.on_connect()


class CountedBackoff(AbstractBackoff):
    """redis-py's backoff, asked once per retry: counts the retries."""

    def __init__(self, inner: AbstractBackoff, counter: Counter) -> None:
        self.inner = inner
        self.counter = counter

    def reset(self) -> None:
        self.inner.reset()

    def compute(self, failures: int) -> float:
        self.counter.retries += 1
        return self.inner.compute(failures)


def bare_settings(options: ClientOptions, client_name: str, counter: Counter) -> dict[str, Any]:
    """The keyword arguments an application passes redis-py for these settings."""
    assert options.backoff.kind == "constant" and options.retry_on_timeout  # Retry's default errors retry timeouts
    settings: dict[str, Any] = {
        "retry": Retry(CountedBackoff(ConstantBackoff(options.backoff.base_s), counter), options.retries),
        "socket_timeout": options.socket_timeout_s,
        "socket_connect_timeout": options.socket_connect_timeout_s,
        "socket_keepalive": options.socket_keepalive,
        "health_check_interval": options.health_check_interval_s,
        "client_name": client_name,
        "redis_connect_func": counter.connect,
    }
    if options.parser == "python":
        settings["parser_class"] = _RESP2Parser
    return settings


class Side:
    """One client running a script: ``call`` records an :class:`Outcome` per command."""

    kind = ""

    def __init__(self, client_name: str) -> None:
        self.client_name = client_name
        self.outcomes: list[Outcome] = []

    def call(self, step: str, method: str, *args: Any) -> Outcome:
        outcome = self._call(step, method, args)
        self.outcomes.append(outcome)
        return outcome

    def _call(self, step: str, method: str, args: tuple[Any, ...]) -> Outcome:
        raise NotImplementedError

    def reset_pools(self) -> None:
        """Disconnect every pool of the client, in-use connections included (an application's reset)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class BareSide(Side):
    kind = "bare"

    def __init__(self, client: redis.Redis | RedisCluster, counter: Counter, client_name: str) -> None:
        super().__init__(client_name)
        self.client = client
        self.counter = counter

    def _call(self, step: str, method: str, args: tuple[Any, ...]) -> Outcome:
        counter = self.counter
        retries, reconnections = counter.retries, counter.reconnections
        result: Any = None
        error: BaseException | None = None
        start = time.perf_counter()
        try:
            result = getattr(self.client, method)(*args)
        except Exception as exc:
            error = exc
        ms = (time.perf_counter() - start) * 1000
        return Outcome(
            step,
            result,
            error and error_name(error),
            str(error or ""),
            counter.retries - retries,
            counter.reconnections - reconnections,
            ms,
        )

    def reset_pools(self) -> None:
        client = self.client
        if isinstance(client, RedisCluster):
            for node in client.get_nodes():
                if node.redis_connection is not None:
                    node.redis_connection.connection_pool.disconnect(inuse_connections=True)
        else:
            client.connection_pool.disconnect(inuse_connections=True)

    def close(self) -> None:
        self.client.close()


def bare_redis(host: str, port: int, options: ClientOptions, client_name: str) -> BareSide:
    """``redis.Redis(host=..., port=..., ...)``; for the python parser, over a ``redis.ConnectionPool`` given
    ``parser_class`` (``redis.Redis`` itself takes no parser: a pool is how an application chooses one)."""
    counter = Counter()
    settings = bare_settings(options, client_name, counter)
    dedicated = options.connection == "dedicated"
    if "parser_class" in settings:
        pool = redis.ConnectionPool(host=host, port=port, **settings)
        client = redis.Redis(connection_pool=pool, single_connection_client=dedicated)
    else:
        client = redis.Redis(host=host, port=port, single_connection_client=dedicated, **settings)
    return BareSide(client, counter, client_name)


def bare_sentinel(sentinels: list[tuple[str, int]], service: str, options: ClientOptions, client_name: str) -> BareSide:
    """redis-py's Sentinel client: ``master_for`` (pooled), or a ``SentinelConnectionPool`` under a
    single-connection client (dedicated: ``master_for`` has no such switch)."""
    counter = Counter()
    timeouts = {"socket_timeout": options.socket_timeout_s, "socket_connect_timeout": options.socket_connect_timeout_s}
    sentinel = Sentinel(sentinels, sentinel_kwargs=timeouts)
    settings = bare_settings(options, client_name, counter)
    if options.connection == "dedicated":
        pool = SentinelConnectionPool(service, sentinel, **settings)
        client = redis.Redis(connection_pool=pool, single_connection_client=True)
    else:
        client = sentinel.master_for(service, **settings)
    return BareSide(client, counter, client_name)


def bare_cluster(nodes: list[tuple[str, int]], options: ClientOptions, client_name: str) -> BareSide:
    """redis-py's ``RedisCluster``. It runs its own handshake (the client name, READONLY) in the callback
    it gives each node's connections, then calls the application's ``redis_connect_func``: the bare
    callback only counts."""
    counter = Counter()
    settings = bare_settings(options, client_name, counter)
    settings.pop("health_check_interval")  # not a setting RedisCluster hands its nodes
    settings.pop("parser_class", None)
    settings["redis_connect_func"] = counter.count
    client = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes], **settings)
    return BareSide(client, counter, client_name)


# ---- the pack's side --------------------------------------------------------------------------------


class PackSide(Side):
    kind = "pack"

    def __init__(self, url: str, options: ClientOptions, client_name: str) -> None:
        super().__init__(client_name)
        self.events: list[dict[str, Any]] = []
        hook = EventHook()
        hook.add_listener(lambda **kw: self.events.append(kw))
        self.client, self.pools = traffic_client(url, options, client_name, ConnectionProbe(), hook, "conf", 0)

    def _call(self, step: str, method: str, args: tuple[Any, ...]) -> Outcome:
        before = len(self.events)
        result: Any = None
        error: BaseException | None = None
        try:
            result = getattr(self.client, method)(*args)
        except RedisRequestFailed as failed:
            error = failed.cause
        except Exception as exc:  # not caught by the pack: no request event (the comparison says so)
            error = exc
        fired = self.events[before:]
        if len(fired) != 1:
            return Outcome(step, result, "no single request event", f"{len(fired)} events", -1, -1, -1.0)
        event = fired[0]
        assert (event["exception"] is None) == (error is None), (event["exception"], error)
        context = event["context"]
        return Outcome(
            step,
            result,
            error and error_name(error),
            str(error or ""),
            context["retries"],
            context["reconnections"],
            event["response_time"],
        )

    def reset_pools(self) -> None:
        self.pools.disconnect(inuse_connections=True)

    def close(self) -> None:
        self.client.close()


# ---- scripting and comparing ------------------------------------------------------------------------


@dataclass
class Concurrently:
    """Faults at an offset from a command's start (greenlets started now), joined by :meth:`join`, which
    checks that each ran at its offset (within :data:`OFFSET_TOLERANCE_S`)."""

    greenlets: list[gevent.Greenlet] = field(default_factory=list)
    late_s: list[float] = field(default_factory=list)

    def after(self, delay_s: float, action: Callable[[], Any]) -> None:
        # gevent's loop keeps the time of its last turn: after a stretch without yielding (a collection,
        # a blocking set-up call) a timer set from it would fire early by that much
        gevent.get_hub().loop.update_now()
        start = time.monotonic()

        def run() -> None:
            self.late_s.append(time.monotonic() - start - delay_s)
            action()

        self.greenlets.append(gevent.spawn_later(delay_s, run))

    def join(self, timeout_s: float = 10.0) -> None:
        gevent.joinall(self.greenlets, timeout=timeout_s, raise_error=True)
        assert all(g.dead for g in self.greenlets), "a fault did not finish"
        assert all(abs(late) <= OFFSET_TOLERANCE_S for late in self.late_s), (
            f"a fault ran off its offset: {self.late_s}"
        )


@contextmanager
def without_gc_pauses() -> Iterator[None]:
    """No garbage collection while a script runs: a full collection in this process (Locust, gevent, pydantic
    loaded) takes ~50 ms, enough to push one side's command past the 20 ms tolerance wherever it lands."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def sleep_until(deadline: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``deadline``."""
    gevent.sleep(max(0.0, deadline - time.monotonic()))


def mismatches(b: Outcome, p: Outcome) -> list[str]:
    """What differs between one step's two outcomes: outcome, retries, reconnections, duration."""
    what = []
    if b.error != p.error or (b.error is None and b.result != p.result):
        what.append("outcome")
    if b.retries != p.retries:
        what.append("retries")
    if b.reconnections != p.reconnections:
        what.append("reconnections")
    if abs(b.ms - p.ms) > DURATION_TOLERANCE_MS + SLEEP_SLACK_MS * max(b.retries, p.retries):
        what.append("duration")
    return what


def differences(bare: list[Outcome], pack: list[Outcome]) -> list[str]:
    if [o.step for o in bare] != [o.step for o in pack]:
        return [f"different steps: bare {[o.step for o in bare]}, pack {[o.step for o in pack]}"]
    found = []
    for b, p in zip(bare, pack, strict=True):
        if what := mismatches(b, p):
            found.append(f"{b.step}: {', '.join(what)} differ\n    bare: {b.line()}\n    pack: {p.line()}")
    return found


def durations_only(bare: list[Outcome], pack: list[Outcome]) -> bool:
    """Whether the two sides differ in a duration at most (the same steps, outcomes, retries, reconnections)."""
    return [o.step for o in bare] == [o.step for o in pack] and all(
        mismatches(b, p) in ([], ["duration"]) for b, p in zip(bare, pack, strict=True)
    )


def assert_same_run_again(run: Callable[[], tuple[list[Outcome], list[Outcome]]], tries: int = 3) -> None:
    """:func:`assert_same` on ``run()``'s two sides; while they differ in a duration only, both run again, up to
    ``tries`` times in all. A busy machine may stall either side once (a 31 ms stall was seen beside the suite's
    heavy runs); a duration the pack adds differs every time, and a different outcome fails at once."""
    for _ in range(tries - 1):
        bare, pack = run()
        if not differences(bare, pack) or not durations_only(bare, pack):
            break
    else:
        bare, pack = run()
    assert_same(bare, pack)


def table(bare: list[Outcome], pack: list[Outcome]) -> str:
    lines = []
    for b, p in zip(bare, pack, strict=False):
        lines.append(f"  {b.step}\n    bare: {b.line()}\n    pack: {p.line()}")
    return "\n".join(lines)


def assert_same(bare: list[Outcome], pack: list[Outcome]) -> None:
    """The pack reports what the bare client did, outcome by outcome (durations within 20 ms, plus 3 ms for each
    backoff sleep, which a busy hub may end late on either side)."""
    found = differences(bare, pack)
    assert not found, (
        "the pack differs from bare redis-py:\n" + "\n".join(found) + "\nevery step:\n" + table(bare, pack)
    )
