"""The instrumented Redis client: every command fires Locust's ``request`` event.

In the style of Locust's ``contrib/dns.py``: the client is handed the ``request`` event hook,
times each command with ``perf_counter``, catches only the errors a Redis call can raise, and
lets a task override the request name. On top, it counts what redis-py hides: retries (through
the backoff it sleeps by) and reconnections (through the connect hook every connection calls).
"""

from __future__ import annotations

from locust.event import EventHook
from locust.exception import RescheduleTask

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

import redis
from redis._parsers.helpers import get_response_callbacks
from redis.backoff import (
    AbstractBackoff,
)
from redis.client import CaseInsensitiveDict, Pipeline
from redis.connection import HiredisRespSerializer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from config.schema import ClientOptions
from targets.access import Access
from targets.clients import REDIS_CALL_ERRORS, make_backoff, pool_from_url
from targets.pools import PARSERS, pool_classes, shared_dispatcher

pack_command: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command
except ImportError:  # redis-py packs in Python without it
    pack_command = None

# Bytes a connection reads at a time. redis-py's 65,536 is a buffer hiredis's parser allocates (and zeroes)
# per connection: 64 KiB of RSS per user, more than all the rest of one (issue 15, bench/throughput.py).
# The workloads' replies are a few KiB at most; a larger one is read in several reads.
READ_BUFFER_BYTES = 4_096

# Answers an application handles as part of the protocol: not failures (see InstrumentedRedis.measure).
HANDLED_ERRORS: tuple[type[RedisError], ...] = (WatchError, NoScriptError)

# Commands that wait on the server by design: their latency is not degradation (only errors are).
BLOCKING_COMMANDS = frozenset(
    {"BLPOP", "BRPOP", "BLMOVE", "BRPOPLPUSH", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP", "XREAD", "XREADGROUP",
     "WAIT", "WAITAOF"}
)  # fmt: skip


class RedisRequestFailed(RescheduleTask):
    """Raised by the instrumented client after it recorded a failed command.

    It is a :class:`locust.exception.RescheduleTask`: left uncaught, the user just moves on to
    its next task (the failure is already in Locust's stats). A task that needs to know, such as
    a write whose acknowledgement matters, catches it. ``cause`` is the original error.
    """

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class ConnectionProbe:
    """Counts what redis-py does out of sight, for one user's client. O(1) per event.

    One probe is shared by every connection of a pool: redis-py deep-copies ``Retry`` objects
    per connection, so the probe hands out itself on ``deepcopy``.
    """

    __slots__ = ("connections", "last_failure_at", "reconnections", "retries")

    def __init__(self) -> None:
        self.retries = 0
        self.connections = 0
        self.reconnections = 0
        self.last_failure_at = 0.0  # monotonic time of the last retried error

    def __deepcopy__(self, memo: dict[int, Any]) -> ConnectionProbe:
        return self

    def on_connect(self, connection: Any) -> None:
        """redis-py's ``redis_connect_func``: count, then run the normal handshake."""
        self.count(connection)
        connection.on_connect()

    def count(self, connection: Any) -> None:
        """Count a connection made (the cluster client calls this after its own handshake)."""
        if getattr(connection, "_rr_connected_before", False):
            self.reconnections += 1
        else:
            connection._rr_connected_before = True
            self.connections += 1


class CountingBackoff(AbstractBackoff):
    """Wraps a backoff; redis-py asks it for a delay exactly once per retry, so it counts them."""

    def __init__(self, inner: AbstractBackoff, probe: ConnectionProbe) -> None:
        self.inner = inner
        self.probe = probe

    def reset(self) -> None:
        self.inner.reset()

    def compute(self, failures: int) -> float:
        probe = self.probe
        probe.retries += 1
        probe.last_failure_at = time.monotonic()
        return self.inner.compute(failures)


def make_pool(
    url: str, options: ClientOptions, client_name: str, probe: ConnectionProbe, access: Access | None = None
) -> redis.ConnectionPool:
    """A connection pool built from the profile, retry settings always explicit; ``access``: its
    credentials and TLS. ``client.connection`` chooses the pool: checked out per command, or one
    connection the user holds (targets/pools.py).

    redis-py 8 retries by default when a client is built from host/port but not when it is
    built on an explicit pool, so the retry policy is passed here, never left to a default.
    """
    errors: tuple[type[Exception], ...] = (RedisConnectionError,)
    if options.retry_on_timeout:
        errors += (RedisTimeoutError, TimeoutError)
    retry = Retry(CountingBackoff(make_backoff(options.backoff), probe), options.retries, supported_errors=errors)
    kwargs: dict[str, Any] = {
        "retry": retry,
        "socket_timeout": options.socket_timeout_s,
        "socket_connect_timeout": options.socket_connect_timeout_s,
        "socket_keepalive": options.socket_keepalive,
        "health_check_interval": options.health_check_interval_s,
        "client_name": client_name,
        "redis_connect_func": probe.on_connect,
        "parser_class": PARSERS[options.parser],
        "socket_read_size": READ_BUFFER_BYTES,
        "event_dispatcher": shared_dispatcher(),
    }
    if options.max_connections is not None:
        kwargs["max_connections"] = options.max_connections
    return pool_from_url(url, access, pool_classes(options.connection == "dedicated"), **kwargs)


