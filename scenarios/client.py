"""The instrumented Redis client: every command fires Locust's ``request`` event.

In the style of Locust's ``contrib/dns.py``: the client is handed the ``request`` event hook,
times each command with ``perf_counter``, catches only the errors a Redis call can raise, and
lets a task override the request name. On top, it counts what redis-py hides: retries (through
the backoff it sleeps by) and reconnections (through the connect hook every connection calls).

The client is stock redis-py (DESIGN.md rule 10): a ``redis.Redis`` over a ``redis.ConnectionPool``
(or a sentinel's pool) built from the profile's client keys as an application builds it, and
instrumented only through public surfaces: the ``Retry`` object's backoff, ``redis_connect_func``,
and a wrapper around the public ``execute_command`` and ``Pipeline.execute``. What it reports is
what the user's own client does; ``tests/conformance/`` proves it against a bare client.
"""

from __future__ import annotations

from locust.event import EventHook
from locust.exception import RescheduleTask

import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis.backoff import AbstractBackoff
from redis.client import Pipeline
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry

from config.schema import ClientOptions
from targets.access import Access
from targets.clients import REDIS_CALL_ERRORS, make_backoff, pool_from_url
from targets.parsers import parser_kwargs

# Answers an application handles as part of the protocol: not failures (see Measured.measure).
HANDLED_ERRORS: tuple[type[RedisError], ...] = (WatchError, NoScriptError)

# Commands that wait on the server by design: their latency is not degradation (only errors are).
BLOCKING_COMMANDS = frozenset(
    {
        "BLPOP",
        "BRPOP",
        "BLMOVE",
        "BRPOPLPUSH",
        "BLMPOP",
        "BZPOPMIN",
        "BZPOPMAX",
        "BZMPOP",
        "XREAD",
        "XREADGROUP",
        "WAIT",
        "WAITAOF",
    }
)


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

    __slots__ = ("__weakref__", "connections", "last_failure_at", "reconnections", "retries", "seen")

    def __init__(self) -> None:
        self.retries = 0
        self.connections = 0
        self.reconnections = 0
        self.last_failure_at = 0.0  # monotonic time of the last retried error
        self.seen: weakref.WeakSet[AbstractConnection] = weakref.WeakSet()

    def __deepcopy__(self, memo: dict[int, Any]) -> ConnectionProbe:
        return self

    def on_connect(self, connection: AbstractConnection) -> None:
        """redis-py's ``redis_connect_func``: count, then run the normal handshake."""
        self.count(connection)
        connection.on_connect()

    def count(self, connection: AbstractConnection) -> None:
        """Count a connection made (the cluster client calls this after its own handshake): the first
        connect of a connection object is a connection, every later one a reconnection."""
        if connection in self.seen:
            self.reconnections += 1
        else:
            self.seen.add(connection)
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


def retry_errors(options: ClientOptions) -> tuple[type[Exception], ...]:
    """The errors redis-py retries under the profile's settings."""
    errors: tuple[type[Exception], ...] = (RedisConnectionError,)
    if options.retry_on_timeout:
        errors += (RedisTimeoutError, TimeoutError)
    return errors


