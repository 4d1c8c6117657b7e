"""Secured servers for the TLS and ACL tests (a helper module, not a test module): certificates made
with the ``openssl`` CLI, a ``redis-server`` speaking TLS only, and a server with a password and ACL users."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from targets.embedded import EmbeddedRedis


@dataclass(frozen=True)
class Certs:
    """A CA, a server certificate (127.0.0.1 and localhost) and a client certificate it signed,
    and a second CA that signed nothing of these (a certificate does not verify against it)."""

    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(where: Path) -> Certs:
    """EC P-256 keys (quick to make), valid for two days."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the TLS tests need the openssl command (Debian: apt-get install -y openssl)")
    where.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "other-ca"):
        _openssl(
            "req",
            "-x509",
            *ec,
            "-keyout",
            f"{ca}.key",
            "-out",
            f"{ca}.crt",
            "-days",
            "2",
            "-subj",
            f"/CN=redis-resilience test {ca}",
            cwd=where,
        )
    (where / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (where / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=rr-test-{name}", cwd=where)
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "2",
            "-extfile",
            f"{name}.ext",
            cwd=where,
        )
    return Certs(
        dir=where,
        ca=where / "ca.crt",
        server_cert=where / "server.crt",
        server_key=where / "server.key",
        client_cert=where / "client.crt",
        client_key=where / "client.key",
        other_ca=where / "other-ca.crt",
    )


class TlsRedis(EmbeddedRedis):
    """A ``redis-server`` listening with TLS only (``--port 0 --tls-port``); with ``auth_clients``
    it also asks clients for a certificate signed by the test CA (``--tls-auth-clients yes``)."""

    def __init__(self, certs: Certs, auth_clients: bool = False) -> None:
        super().__init__()
        self.certs = certs
        self.auth_clients = auth_clients

    @property
    def url(self) -> str:
        return f"rediss://{self.host}:{self.port}/0"

    def config_args(self) -> list[str]:
        c = self.certs
        return [
            *super().config_args(),
            "--port",
            "0",  # the last --port wins: no plain TCP at all
            "--tls-port",
            str(self.port),
            "--tls-cert-file",
            str(c.server_cert),
            "--tls-key-file",
            str(c.server_key),
            "--tls-ca-cert-file",
            str(c.ca),
            "--tls-auth-clients",
            "yes" if self.auth_clients else "no",
        ]

    def client(self, **kwargs: object) -> redis.Redis:
        """A client of the test CA, with the client certificate, no retries."""
        c = self.certs
        return redis.Redis(
            host=self.host,
            port=self.port,
            ssl=True,
            ssl_ca_certs=str(c.ca),
            ssl_certfile=str(c.client_cert),
            ssl_keyfile=str(c.client_key),
            socket_timeout=2,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),
            **kwargs,  # type: ignore[arg-type]
        )

    def probe_client(self) -> redis.Redis:
        return self.client()


def secured(server: EmbeddedRedis, default_password: str, users: dict[str, list[str]]) -> redis.Redis:
    """Give the default user a password and create ACL ``users`` (name -> ACL SETUSER rules);
    returns a client authenticated as the default user."""
    with redis.Redis(host=server.host, port=server.port) as client:
        for name, rules in users.items():
            client.acl_setuser(name, reset=True)  # start from nothing, then the rules
            client.execute_command("ACL", "SETUSER", name, *rules)
        client.execute_command("ACL", "SETUSER", "default", "on", f">{default_password}")
    return redis.Redis(host=server.host, port=server.port, password=default_password)
