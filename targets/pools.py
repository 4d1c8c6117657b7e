"""The traffic's connection pools: redis-py's, without the cost of what nobody reads, and a dedicated one.

Their connections send as redis-py does, but with one ``send`` per command instead of gevent's
``sendall``, which asks the kernel for the socket's send buffer size (a ``getsockopt`` system call)
before every write: 13% of a dedicated user's CPU in the profile (issue 15). What ``send`` leaves
unsent (a full send buffer) goes through ``sendall``.

Measured (issue 15, ``bench/throughput.py`` and py-spy): a checkout and release of redis-py 8's
``ConnectionPool`` records four OpenTelemetry connection counts, each naming the pool with a freshly
formatted string, and goes through a ``deprecated_args`` wrapper; without an observability
provider configured (the pack configures none) those records measure nothing. :class:`LeanPool`
checks out and releases as redis-py does (lock, the check at checkout, whose closed socket is
reconnected, the released-connection event for re-authentication) without them, nor the fork check.
(redis-py 8's check reconnects a connection the server closed; its "Connection has data" branch is off
while maintenance notifications are on, the RESP3 default: LeanPool keeps that as it is.)

:class:`DedicatedPool` is one connection per user, held for the user's life, as a worker process
with a connection per thread holds one: no checkout, no lock, no check (nobody else used the
connection; redis-py disconnects one whose command was interrupted, but for a sentinel-managed
connection after a timeout, there as in its pools). Commands and pipelines get that connection
while it is free; a caller that asks while it is held (a pipeline under WATCH, a subscription) gets
another, checked out as :class:`LeanPool` does. The retry, backoff and reconnection are redis-py's
own, as they are in the pooled mode.
"""

from __future__ import annotations

import socket
import ssl
from functools import cache
from typing import TYPE_CHECKING, Any

import redis
from redis._parsers import _HiredisParser, _RESP2Parser
from redis._parsers.socket import SERVER_CLOSED_CONNECTION_ERROR
from redis.event import AfterConnectionReleasedEvent, EventDispatcher
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.sentinel import SentinelConnectionPool

if TYPE_CHECKING:
    _Connection = redis.connection.AbstractConnection
else:
    _Connection = object  # a mixin: the connection class it is mixed into comes next in the MRO


class LeanConnection(_Connection):
    """redis-py's connection with a one-``send`` write and, under hiredis, a cheaper check for unread data
    (a mixin for any connection class: plain, TLS, Unix socket, sentinel-managed)."""

    def can_read(self, timeout: float = 0) -> bool:
        """What hiredis's parser answers, for the pool's check at every checkout (timeout 0): data the
        reader holds, or data on the socket; a socket the server closed raises ConnectionError. It asks
        with one non-blocking ``recv(MSG_PEEK)`` instead of building a ``select.poll`` (under gevent, an
        emulation that cost 11% of a pipelining user's CPU and 25% of a pooled one's: issue 15)."""
        parser, sock = self._parser, self._sock
        if timeout != 0 or sock is None or not isinstance(parser, _HiredisParser) or isinstance(sock, ssl.SSLSocket):
            return bool(super().can_read(timeout))
        if not parser._reader:
            raise RedisConnectionError(SERVER_CLOSED_CONNECTION_ERROR)
        if parser._reader.has_data():
            return True
        previous = sock.gettimeout()
        sock.settimeout(0)
        try:
            peeked = sock.recv(1, socket.MSG_PEEK)
        except (TimeoutError, BlockingIOError):
            return False
        except OSError as e:
            self.disconnect()
            raise RedisConnectionError(f"Error while reading from {self._host_error()}: {e.args}") from e
        finally:
            if self._sock is sock:  # not after disconnect() closed it: a closed socket's settimeout raises
                sock.settimeout(previous)
        if not peeked:
            raise RedisConnectionError(SERVER_CLOSED_CONNECTION_ERROR)
        return True

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:
            self.connect_check_health(check_health=False)
        if check_health:
            self.check_health()
        try:
            sock: Any = self._sock
            items: list[Any] = [command] if isinstance(command, str | bytes) else command
            for item in items:
                sent = sock.send(item)
                if sent < len(item):
                    sock.sendall(memoryview(item)[sent:])
        except TimeoutError:
            self.disconnect()
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as e:
            self.disconnect()
            errno, message = ("UNKNOWN", e.args[0]) if len(e.args) == 1 else (e.args[0], e.args[1])
            raise RedisConnectionError(f"Error {errno} while writing to socket. {message}.") from e
        except BaseException:
            self.disconnect()  # a write cut short leaves the connection unusable, as in redis-py
            raise


# The reply parser a profile names (redis-py picks hiredis's when it is installed, its own otherwise; the
# pack always says which, so a report does not depend on what happens to be installed). _RESP2Parser is
# redis-py's Python parser: a RESP3 connection makes it its RESP3 sibling.
PARSERS: dict[str, type[Any]] = {"hiredis": _HiredisParser, "python": _RESP2Parser}