class Measured:
    """Request events for a client: what :class:`InstrumentedRedis` and the cluster client share.

    ``context`` of each request carries the user's key, the number of commands (a pipeline is
    one request of several commands) and the hidden retries and reconnections it needed, for
    the recovery tracker.
    """

    request_event: EventHook
    label: str
    user_key: str | int
    probe: ConnectionProbe
    _names: dict[str, str]
    _name_override: str | None

    def instrument(self, request_event: EventHook, label: str, user_key: str | int, probe: ConnectionProbe) -> None:
        self.request_event = request_event
        self.label = label
        self.user_key = user_key
        self.probe = probe
        self._names = {}
        self._name_override = None

    @contextmanager
    def named(self, name: str) -> Iterator[None]:
        """Report the commands issued inside the block under ``name``."""
        previous, self._name_override = self._name_override, name
        try:
            yield
        finally:
            self._name_override = previous

    def request_name(self, command: str) -> str:
        name = self._name_override or self._names.get(command)
        if name is None:
            name = self._names[command] = f"{command} {self.label}"
        return name

    def measure(self, name: str, commands: int, call: Any, *args: Any, blocking: bool = False, **options: Any) -> Any:
        """Run ``call``, fire one request for it, and raise :class:`RedisRequestFailed` if it failed.

        A ``WatchError`` (an optimistic transaction lost a race) or a ``NoScriptError`` (the
        script cache is empty: load, then call again) is the protocol working, not a failure:
        it is reported as a success and re-raised as is, for the task to handle.
        """
        probe = self.probe
        retries, reconnections = probe.retries, probe.reconnections
        start_time = time.time()
        start = time.perf_counter()
        exception: Exception | None = None
        try:
            result = call(*args, **options)
        except HANDLED_ERRORS:
            self._fire(name, start, start_time, None, commands, blocking, retries, reconnections)
            raise
        except REDIS_CALL_ERRORS as exc:
            exception = exc
        self._fire(name, start, start_time, exception, commands, blocking, retries, reconnections)
        if exception is not None:
            raise RedisRequestFailed(exception) from exception
        return result

    def _fire(
        self,
        name: str,
        start: float,
        start_time: float,
        exception: Exception | None,
        commands: int,
        blocking: bool,
        retries: int,
        reconnections: int,
    ) -> None:
        probe = self.probe
        self.request_event.fire(
            request_type="REDIS",
            name=name,
            response_time=(time.perf_counter() - start) * 1000,
            response_length=0,
            response=None,
            context={
                "user": self.user_key,
                "commands": commands,
                "blocking": blocking,
                "retries": probe.retries - retries,
                "reconnections": probe.reconnections - reconnections,
            },
            exception=exception,
            start_time=start_time,
        )


@cache
def shared_callbacks(protocol: Any, legacy_responses: bool) -> Any:
    """redis-py's reply callbacks for a protocol, one table for every client of the process (redis-py
    copies it into each client: 13 KiB a user). The pack never changes a client's callbacks."""
    return CaseInsensitiveDict(get_response_callbacks(user_protocol=protocol, legacy_responses=legacy_responses))  # type: ignore[arg-type]


