"""What the profile's ``target`` resolves to at set-up: who connects (traffic and admin credentials)
and how (TLS), as redis-py keyword arguments.

Secrets are read here, from the environment variables or files the profile names (or, opted in,
from the profile itself), and live only in :class:`Access` objects, whose ``repr`` hides them.
A URL's own credentials (``--redis-url redis://user:pw@host``) win over the profile's traffic
credentials, as they do in redis-py; the admin connection uses ``target.admin`` when given, else
the traffic credentials.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from config.redact import redact_url
from config.target import Credentials, Target, Tls

SCHEMES = ("redis://", "rediss://", "sentinel://", "cluster://")
EMBEDDED = ("embedded", "embedded-sentinel", "embedded-cluster")


class AccessError(Exception):
    """The target's access settings cannot be used. ``str()`` is the whole one-line message."""


@dataclass(frozen=True)
class Access:
    """Credentials and TLS for one kind of connection (traffic or admin). Never printed whole.

    :param tls: redis-py ``ssl_*`` keyword arguments; ``None``: plain TCP unless the URL is
        ``rediss://`` (which then uses redis-py's defaults: the system's CAs, full verification)
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: tuple[tuple[str, Any], ...] | None = None

    @property
    def who(self) -> str:
        return f"user {self.username!r}" if self.username else "the default user"

    def kwargs(self, url: str) -> dict[str, Any]:
        """redis-py keyword arguments for a client of ``url`` (without the URL's own credentials)."""
        kwargs: dict[str, Any] = {}
        if self.username is not None:
            kwargs["username"] = self.username
        if self.password is not None:
            kwargs["password"] = self.password
        if self.tls is not None:
            kwargs.update(self.tls)
            if not url.startswith("rediss://"):  # the rediss:// scheme itself picks redis-py's SSL connection
                kwargs["ssl"] = True
        return kwargs

    def tls_only(self) -> Access:
        """The same TLS without credentials (a sentinel's own connections)."""
        return Access(tls=self.tls)


def scheme_error(url: str, source: str) -> str | None:
    """Why ``url`` is no target URL the pack knows, or None."""
    if url in EMBEDDED or url.startswith(SCHEMES):
        return None
    scheme = url.partition("://")[0] if "://" in url else ""
    got = f"unknown URL scheme {scheme + '://'!r}" if scheme else "not a URL"
    return (
        f"{source}: {got} in {redact_url(url)!r}: expected redis://, rediss://, sentinel:// or cluster:// "
        "(or embedded, embedded-sentinel, embedded-cluster)"
    )


def _split(url: str) -> tuple[str, str, str]:
    """``scheme://``, the netloc, the rest (read without urllib, which rejects some hosts)."""
    scheme, sep, rest = url.partition("://")
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    return scheme + sep, netloc, rest[len(netloc) :]


def url_credentials(url: str) -> tuple[str | None, str | None] | None:
    """The username and password a URL carries, or None when it carries none."""
    userinfo, at, _ = _split(url)[1].rpartition("@")
    if not at:
        return None
    user, colon, password = userinfo.partition(":")
    return unquote(user) or None, unquote(password) if colon else None


def without_credentials(url: str) -> str:
    """``url`` with its userinfo (``user:password@``) removed."""
    scheme, netloc, rest = _split(url)
    return f"{scheme}{netloc.rpartition('@')[2]}{rest}"


def admin_url(url: str, target: Target) -> str:
    """The URL the admin connection uses: ``url``, without its own credentials when ``target.admin``
    names others (a URL's credentials would win over them)."""
    return url if target.admin is None else without_credentials(url)


def _password(creds: Target | Credentials, key: str) -> str | None:
    """The password ``creds`` name (``key``: where they sit, for errors), read now."""
    if creds.password_env is not None:
        value = os.environ.get(creds.password_env)
        if value is None:
            raise AccessError(f"{key}password_env: the environment variable {creds.password_env} is not set")
        return value
    if creds.password_file is not None:
        try:
            text = Path(creds.password_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise AccessError(f"{key}password_file: cannot read {creds.password_file}: {exc.strerror}") from None
        return text.rstrip("\r\n")
    return creds.password


def _tls_kwargs(tls: Tls | None) -> tuple[tuple[str, Any], ...]:
    if tls is None:
        return ()
    kwargs: dict[str, Any] = {"ssl_cert_reqs": tls.verify, "ssl_check_hostname": tls.check_hostname}
    if tls.verify == "none":
        kwargs["ssl_check_hostname"] = False
    if tls.ca_file is not None:
        kwargs["ssl_ca_certs"] = tls.ca_file
    if tls.cert_file is not None:
        kwargs["ssl_certfile"] = tls.cert_file
    if tls.key_file is not None:
        kwargs["ssl_keyfile"] = tls.key_file
    return tuple(sorted(kwargs.items()))


def resolve_access(target: Target, url: str, source: str) -> tuple[Access, Access]:
    """The traffic and admin :class:`Access` for ``url`` (the effective target, ``--redis-url``
    included). Raises :class:`AccessError`: unset variables, unreadable files, TLS settings the
    URL cannot use."""
    credentials_given = (
        target.username is not None
        or target.password_env is not None
        or target.password_file is not None
        or target.password is not None
        or target.admin is not None
    )
    if url in EMBEDDED:
        if target.tls is not None or credentials_given:
            raise AccessError(
                f"{source}: target.tls and target credentials apply to a server of yours (a redis://, rediss://, "
                f"sentinel:// or cluster:// URL), not to the {url} servers the pack starts"
            )
        return Access(), Access()
    tls: tuple[tuple[str, Any], ...] | None = None
    if url.startswith("rediss://"):
        tls = _tls_kwargs(target.tls)
    elif target.tls is not None:
        if url.startswith("redis://"):
            raise AccessError(
                f"{source}: target.tls is set but the target {redact_url(url)} is plain TCP: "
                "use a rediss:// URL, or remove target.tls"
            )
        tls = _tls_kwargs(target.tls)  # sentinel://, cluster://: no scheme of their own says TLS
    in_url = url_credentials(url)
    if in_url is not None:
        traffic = Access(in_url[0], in_url[1], tls)
    else:
        traffic = Access(target.username, _password(target, f"{source}: target."), tls)
    admin = traffic
    if target.admin is not None:
        admin = Access(target.admin.username, _password(target.admin, f"{source}: target.admin."), tls)
    return traffic, admin
