"""The pack's first connections to a target, at set-up, and one line saying why one failed.

Before any user spawns, the pack opens its admin connection (admin credentials) and a traffic
probe (the traffic credentials, named like the traffic), each pinged once, no hidden retries.
A failure becomes a :class:`ConnectError` whose message names the address tried (passwords
redacted), the role and ACL user, and the likely cause: a wrong password, a missing
``+client|setname``, TLS spoken to a plain port or plain TCP to a TLS port (told apart by a
harmless probe of the port), a certificate that does not verify. Nothing is written to the target.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError
from redis.retry import Retry

from config.redact import redact_secrets, redact_url
from targets.access import Access
from targets.clients import REDIS_CALL_ERRORS, RedisClient, cluster_admin, is_cluster_url, pool_from_url

CONNECT_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 1.0  # the port probes that tell TLS from plain TCP


class ConnectError(Exception):
    """A set-up connection failed. ``str()`` is the whole one-line message."""


def open_client(url: str, name: str, access: Access, role: str, retries: int = 0) -> RedisClient:
    """A client of ``url`` named ``name``, pinged once; ``role`` (``admin``, ``traffic``) is for errors.
    On a cluster, a cluster client (it reads and cleans up across every primary)."""
    client: RedisClient | None = None
    try:
        if is_cluster_url(url):
            client = cluster_admin(url, name, retries, CONNECT_TIMEOUT_S, access)
        else:
            pool = pool_from_url(
                url,
                access,
                client_name=name,
                socket_timeout=CONNECT_TIMEOUT_S,
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                retry=Retry(NoBackoff(), retries),
            )
            client = redis.Redis.from_pool(pool)  # closing the client closes its pool
        client.ping()
    except REDIS_CALL_ERRORS as exc:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        raise ConnectError(describe_failure(exc, url, access, role)) from None
    return client


def describe_failure(exc: BaseException, url: str, access: Access, role: str) -> str:
    """One line: what failed connecting to ``url``, and what to do about it."""
    where = redact_url(url)
    text = redact_secrets(str(exc), [access.password] if access.password else []).strip() or type(exc).__name__
    user = f"{role} connection, {access.who}"
    if isinstance(exc, AuthenticationError):
        if access.password is None:
            own = " (or target.admin, for a user of its own)" if role == "admin" else ""
            return (
                f"Redis at {where} wants a password and the {role} connection ({access.who}) has none: "
                f"name it with target.password_env or target.password_file{own}"
            )
        return f"Redis at {where} refused the {role} password ({access.who}): WRONGPASS {text}"
    if isinstance(exc, NoPermissionError):
        hint = ""
        if "client|setname" in text.lower():
            hint = (
                f": grant it CLIENT SETNAME alone (ACL SETUSER {access.username or 'default'} +client|setname), "
                "the pack names its connections to tell this run's apart"
            )
        return f"Redis at {where} refused a command on connecting ({user}): {text}{hint}"
    if isinstance(exc, ResponseError):
        return f"Redis at {where} answered an error on connecting ({user}): {text}"
    tls = url.startswith("rediss://") or access.tls is not None
    if tls and "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"the TLS certificate of {where} does not verify ({text}): give target.tls.ca_file the CA "
            "that signed it, or check the host name it was issued for"
        )
    address = _address(url)
    if address is not None:
        if tls and _speaks_plain_redis(*address):
            return f"Redis at {where} speaks plain TCP, not TLS, on that port: use a redis:// URL ({text})"
        if not tls and _speaks_tls(*address):
            return f"Redis at {where} speaks TLS on that port: use a rediss:// URL (and target.tls) ({text})"
    if tls and "ssl_certfile" not in dict(access.tls or ()) and _closed_early(text):
        return (
            f"Redis at {where} closed the TLS connection ({text}): if it asks for a client certificate "
            "(tls-auth-clients), give target.tls.cert_file and key_file"
        )
    return f"cannot reach Redis at {where} ({user}): {text}"


def _closed_early(text: str) -> bool:
    """A TLS connection the server dropped during or right after the handshake."""
    lowered = text.lower()
    return any(s in lowered for s in ("eof occurred", "certificate required", "connection reset", "closed by server"))


def _address(url: str) -> tuple[str, int] | None:
    """Host and port of a redis:// or rediss:// URL; None for the others (several hosts)."""
    if not url.startswith(("redis://", "rediss://")):
        return None
    try:
        parts = urlsplit(url)
        return parts.hostname or "127.0.0.1", parts.port or 6379
    except ValueError:
        return None


def _speaks_plain_redis(host: str, port: int) -> bool:
    """Whether the port answers a plain ``PING`` in RESP (``+PONG``, or an error such as NOAUTH)."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(1)[:1] in (b"+", b"-")
    return False


def _speaks_tls(host: str, port: int) -> bool:
    """Whether the port completes a TLS handshake (certificate not checked: only the protocol is)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        contextlib.suppress(OSError),
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S) as sock,
        context.wrap_socket(sock, server_hostname=host),
    ):
        return True
    return False
