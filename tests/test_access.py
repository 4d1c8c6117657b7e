"""ACL users and secrets on a real ``redis-server``: a traffic user without dangerous commands, a
chaos (admin) user of its own, passwords from the environment or files, never printed."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from chaos.profile import load_profile, parse_profile
from config.loader import ProfileError
from targets.access import Access
from targets.embedded import EmbeddedRedis

from .helpers import finish, headless_args, locust, refused_at_setup, target_state, write_profile
from .secured_servers import secured

# No dangerous command, no CLIENT subcommand but SETNAME; keys and channels: the run's only.
TRAFFIC_RULES = ["on", "~rr:*", "&rr:*", "+@all", "-@dangerous", "-client", "+client|setname"]


@pytest.fixture
def passwords() -> dict[str, str]:
    return {name: f"{name}-{secrets.token_hex(8)}" for name in ("default", "traffic", "chaos")}


def acl_users(
    server: EmbeddedRedis, passwords: dict[str, str], chaos_rules: list[str], traffic_rules: list[str] = TRAFFIC_RULES
) -> redis.Redis:
    return secured(
        server,
        passwords["default"],
        {
            "traffic": [*traffic_rules, f">{passwords['traffic']}"],
            "chaos": ["on", "~*", "&*", *chaos_rules, f">{passwords['chaos']}"],
        },
    )


@pytest.fixture
def root(redis_server: EmbeddedRedis, passwords: dict[str, str]) -> Iterator[redis.Redis]:
    """The default user, with a password now (no user of the pack uses it)."""
    client = secured(redis_server, passwords["default"], {})
    yield client
    client.close()


def acl_profile(tmp_path: Path, server: EmbeddedRedis, passwords: dict[str, str], **chaos: Any) -> Path:
    """Traffic as user 'traffic' (password from $RR_TEST_TRAFFIC_PASSWORD), the pack's admin as user
    'chaos' (password from a file next to the profile, named relatively)."""
    (tmp_path / "chaos.password").write_text(passwords["chaos"] + "\n")
    return write_profile(
        tmp_path / "acl.yaml",
        {
            "target": {
                "url": server.url,
                "username": "traffic",
                "password_env": "RR_TEST_TRAFFIC_PASSWORD",
                "admin": {"username": "chaos", "password_file": "chaos.password"},
            },
            "chaos": {"order": "cycle", **chaos},
        },
    )


def test_a_traffic_user_without_client_or_config_runs_a_passing_headless_run(
    tmp_path: Path, redis_server: EmbeddedRedis, passwords: dict[str, str]
) -> None:
    """The traffic user has no dangerous command (no CLIENT but SETNAME, no CONFIG) and only the
    run's keys; the chaos user may not GET, SET or RPUSH. The run passes with client_kill done by the
    chaos user, and the server's ACL log shows no command refused to either."""
    root = acl_users(redis_server, passwords, ["+@all", "-get", "-set", "-rpush"])
    profile = acl_profile(tmp_path, redis_server, passwords)
    report_path = tmp_path / "report.json"
    proc = locust(
        headless_args(10, "10s", "--resilience-profile", str(profile), "--resilience-report", str(report_path)),
        env={**os.environ, "RR_TEST_TRAFFIC_PASSWORD": passwords["traffic"]},
    )
    out = finish(proc, timeout=60)
    assert proc.returncode == 0, out[-4000:]
    report = json.loads(report_path.read_text())
    assert report["faults"][0]["name"] == "client_kill" and report["faults"][0]["ok"]
    assert report["faults"][0]["details"]["connections_killed"] >= 1
    assert report["integrity"]["ledger"]["acknowledged"] > 0 and report["summary"]["lost_writes"] == 0
    assert root.acl_log() == []  # nothing was refused to either user
    assert root.dbsize() == 0  # the chaos user cleaned up
    for command in (["CLIENT", "KILL", "ID", "1"], ["CONFIG", "GET", "maxmemory"], ["CLIENT", "LIST"]):
        assert b"no permissions" in root.execute_command("ACL", "DRYRUN", "traffic", *command)
    root.close()


def test_a_traffic_user_without_client_setname_is_told_what_to_grant(
    tmp_path: Path, redis_server: EmbeddedRedis, passwords: dict[str, str]
) -> None:
    without_setname = ["on", "~rr:*", "+@all", "-@dangerous", "-client"]
    root = acl_users(redis_server, passwords, ["+@all"], traffic_rules=without_setname)
    profile = acl_profile(tmp_path, redis_server, passwords)
    before = target_state(root)
    line = refused_at_setup(["--resilience-profile", str(profile)], {"RR_TEST_TRAFFIC_PASSWORD": passwords["traffic"]})
    assert f"Redis at {redis_server.url} refused a command on connecting (traffic connection, user 'traffic')" in line
    assert "ACL SETUSER traffic +client|setname" in line
    assert target_state(root) == before
    root.close()


@pytest.mark.parametrize(
    ("fault", "denied", "refused"),
    [("client_kill", "-client|kill", "CLIENT KILL refused"), ("oom", "-config", "CONFIG GET refused")],
)
def test_a_chaos_user_lacking_a_faults_command_stops_at_the_capability_check(
    tmp_path: Path, redis_server: EmbeddedRedis, passwords: dict[str, str], fault: str, denied: str, refused: str
) -> None:
    root = acl_users(redis_server, passwords, ["+@all", denied])
    profile = acl_profile(tmp_path, redis_server, passwords, faults=[{"name": fault}])
    before = target_state(root)
    line = refused_at_setup(["--resilience-profile", str(profile)], {"RR_TEST_TRAFFIC_PASSWORD": passwords["traffic"]})
    assert f"{profile}: fault {fault} cannot run on {redis_server.url}: {refused}" in line
    assert "no permissions" in line
    assert target_state(root) == before
    root.close()


