"""A target the pack cannot use stops a real ``locust`` at set-up: one line, exit 2, no traceback,
no user spawned, nothing changed on the target. (TLS mismatches: tests/test_tls.py.)"""

from __future__ import annotations

import time
from pathlib import Path

from targets.embedded import EmbeddedRedis, free_port

from .helpers import refused_at_setup, target_state, write_profile
from .secured_servers import secured


def test_an_unreachable_port_fails_fast_naming_the_address(tmp_path: Path) -> None:
    port = free_port()
    profile = write_profile(
        tmp_path / "p.yaml", {"target": {"url": f"redis://127.0.0.1:{port}/0", "password_env": "RR_TEST_PW"}}
    )
    started = time.monotonic()
    line = refused_at_setup(["--resilience-profile", str(profile)], {"RR_TEST_PW": "s3cret-unreachable"})
    assert time.monotonic() - started < 15
    assert line.startswith(f"redis-resilience: cannot reach Redis at redis://127.0.0.1:{port}/0 (admin connection")
    assert f"Error 111 connecting to 127.0.0.1:{port}. Connection refused." in line
    assert "s3cret-unreachable" not in line


def test_a_wrong_traffic_password_stops_before_any_user(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    """The admin's password is right, the traffic user's is not: the traffic probe says so."""
    root = secured(redis_server, "root-pw", {"app": ["on", ">app-pw", "~rr:*", "+@all", "-@dangerous"]})
    profile = write_profile(
        tmp_path / "p.yaml",
        {
            "target": {
                "url": redis_server.url,
                "username": "app",
                "password_env": "RR_TEST_APP_PW",
                "admin": {"password_env": "RR_TEST_ROOT_PW"},
            }
        },
    )
    before = target_state(root)
    line = refused_at_setup(
        ["--resilience-profile", str(profile)], {"RR_TEST_APP_PW": "nope", "RR_TEST_ROOT_PW": "root-pw"}
    )
    assert line == (
        f"redis-resilience: Redis at {redis_server.url} refused the traffic password (user 'app'): "
        "WRONGPASS invalid username-password pair or user is disabled."
    )
    assert target_state(root) == before
    # no password at all, where one is needed
    line = refused_at_setup(["--redis-url", redis_server.url])
    assert line.startswith(f"redis-resilience: Redis at {redis_server.url} wants a password and the admin connection")
    assert line.endswith(
        "has none: name it with target.password_env or target.password_file (or target.admin, for a user of its own)"
    )
    assert target_state(root) == before
    root.close()


def test_an_unknown_url_scheme_in_the_profile_or_on_the_command_line(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "p.yaml", {"target": {"url": "memcached://127.0.0.1:11211"}})
    line = refused_at_setup(["--resilience-profile", str(profile)])
    assert line.startswith(f"redis-resilience: {profile}: target.url: expected 'embedded' or a redis://, rediss://")
    line = refused_at_setup(["--redis-url", "http://user:hunter2@127.0.0.1:6379/0"])
    assert line == (
        "redis-resilience: --redis-url (RESILIENCE_REDIS_URL): unknown URL scheme 'http://' in "
        "'http://user:***@127.0.0.1:6379/0': expected redis://, rediss://, sentinel:// or cluster:// "
        "(or embedded, embedded-sentinel, embedded-cluster)"
    )
    line = refused_at_setup([], {"RESILIENCE_REDIS_URL": "127.0.0.1:6379"})
    assert "--redis-url (RESILIENCE_REDIS_URL): not a URL in '127.0.0.1:6379'" in line
