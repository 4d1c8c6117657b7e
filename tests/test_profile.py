"""Profile validation: good profiles load; bad ones give one line naming file, key and expectation."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from chaos.locust_command import LOCUSTFILE, headless_args
from chaos.profile import json_schema, load_profile, parse_profile
from config.loader import ProfileError

from .helpers import LOCUST, ROOT, shipped_profiles


@pytest.mark.parametrize("name", ["default.yaml", "ci.yaml", "restart.yaml"])
def test_shipped_profiles_load(name: str) -> None:
    profile = load_profile(ROOT / "config" / name)
    assert profile.target.url == "embedded"
    assert profile.chaos.enabled and profile.chaos.faults


def test_default_profile_mirrors_redis_py_defaults() -> None:
    import redis
    from redis._defaults import DEFAULT_RETRY_BASE, DEFAULT_RETRY_CAP, DEFAULT_RETRY_COUNT, DEFAULT_SOCKET_TIMEOUT

    client = load_profile(ROOT / "config" / "default.yaml").client
    assert client.retries == DEFAULT_RETRY_COUNT
    assert (client.backoff.base_s, client.backoff.cap_s) == (DEFAULT_RETRY_BASE, DEFAULT_RETRY_CAP)
    assert client.socket_timeout_s == DEFAULT_SOCKET_TIMEOUT
    assert redis.Redis().get_retry().get_retries() == client.retries  # type: ignore[union-attr]


def test_json_schema_file_is_current() -> None:
    shipped = (ROOT / "config" / "profile.schema.json").read_text()
    assert shipped == json_schema(), "run: python -m chaos.profile > config/profile.schema.json"
    schema = json.loads(shipped)
    assert schema["additionalProperties"] is False
    assert "chaos" in schema["properties"]


BAD = [
    ("chaos:\n  every_s: -1\n  faults: [{name: client_kill}]\n", "chaos.every_s: expected greater than 0, got -1"),
    ("chaos:\n  every_s: '5'\n  faults: [{name: client_kill}]\n", "chaos.every_s: expected a valid number, got '5'"),
    ("chaos:\n  faults: [{name: client_kill, scope: some}]\n", "scope: expected 'own', 'service', 'others' or 'all'"),
    ("chaos:\n  faults: [{name: nope}]\n", "chaos.faults[0]: unknown fault 'nope': expected one of client_kill"),
    ("chaos:\n  faults: [{name: pool_reset, bogus: 1}]\n", "chaos.faults[0].bogus: unknown key"),
    ("chaos:\n  faults: []\n", "chaos: chaos is enabled but chaos.faults is empty"),
    ("chaos:\n  faults: [{name: pool_reset, weight: 0}]\n", "the weights of chaos.faults sum to 0"),
    ("client:\n  retries: 2.5\n", "client.retries: expected a valid integer, got 2.5"),
    ("slo:\n  max_error_rate_in_windows: 2\n", "slo.max_error_rate_in_windows: expected less than or equal to 1"),
    ("target:\n  url: http://user:hunter2@example\n", "target.url: expected 'embedded' or a redis://"),
    ("tragets: {}\n", "tragets: unknown key"),
    ("- 1\n- 2\n", "(top level): expected a mapping of keys, got list"),
    ("chaos: {every_s: 5\n", "YAML syntax error at line 2, column 1"),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_profiles_name_file_key_and_expectation(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message
    assert "hunter2" not in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="no such profile file"):
        load_profile(tmp_path / "nope.yaml")


def one_user_run(*extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A headless run of one user for 5 s, then ``extra``, its stdout and stderr apart (for a refusal at set-up)."""
    command = [LOCUST, "-f", str(LOCUSTFILE), "--headless", *headless_args(1, "5s", *extra)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)


def test_locust_exits_2_on_a_bad_profile_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("chaos:\n  every_s: 0\n  faults: [{name: client_kill}]\n")
    proc = one_user_run("--resilience-profile", str(path))
    assert proc.returncode == 2, proc.stderr
    assert f"redis-resilience: {path}: chaos.every_s: expected greater than 0, got 0" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unreachable_target_exits_2_naming_the_address(tmp_path: Path) -> None:
    from targets.embedded import free_port

    port = free_port()
    proc = one_user_run("--redis-url", f"redis://:s3cret@127.0.0.1:{port}/0")
    assert proc.returncode == 2, proc.stderr
    assert f"cannot reach Redis at redis://:***@127.0.0.1:{port}/0" in proc.stderr
    assert "s3cret" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout


def test_missing_redis_server_says_how_to_install_it(tmp_path: Path) -> None:
    proc = one_user_run(env={**os.environ, "PATH": str(tmp_path)})  # no redis-server on this PATH
    assert proc.returncode == 2, proc.stderr
    assert "redis-server is not installed" in proc.stderr
    assert "apt-get install -y redis-server" in proc.stderr and "--redis-url" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_every_shipped_profile_survives_the_trip_to_the_workers() -> None:
    """A master sends its profile as JSON (``model_dump``); a worker validates it again and gets the same."""
    for shipped in shipped_profiles():
        profile = load_profile(shipped)
        again = parse_profile(profile.model_dump(mode="json"), "the master's profile")
        assert again.model_dump() == profile.model_dump(), shipped  # two builds of the model: two classes