def test_a_password_never_appears_in_output_logs_or_report(
    tmp_path: Path, redis_server: EmbeddedRedis, root: redis.Redis, passwords: dict[str, str]
) -> None:
    """A passing run (password from the environment, debug logging), a wrong password, and a
    --redis-url carrying credentials: the password is in none of what they print or write."""
    password = passwords["default"]
    profile = write_profile(tmp_path / "p.yaml", {"target": {"url": redis_server.url, "password_env": "RR_TEST_PW"}})
    report_path, log_path = tmp_path / "report.json", tmp_path / "locust.log"
    proc = locust(
        headless_args(
            10,
            "8s",
            "--resilience-profile",
            str(profile),
            "--loglevel",
            "DEBUG",
            "--logfile",
            str(log_path),
            "--resilience-report",
            str(report_path),
        ),
        env={**os.environ, "RR_TEST_PW": password},
    )
    out = finish(proc, timeout=60)
    assert proc.returncode == 0, out[-4000:]
    report = report_path.read_text()
    assert json.loads(report)["summary"]["requests"] > 0
    for text in (out, log_path.read_text(), report):
        assert password not in text
    wrong = f"wrong-{secrets.token_hex(8)}"
    line = refused_at_setup(["--resilience-profile", str(profile)], {"RR_TEST_PW": wrong})
    assert f"Redis at {redis_server.url} refused the admin password (the default user): WRONGPASS" in line
    url = f"redis://default:{wrong}@127.0.0.1:{redis_server.port}/0"
    line = refused_at_setup(["--redis-url", url])
    assert "refused the admin password (user 'default')" in line and "redis://default:***@127.0.0.1" in line
    for text in (line, out):
        assert password not in text and wrong not in text


def test_secrets_come_from_the_environment_or_files_never_inline(tmp_path: Path) -> None:
    def error(target: dict[str, Any]) -> str:
        with pytest.raises(ProfileError) as err:
            parse_profile({"target": target}, "p.yaml", tmp_path)
        return str(err.value)

    url = "redis://127.0.0.1:6379/0"
    hint = "name an environment variable (password_env) or a file (password_file) instead"
    assert error({"url": url, "password": "hunter2"}).startswith("p.yaml: target: an inline password (target.password)")
    assert hint in error({"url": url, "password": "hunter2"}) and "hunter2" not in error({"password": "hunter2"})
    assert "target.admin.password" in error({"url": url, "admin": {"password": "hunter2"}})
    message = error({"url": "redis://app:hunter2@127.0.0.1:6379/0"})
    assert "a password inside target.url is refused" in message and "hunter2" not in message
    assert "hunter2" not in error({"url": "sentinel://:hunter2@127.0.0.1:26379/rr"})
    assert error({"url": url, "password": 12345, "allow_inline_secrets": True}) == (
        "p.yaml: target.password: expected a valid string"  # the value is not echoed
    )
    assert "give the traffic password one way, not password_env and password" in error(
        {"url": url, "password_env": "X", "password": "y", "allow_inline_secrets": True}
    )
    assert (
        error({"password_file": "nope.txt"}) == f"p.yaml: target.password_file: no such file: {tmp_path / 'nope.txt'}"
    )
    assert "target.password_env: expected" in error({"password_env": "not a name"})
    # opted in, inline passwords are accepted
    profile = parse_profile(
        {"target": {"url": "redis://:pw@h:1/0", "password": None, "allow_inline_secrets": True}}, "p"
    )
    assert profile.target.allow_inline_secrets


def test_an_inline_password_stops_locust_and_a_missing_variable_is_named(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "p.yaml", {"target": {"url": "redis://127.0.0.1:1/0", "password": "hunter2"}})
    line = refused_at_setup(["--resilience-profile", str(profile)])
    assert f"{profile}: target: an inline password (target.password) is refused" in line and "hunter2" not in line
    profile = write_profile(
        tmp_path / "p.yaml", {"target": {"url": "redis://127.0.0.1:1/0", "password_env": "RR_NOPE"}}
    )
    env = {k: v for k, v in os.environ.items() if k != "RR_NOPE"}
    line = refused_at_setup(["--resilience-profile", str(profile)], env)
    assert line == f"redis-resilience: {profile}: target.password_env: the environment variable RR_NOPE is not set"


def test_password_file_is_read_relative_to_the_profile_and_hidden_from_repr(tmp_path: Path) -> None:
    from targets.access import resolve_access

    (tmp_path / "pw").write_text("s3cret\r\n")
    profile_path = write_profile(
        tmp_path / "p.yaml", {"target": {"url": "redis://127.0.0.1:1/0", "password_file": "pw", "username": "app"}}
    )
    profile = load_profile(profile_path)
    traffic, admin = resolve_access(profile.target, profile.target.url, "p")
    assert traffic == admin == Access("app", "s3cret", None)  # admin: the traffic's credentials by default
    assert "s3cret" not in repr(traffic)
    # a URL's own credentials (--redis-url) win over the profile's; without target.admin, the admin's too
    traffic, admin = resolve_access(profile.target, "redis://u:urlpw@127.0.0.1:1/0", "p")
    assert (traffic.username, traffic.password, admin.password) == ("u", "urlpw", "urlpw")