def make_pool(
    url: str, options: ClientOptions, client_name: str, probe: ConnectionProbe, access: Access | None = None
) -> redis.ConnectionPool:
    """redis-py's own connection pool (``redis.ConnectionPool``, ``redis.BlockingConnectionPool`` when the
    profile asks, or ``SentinelConnectionPool`` for a sentinel:// URL), built from the profile as an
    application builds it, retry settings always
    explicit; ``access``: its credentials and TLS.

    redis-py 8 retries by default when a client is built from host/port but not when it is
    built on an explicit pool, so the retry policy is passed here, never left to a default.
    """
    retry = Retry(
        CountingBackoff(make_backoff(options.backoff), probe), options.retries, supported_errors=retry_errors(options)
    )
    kwargs: dict[str, Any] = {
        "retry": retry,
        "socket_timeout": options.socket_timeout_s,
        "socket_connect_timeout": options.socket_connect_timeout_s,
        "socket_keepalive": options.socket_keepalive,
        "health_check_interval": options.health_check_interval_s,
        "client_name": client_name,
        "redis_connect_func": probe.on_connect,
        **parser_kwargs(options.parser),
    }
    if options.max_connections is not None:
        kwargs["max_connections"] = options.max_connections
    if options.maint_notifications != "auto":  # auto: redis-py's own default, left to it
        enabled = options.maint_notifications == "on"
        kwargs["maint_notifications_config"] = MaintNotificationsConfig(enabled=enabled)
    if options.pool == "blocking":
        return pool_from_url(url, access, blocking_timeout=options.pool_timeout_s, **kwargs)
    return pool_from_url(url, access, **kwargs)


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
    _kinds: dict[str, tuple[str, bool]]
    _name_override: str | None
    pipeline: Callable[..., Any]  # the client's own (redis-py's, measured)

    def instrument(self, request_event: EventHook, label: str, user_key: str | int, probe: ConnectionProbe) -> None:
        self.request_event = request_event
        self.label = label
        self.user_key = user_key
        self.probe = probe
        self._kinds = {}
        self._name_override = None

    @contextmanager
    def named(self, name: str) -> Iterator[None]:
        """Report the commands issued inside the block under ``name``."""
        previous, self._name_override = self._name_override, name
        try:
            yield
        finally:
            self._name_override = previous

    def kind(self, command: str) -> tuple[str, bool]:
        """A command's request name (``"GET cache"``) and whether it waits on the server by design (its
        latency is then not degradation), found once per command."""
        kind = self._kinds.get(command)
        if kind is None:
            kind = self._kinds[command] = (f"{command} {self.label}", str(command).upper() in BLOCKING_COMMANDS)
        return kind

    def request_name(self, command: str) -> str:
        return self._name_override or self.kind(command)[0]

    def batch(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """``commands`` (each a tuple such as ``("GET", key)``) in one round trip: redis-py's own
        non-transactional pipeline (on a cluster, a cluster pipeline, however many nodes its keys live on),
        one request (``PIPELINE <label>``) of ``len(commands)`` commands."""
        pipe = self.pipeline(transaction=False)
        for args in commands:
            pipe.execute_command(*args)
        result: list[Any] = pipe.execute()
        return result

    def measure_command(self, call: Any, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        """:meth:`measure` one command, ``args[0]`` its name."""
        command = args[0]
        name, blocking = self._kinds.get(command) or self.kind(command)
        return self.measure(self._name_override or name, 1, blocking, call, args, options)

    def measure(
        self, name: str, commands: int, blocking: bool, call: Any, args: tuple[Any, ...], options: dict[str, Any]
    ) -> Any:
        """Run ``call(*args, **options)``, fire one request for it, and raise :class:`RedisRequestFailed` if it failed.

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


class InstrumentedRedis(Measured, redis.Redis):
    """A ``redis.Redis`` whose every command fires ``request`` (type ``REDIS``, name ``"GET cache"``).

    ``single_connection``: redis-py's ``single_connection_client``, the profile's ``client.connection:
    dedicated`` (one connection held for the client's life, as a worker with a connection per thread).
    """

    def __init__(
        self,
        pool: redis.ConnectionPool,
        request_event: EventHook,
        label: str,
        user_key: str | int,
        probe: ConnectionProbe,
        single_connection: bool = False,
    ) -> None:
        super().__init__(connection_pool=pool, single_connection_client=single_connection)
        self.instrument(request_event, label, user_key, probe)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        return self.measure_command(super().execute_command, args, options)

    def execute_unmeasured(self, *args: Any, **options: Any) -> Any:
        """A set-up command, not traffic: no request event."""
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> InstrumentedPipeline:
        return InstrumentedPipeline.measuring(super().pipeline(transaction, shard_hint), self, transaction)


class InstrumentedPipeline(Pipeline):
    """redis-py's pipeline, whose ``execute()`` is one request (``PIPELINE <label>`` or ``EXEC <label>``).

    Commands run at once while watching (``WATCH``, reads before ``multi()``) are requests of
    their own, as they are round trips of their own. It is the very pipeline redis-py's
    ``pipeline()`` built, given this class (:meth:`measuring`): only the public ``execute`` and
    ``immediate_execute_command`` are wrapped.
    """

    owner: InstrumentedRedis
    atomic: bool

    @classmethod
    def measuring(cls, pipe: Pipeline, owner: InstrumentedRedis, atomic: bool) -> InstrumentedPipeline:
        pipe.__class__ = cls
        assert isinstance(pipe, cls)
        pipe.owner, pipe.atomic = owner, atomic
        return pipe

    def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        name = self.owner.request_name(str(args[0]))
        return self.owner.measure(name, 1, False, super().immediate_execute_command, args, options)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        commands = len(self.command_stack)
        name = self.owner.request_name("EXEC" if self.atomic or self.explicit_transaction else "PIPELINE")
        result: list[Any] = self.owner.measure(name, commands, False, super().execute, (raise_on_error,), {})
        return result