@cache
def lean_connection_class(base: type[Any]) -> type[Any]:
    """``base`` with :class:`LeanConnection`'s write and check (one class per base, made once)."""
    if issubclass(base, LeanConnection):
        return base
    return type(f"Lean{base.__name__}", (LeanConnection, base), {"__module__": __name__})


class LeanConnections(redis.ConnectionPool):
    """A pool whose connections are of its connection class with :class:`LeanConnection`'s write and check."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connection_class = lean_connection_class(self.connection_class)


class LeanPool(LeanConnections):
    """redis-py's checkout and release, minus its observability records and its fork check (a mixin for
    any pool class). The fork check (``os.getpid()``, a system call, twice a command: 8% of a pipelining
    user's CPU) guards a pool made before a fork; the pack's pools are made by their user, in the
    process it runs in (Locust forks its ``--processes`` before any user spawns)."""

    def get_connection(self, command_name: Any = None, *keys: Any, **options: Any) -> Any:
        with self._lock:
            try:
                connection = self._available_connections.pop()
            except IndexError:
                connection = self.make_connection()
            self._in_use_connections.add(connection)
        try:
            connection.connect()
            try:  # a connection with unread data, or closed by the server: reconnect (as redis-py does)
                if connection.can_read() and self.cache is None and not self.maint_notifications_enabled():
                    raise RedisConnectionError("Connection has data")
            except (RedisConnectionError, RedisTimeoutError, OSError):
                connection.disconnect()
                connection.connect()
                if connection.can_read() and self.cache is None and not self.maint_notifications_enabled():
                    raise RedisConnectionError("Connection not ready") from None
        except BaseException:
            self.release(connection)
            raise
        return connection

    def release(self, connection: Any) -> None:
        with self._lock:
            try:
                self._in_use_connections.remove(connection)
            except KeyError:
                return
            if self.owns_connection(connection):
                if connection.should_reconnect():
                    connection.disconnect()
                self._available_connections.append(connection)
                self._event_dispatcher.dispatch(AfterConnectionReleasedEvent(connection))  # type: ignore[union-attr]
            else:
                connection.disconnect()
                if connection.pid == self.pid:
                    self._created_connections -= 1


class DedicatedPool(LeanPool):
    """One connection, made at first use, handed without a checkout to whoever asks while it is free:
    a single user (one greenlet) never has two commands in flight. Counted as in use: its user holds
    it. A caller that asks while it is held gets another connection, as :class:`LeanPool` checks them
    out (a mixin too)."""

    _dedicated: Any
    _held: bool

    def reset(self) -> None:
        self._dedicated = None
        self._held = False
        super().reset()

    def get_connection(self, command_name: Any = None, *keys: Any, **options: Any) -> Any:
        connection = self._dedicated
        if connection is None:
            with self._lock:
                connection = self._dedicated = self.make_connection()
                self._in_use_connections.add(connection)
        elif self._held:  # a pipeline under WATCH or a subscription has it: another connection
            return super().get_connection()
        self._held = True
        try:
            connection.connect()  # returns at once when connected; else connects (the probe counts a reconnection)
        except BaseException:
            self._held = False
            raise
        return connection

    def release(self, connection: Any) -> None:
        """The dedicated connection: free again, disconnected where redis-py's release would drop it (marked
        for reconnection, or no longer the pool's: for a sentinel pool, not the primary it last found)."""
        if connection is not self._dedicated:
            super().release(connection)
            return
        self._held = False
        if connection.should_reconnect() or not self.owns_connection(connection):
            connection.disconnect()


class LeanSentinelPool(LeanPool, SentinelConnectionPool):
    """The lean checkout on a pool that follows a sentinel's primary."""


class DedicatedSentinelPool(DedicatedPool, SentinelConnectionPool):
    """The dedicated connection on a pool that follows a sentinel's primary (it reconnects to the new
    primary after a failover, as the pooled connections do)."""


@cache
def shared_dispatcher() -> EventDispatcher:
    """One redis-py event dispatcher for every traffic client, pool and connection of the process. redis-py
    makes one for each (three a user, each with its six listeners and a lock: 6 KiB of RSS). Its listeners
    re-authenticate with a streaming credential provider (Entra ID tokens), which the pack does not use;
    without one they act on nothing and keep at most the last event seen."""
    return EventDispatcher()


def pool_classes(dedicated: bool) -> tuple[type[redis.ConnectionPool], type[SentinelConnectionPool]]:
    """The pool class for a redis:// URL and for a sentinel:// one."""
    if dedicated:
        return DedicatedPool, DedicatedSentinelPool
    return LeanPool, LeanSentinelPool