class InstrumentedRedis(Measured, redis.Redis):
    """A ``redis.Redis`` whose every command fires ``request`` (type ``REDIS``, name ``"GET cache"``)."""

    def __init__(
        self,
        pool: redis.ConnectionPool,
        request_event: EventHook,
        label: str,
        user_key: str | int,
        probe: ConnectionProbe,
    ) -> None:
        super().__init__(connection_pool=pool, event_dispatcher=shared_dispatcher())
        kwargs = pool.connection_kwargs
        self.response_callbacks = shared_callbacks(kwargs.get("protocol"), kwargs.get("legacy_responses", True))
        self.instrument(request_event, label, user_key, probe)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        command = args[0]
        blocking = command in BLOCKING_COMMANDS
        return self.measure(self.request_name(command), 1, self._execute, args, options, blocking=blocking)

    def _execute(self, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        return self._on_connection(lambda conn: self._send_command_parse_response(conn, args[0], *args, **options))

    def _on_connection(self, do: Callable[[Any], Any]) -> Any:
        """``do(connection)`` as redis-py's ``Redis._execute_command`` runs a command (checkout, retry with
        backoff, disconnect on a retried error, release), without its OpenTelemetry records and closures,
        which nothing here reads."""
        pool = self.connection_pool
        conn = pool.get_connection()
        try:
            return conn.retry.call_with_retry(lambda: do(conn), lambda _error: conn.disconnect())
        finally:
            if conn.should_reconnect():
                conn.disconnect()
                conn.connect()
            pool.release(conn)

    def execute_unmeasured(self, *args: Any, **options: Any) -> Any:
        """A set-up command, not traffic: no request event."""
        return super().execute_command(*args, **options)

    def batch(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """``commands`` (each a tuple such as ``("GET", key)``) in one round trip, as a non-transactional
        pipeline sends them: one request (``PIPELINE <label>``) of ``len(commands)`` commands.

        Unlike :meth:`pipeline`, no ``Pipeline`` object and no per-command queueing or response
        callbacks: replies come back as the server sends them, in the connection's protocol (RESP3 by
        default: bytes, integers, ``None``, and maps, sets or doubles where a command answers so; a
        cluster's batch is a cluster pipeline, whose callbacks apply). This is
        how a load generator pipelines at scale (issue 15: 2.3-2.4x the commands per CPU-second of
        ``pipeline()`` at depth 16, ``bench/throughput.py``). Retried as redis-py retries a pipeline:
        on a connection error, disconnect and send the whole batch again. An error reply raises ``RedisRequestFailed``
        (as ``execute()`` would) once every reply is read.
        """
        replies: list[Any] = self.measure(self.request_name("PIPELINE"), len(commands), self._batch, commands)
        return replies

    def _batch(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        replies: list[Any] = self._on_connection(lambda conn: _round_trip(conn, commands))
        return replies

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> InstrumentedPipeline:
        return InstrumentedPipeline(self, transaction, shard_hint)


def _pack(conn: Any, commands: Sequence[tuple[Any, ...]]) -> Any:
    """``commands`` in the protocol, with hiredis's packer called directly where the connection uses it
    (redis-py's wrapper around it re-splits and re-tuples every command: 17% of a pipelining user's CPU).
    A command name of several words (``"CONFIG GET"``) is split, as redis-py's packer splits it."""
    if pack_command is not None and isinstance(conn._command_packer, HiredisRespSerializer):
        try:
            return b"".join([pack_command(_split_name(command)) for command in commands])
        except TypeError:
            pass  # an argument hiredis does not take (a bool, None): redis-py's packer says which
    return conn.pack_commands(commands)


def _split_name(command: tuple[Any, ...]) -> tuple[Any, ...]:
    name = command[0]
    several = (isinstance(name, str) and " " in name) or (isinstance(name, bytes) and b" " in name)
    return (*name.split(), *command[1:]) if several else command


def _round_trip(conn: Any, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Send ``commands`` packed together, read one reply each; the first error reply raised after all."""
    conn.send_packed_command(_pack(conn, commands))
    read = conn.read_response
    replies: list[Any] = []
    error: ResponseError | None = None
    for _ in commands:
        try:
            replies.append(read())
        except ResponseError as exc:
            error = error or exc
            replies.append(exc)
    if error is not None:
        raise error
    return replies


class InstrumentedPipeline(Pipeline):
    """A pipeline whose ``execute()`` is one request (``PIPELINE <label>`` or ``EXEC <label>``).

    Commands run at once while watching (``WATCH``, reads before ``multi()``) are requests of
    their own, as they are round trips of their own.
    """

    def __init__(self, client: InstrumentedRedis, transaction: bool, shard_hint: Any) -> None:
        super().__init__(client.connection_pool, client.response_callbacks, transaction, shard_hint)
        self.owner = client
        self.atomic = transaction

    def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        name = self.owner.request_name(str(args[0]))
        return self.owner.measure(name, 1, super().immediate_execute_command, *args, **options)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        commands = len(self.command_stack)
        name = self.owner.request_name("EXEC" if self.atomic or self.explicit_transaction else "PIPELINE")
        result: list[Any] = self.owner.measure(name, commands, super().execute, raise_on_error)
        return result
