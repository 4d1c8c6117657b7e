"""TLS targets: real ``redis-server`` processes listening with TLS only, certificates made by ``openssl``."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.sentinel import SentinelManagedSSLConnection

from chaos.profile import load_profile
from config.loader import ProfileError
from scenarios.client import ConnectionProbe
from scenarios.cluster import cluster_kwargs
from targets.access import Access
from targets.clients import pool_from_url
from targets.embedded import EmbeddedRedis

from .helpers import finish, headless_args, locust, refused_at_setup, target_state, write_profile
from .secured_servers import Certs, TlsRedis, make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def tls_server(certs: Certs) -> Iterator[TlsRedis]:
    server = TlsRedis(certs).start()
    yield server
    server.stop()


@pytest.fixture
def mtls_server(certs: Certs) -> Iterator[TlsRedis]:
    server = TlsRedis(certs, auth_clients=True).start()
    yield server
    server.stop()


def test_a_headless_run_over_tls_with_a_client_certificate_passes(
    tmp_path: Path, certs: Certs, mtls_server: TlsRedis
) -> None:
    """Traffic, admin (client_kill, checks, clean-up) and the set-up probes all speak TLS with the
    client certificate: the server has no plain port and asks every client for a certificate.
    The profile names its files relative to its own directory."""
    for f in (certs.ca, certs.client_cert, certs.client_key):
        shutil.copy(f, tmp_path / f.name)
    profile = write_profile(
        tmp_path / "tls.yaml",
        {
            "target": {
                "url": mtls_server.url,
                "tls": {"ca_file": "ca.crt", "cert_file": "client.crt", "key_file": "client.key"},
            }
        },
    )
    report_path = tmp_path / "report.json"
    proc = locust(
        headless_args(10, "10s", "--resilience-profile", str(profile), "--resilience-report", str(report_path))
    )
    out = finish(proc, timeout=60)
    assert proc.returncode == 0, out[-4000:]
    report = json.loads(report_path.read_text())
    assert report["summary"]["requests"] > 100 and report["summary"]["lost_writes"] == 0
    assert len(report["faults"]) >= 1 and all(f["ok"] for f in report["faults"])
    assert all(f["outage_s"] is not None and f["witness_nodes"] for f in report["faults"])  # the witness, over mTLS
    with mtls_server.client() as client:
        assert client.dbsize() == 0  # the admin's clean-up reached the server over TLS too


def test_tls_files_are_checked_at_load_naming_the_key(tmp_path: Path, certs: Certs) -> None:
    profile = write_profile(
        tmp_path / "p.yaml",
        {
            "target": {
                "url": "rediss://127.0.0.1:6380/0",
                "tls": {"ca_file": str(certs.ca), "cert_file": "missing.crt"},
            }
        },
    )
    with pytest.raises(ProfileError) as err:
        load_profile(profile)
    assert str(err.value) == f"{profile}: target.tls.cert_file: no such file: {tmp_path / 'missing.crt'}"
    profile = write_profile(
        tmp_path / "p.yaml",
        {
            "target": {
                "url": "rediss://127.0.0.1:6380/0",
                "tls": {"key_file": str(certs.client_key)},
            }
        },
    )
    with pytest.raises(ProfileError, match=r"target.tls: key_file needs cert_file"):
        load_profile(profile)


def test_a_client_certificate_missing_is_one_line_at_setup(tmp_path: Path, certs: Certs, mtls_server: TlsRedis) -> None:
    profile = write_profile(
        tmp_path / "p.yaml", {"target": {"url": mtls_server.url, "tls": {"ca_file": str(certs.ca)}}}
    )
    line = refused_at_setup(["--resilience-profile", str(profile)])
    assert f"Redis at {mtls_server.url} closed the TLS connection" in line
    assert "give target.tls.cert_file and key_file" in line


def test_a_certificate_that_does_not_verify_is_one_line_at_setup(
    tmp_path: Path, certs: Certs, tls_server: TlsRedis
) -> None:
    profile = write_profile(
        tmp_path / "p.yaml", {"target": {"url": tls_server.url, "tls": {"ca_file": str(certs.other_ca)}}}
    )
    line = refused_at_setup(["--resilience-profile", str(profile)])
    assert f"the TLS certificate of {tls_server.url} does not verify" in line
    assert "CERTIFICATE_VERIFY_FAILED" in line and "target.tls.ca_file" in line
    # the system's CAs (no ca_file) do not know the test CA either
    line = refused_at_setup(["--redis-url", tls_server.url])
    assert "does not verify" in line


def test_tls_to_a_plain_port_is_one_line_at_setup(
    tmp_path: Path, certs: Certs, redis_server: EmbeddedRedis, admin: redis.Redis
) -> None:
    url = f"rediss://127.0.0.1:{redis_server.port}/0"
    profile = write_profile(tmp_path / "p.yaml", {"target": {"tls": {"ca_file": str(certs.ca)}}})
    before = target_state(admin)
    line = refused_at_setup(["--resilience-profile", str(profile), "--redis-url", url])
    assert line.startswith(f"redis-resilience: Redis at {url} speaks plain TCP, not TLS, on that port: use a redis://")
    assert target_state(admin) == before


def test_plain_tcp_to_a_tls_port_is_one_line_at_setup(tls_server: TlsRedis) -> None:
    url = f"redis://127.0.0.1:{tls_server.port}/0"
    line = refused_at_setup(["--redis-url", url])
    assert line.startswith(f"redis-resilience: Redis at {url} speaks TLS on that port: use a rediss:// URL")
    with tls_server.client() as client:
        assert target_state(client)["pack_connections"] == [] and client.dbsize() == 0


def test_tls_on_a_plain_redis_url_is_refused(tmp_path: Path, certs: Certs) -> None:
    profile = write_profile(tmp_path / "p.yaml", {"target": {"tls": {"ca_file": str(certs.ca)}}})
    line = refused_at_setup(["--resilience-profile", str(profile), "--redis-url", "redis://127.0.0.1:1/0"])
    assert "target.tls is set but the target redis://127.0.0.1:1/0 is plain TCP: use a rediss:// URL" in line
    line = refused_at_setup(["--resilience-profile", str(profile)])  # the embedded server speaks plain TCP
    assert "not to the embedded servers the pack starts" in line


def test_sentinel_and_cluster_clients_get_the_tls_settings(certs: Certs) -> None:
    """No TLS sentinel or cluster is started here: the clients redis-py builds carry the settings."""
    access = Access("app", "pw", (("ssl_ca_certs", str(certs.ca)), ("ssl_cert_reqs", "required")))
    pool = pool_from_url("sentinel://127.0.0.1:26379,127.0.0.1:26380/rr", access, socket_timeout=1)
    assert pool.connection_class is SentinelManagedSSLConnection
    assert pool.connection_kwargs["ssl_ca_certs"] == str(certs.ca)
    assert (pool.connection_kwargs["username"], pool.connection_kwargs["password"]) == ("app", "pw")
    sentinel = pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs
    assert sentinel["ssl_ca_certs"] == str(certs.ca) and sentinel["password"] is None  # TLS, not the credentials
    profile = load_profile(Path(__file__).resolve().parent.parent / "config" / "ci.yaml")
    kwargs = cluster_kwargs("cluster://127.0.0.1:7000", profile.client, "rr-x-0", ConnectionProbe(), access)
    assert kwargs["ssl"] is True and kwargs["ssl_ca_certs"] == str(certs.ca) and kwargs["username"] == "app"
    # a URL's own credentials win, as in redis-py
    kwargs = cluster_kwargs("cluster://u:p@127.0.0.1:7000", profile.client, "rr-x-0", ConnectionProbe(), access)
    assert (kwargs["username"], kwargs["password"]) == ("u", "p")
    assert "pw" not in repr(access)
