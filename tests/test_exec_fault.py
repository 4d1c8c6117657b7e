"""The exec fault on real processes: a command on a real redis-server, failures in one line, no process left
behind, secrets masked, the revert_command, and the profile and set-up errors (exit 2). The measured runs
(the witness's outage, the window's degraded requests) are in tests/test_exec_run.py."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import gevent
import pytest
import redis
import yaml

from chaos.distributed.worker import WorkerRole
from chaos.events import ResilienceEvents
from chaos.faults import FaultTarget, MissingPrerequisite, build_fault
from chaos.faults.exec_command import ExecFailed, ExecParams
from chaos.profile import parse_profile
from chaos.scheduler import ChaosScheduler
from config.loader import ProfileError
from targets.embedded import EmbeddedRedis

from .helpers import ROOT, eventually, no_pools, pid_alive, refused_at_setup, write_profile

SECRET = "s3cret-value-42"


def exec_fault(**params: Any) -> Any:
    """An exec fault of these params (no target needed: it touches none)."""
    return build_fault(ExecParams(name="exec", **params), FaultTarget(None, "rr-t-", no_pools))


def pids_in(path: Path) -> list[int]:
    """The PIDs a command wrote to ``path`` (one a line), once it has written them."""
    eventually(f"PIDs in {path}", lambda: path.exists() and path.read_text().endswith("\n"), 5)
    return [int(line) for line in path.read_text().split()]


def test_a_command_runs_without_blocking_the_hub_and_its_output_is_in_the_details() -> None:
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            gevent.sleep(0.01)

    ticker = gevent.spawn(tick)
    try:
        details = exec_fault(command=["sh", "-c", "sleep 0.5; echo out; echo err >&2"]).inject()
    finally:
        ticker.kill()
    assert ticks >= 20, ticks  # the hub ran the other greenlet all along (0.5 s of 10 ms ticks)
    assert details == {
        "exit_code": 0,
        "ran_ms": details["ran_ms"],
        "stdout": "out\n",
        "stderr": "err\n",
        "stdout_bytes": 4,
        "stderr_bytes": 4,
    }
    assert 450 <= details["ran_ms"] < 3000, details


def test_redis_cli_on_the_server_succeeds_with_its_reply() -> None:
    server = EmbeddedRedis(extra_args=("--enable-debug-command", "local")).start()
    try:
        started = time.monotonic()
        details = exec_fault(command=["redis-cli", "-e", "-p", str(server.port), "DEBUG", "SLEEP", "0.3"]).inject()
        assert time.monotonic() - started >= 0.3
        assert details["exit_code"] == 0 and details["stdout"] == "OK\n" and details["ran_ms"] >= 300, details
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (["false"], "false exited 1 (expected 0)"),
        (
            ["sh", "-c", "echo first >&2; echo 'no such cache' >&2; echo; exit 3"],
            "sh exited 3 (expected 0): no such cache",
        ),
        (["sh", "-c", "kill -9 $$"], "sh was killed by signal 9 (expected 0)"),
        (["rr-no-such-executable"], "rr-no-such-executable could not start: No such file or directory"),
    ],
)
def test_a_failing_command_is_a_failed_injection_in_one_line(command: list[str], error: str) -> None:
    with pytest.raises(ExecFailed) as caught:
        exec_fault(command=command).inject()
    assert str(caught.value) == error


def test_expect_exit_says_which_codes_succeed() -> None:
    assert exec_fault(command=["sh", "-c", "exit 3"], expect_exit=[0, 3]).inject()["exit_code"] == 3
    with pytest.raises(ExecFailed, match=r"^true exited 0 \(expected 3\)$"):
        exec_fault(command=["true"], expect_exit=[3]).inject()


def test_the_scheduler_records_a_failed_command_as_the_faults_error(redis_server: EmbeddedRedis) -> None:
    admin = redis.Redis.from_url(redis_server.url)
    profile = parse_profile({"chaos": {"faults": [{"name": "exec", "command": ["false"]}]}}, "test")
    scheduler = ChaosScheduler(
        profile.chaos, FaultTarget(admin, "rr-t-", no_pools), ResilienceEvents(), time.monotonic()
    )
    record = scheduler.inject(profile.chaos.faults[0])
    assert not record.ok and record.error == "ExecFailed: false exited 1 (expected 0)"
    admin.close()


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    # a child in the background, then the shell itself waiting: both must be gone
    command = ["sh", "-c", f"sleep 30 & echo $! > {pidfile}; echo $$ >> {pidfile}; wait"]
    started = time.monotonic()
    with pytest.raises(ExecFailed, match=r"^sh did not finish within timeout_s=0\.5s: killed \(its process group\)$"):
        exec_fault(command=command, timeout_s=0.5).inject()
    assert time.monotonic() - started < 3
    pids = pids_in(pidfile)
    assert len(pids) == 2
    eventually("the command's processes gone", lambda: not any(pid_alive(pid) for pid in pids), 5)


def test_sleep_10_with_timeout_0_5_leaves_no_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    with pytest.raises(ExecFailed, match=r"did not finish within timeout_s=0\.5s"):
        exec_fault(command=["sh", "-c", f"echo $$ > {pidfile}; exec sleep 10"], timeout_s=0.5).inject()
    (pid,) = pids_in(pidfile)
    eventually(f"sleep {pid} gone", lambda: not pid_alive(pid), 5)


def test_a_fault_cut_short_kills_its_command(tmp_path: Path) -> None:
    """The test stopping, Ctrl-C or chaos.fault_timeout_s kill the greenlet mid-command: the command goes too."""
    pidfile = tmp_path / "pid"
    fault = exec_fault(command=["sh", "-c", f"echo $$ > {pidfile}; exec sleep 30"], timeout_s=30)
    greenlet = gevent.spawn(fault.inject)
    (pid,) = pids_in(pidfile)
    assert pid_alive(pid)
    greenlet.kill(block=True, timeout=5)
    assert greenlet.dead
    eventually(f"sleep {pid} gone", lambda: not pid_alive(pid), 5)


def test_env_values_are_masked_in_the_details_and_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RR_EXEC_TOKEN", SECRET)
    echo = 'echo "token=$TOKEN"; echo "url=redis://:$TOKEN@cache.example:6380"; echo "$TOKEN" >&2'
    details = exec_fault(command=["sh", "-c", echo], env={"TOKEN": "RR_EXEC_TOKEN"}).inject()
    assert details["stdout"] == "token=***\nurl=redis://:***@cache.example:6380\n" and details["stderr"] == "***\n"
    with pytest.raises(ExecFailed) as caught:
        exec_fault(command=["sh", "-c", 'echo "denied: $TOKEN" >&2; exit 1'], env={"TOKEN": "RR_EXEC_TOKEN"}).inject()
    assert str(caught.value) == "sh exited 1 (expected 0): denied: ***"
    # the secret astride the 2 KiB cut: masked before the cut, so not even its end is shown
    tail = "b" * (2048 - 5)
    long = f"head -c 3000 /dev/zero | tr '\\0' a; printf '%s' \"$TOKEN\"; printf '{tail}'"
    details = exec_fault(command=["sh", "-c", long], env={"TOKEN": "RR_EXEC_TOKEN"}).inject()
    assert details["stdout"].startswith(f"[cut: {3000 + len(SECRET) + len(tail)} bytes in all, the end shown]\n")
    assert details["stdout"].endswith(tail) and SECRET[-5:] not in details["stdout"], details["stdout"][:120]


def test_a_missing_variable_or_executable_is_found_before_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RR_EXEC_UNSET", raising=False)
    fault = exec_fault(command=["true"], env={"TOKEN": "RR_EXEC_UNSET"})
    message = "env: TOKEN comes from the environment variable RR_EXEC_UNSET, which is not set"
    with pytest.raises(MissingPrerequisite, match=f"^{message}$"):
        fault.check()
    with pytest.raises(ExecFailed, match=f"^command: {message}$"):  # and again when it would start
        fault.inject()
    with pytest.raises(MissingPrerequisite, match=r"^revert_command: rr-no-such-cli is not found \(not on PATH"):
        exec_fault(command=["true"], revert_command=["rr-no-such-cli"]).check()
    exec_fault(command=["redis-cli", "PING"], revert_command=["true"]).check()  # found: nothing is run


def test_revert_command_runs_after_the_hold_or_at_once_when_the_test_stops(tmp_path: Path) -> None:
    marker = tmp_path / "reverted"
    profile = parse_profile(
        {
            "chaos": {
                "faults": [
                    {
                        "name": "exec",
                        "command": ["true"],
                        "hold_s": 30,
                        "revert_command": ["sh", "-c", f"echo back > {marker}"],
                    },
                    {"name": "exec", "command": ["true"], "revert_command": ["sh", "-c", "echo no >&2; exit 4"]},
                    {"name": "exec", "command": ["rr-no-such-executable"], "revert_command": ["touch", str(marker)]},
                ]
            }
        },
        "test",
    )
    held, failing, unstarted = profile.chaos.faults
    scheduler = ChaosScheduler(
        profile.chaos, FaultTarget(None, "rr-t-", no_pools), ResilienceEvents(), time.monotonic()
    )
    with gevent.Timeout(10):
        record = scheduler.inject_now(held)  # returns once the command returned; held for 30 s
    assert record.ok and not record.reverted and not marker.exists()
    stopped = time.monotonic()
    scheduler.stop()  # the test stops: the revert runs at once
    assert record.reverted and record.revert_error is None and marker.read_text() == "back\n"
    assert time.monotonic() - stopped < 5
    assert record.at_window_close["revert"]["exit_code"] == 0  # settled at the stop, after its revert ran
    marker.unlink()
    record = scheduler.inject(failing)
    assert record.ok and record.revert_error == "ExecFailed: revert_command: sh exited 4 (expected 0): no"
    record = scheduler.inject(unstarted)  # a command that never started changed nothing: nothing to revert
    assert not record.ok and record.revert_error is None and not marker.exists()


PROFILE_ERRORS = [
    (
        {"command": "az redis force-reboot --name n"},
        "chaos.faults[0].command: expected a list of arguments (argv), "
        "not a shell string: write it as a list, e.g. [az, ...]",
    ),
    (
        {"command": ["aws", "elasticache", "test-failover", "--node-group-id", 1]},
        "chaos.faults[0].command: argument 4 (1): expected a string: quote every argument",
    ),
    ({"command": []}, "chaos.faults[0].command: expected at least 1 item"),
    ({"command": ["true"], "shell": True}, "chaos.faults[0].shell: unknown key: expected one of name, weight, command"),
    ({"command": ["true"], "env": {"TOKEN": "not a name"}}, "chaos.faults[0].env.TOKEN: expected a string matching"),
    ({"command": ["true"], "timeout_s": 90}, "chaos: faults[0] (exec): timeout_s (90) exceeds fault_timeout_s (60)"),
    ({"command": ["true"], "revert_command": "redis-server"}, "chaos.faults[0].revert_command: expected a list"),
]


@pytest.mark.parametrize(("entry", "expected"), PROFILE_ERRORS)
def test_profile_errors_name_the_key_and_what_was_expected(entry: dict[str, Any], expected: str) -> None:
    with pytest.raises(ProfileError) as caught:
        parse_profile({"chaos": {"faults": [{"name": "exec", **entry}]}}, "p.yaml")
    assert str(caught.value).startswith(f"p.yaml: {expected}"), str(caught.value)


def test_a_shell_string_stops_locust_with_exit_2(tmp_path: Path) -> None:
    profile = write_profile(
        tmp_path / "p.yaml", {"chaos": {"faults": [{"name": "exec", "command": "systemctl restart redis"}]}}
    )
    line = refused_at_setup(["--resilience-profile", str(profile)])
    assert line.startswith(f"redis-resilience: {profile}: chaos.faults[0].command: expected a list of arguments"), line
    assert "[systemctl, ...]" in line


def test_a_missing_variable_stops_locust_with_exit_2_before_the_command_runs(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    marker = tmp_path / "ran"
    profile = write_profile(
        tmp_path / "p.yaml",
        {
            "chaos": {
                "jitter_s": 0,
                "faults": [{"name": "exec", "command": ["touch", str(marker)], "env": {"TOKEN": "RR_EXEC_UNSET"}}],
            }
        },
    )
    assert "RR_EXEC_UNSET" not in os.environ
    line = refused_at_setup(["--resilience-profile", str(profile), "--redis-url", redis_server.url])
    assert line == (
        f"redis-resilience: {profile}: chaos.faults[0] (exec): env: TOKEN comes from the environment "
        "variable RR_EXEC_UNSET, which is not set"
    )
    assert not marker.exists()


def test_a_remote_target_needs_the_opt_in_and_the_command_never_runs(tmp_path: Path) -> None:
    """The existing rail (targets/safety.py) covers exec like any server fault: refused before anything runs."""
    marker = tmp_path / "ran"
    profile = write_profile(
        tmp_path / "p.yaml", {"chaos": {"jitter_s": 0, "faults": [{"name": "exec", "command": ["touch", str(marker)]}]}}
    )
    line = refused_at_setup(["--resilience-profile", str(profile), "--redis-url", "redis://192.0.2.10:6379"])
    assert "chaos against redis://192.0.2.10:6379 refused: 192.0.2.10 is not a loopback address" in line, line
    assert not marker.exists()


def test_a_worker_refuses_to_run_a_server_fault(tmp_path: Path) -> None:
    """A worker runs only what acts on its own clients: a run_fault message naming exec is refused, not run."""
    marker = tmp_path / "ran"
    sent: list[tuple[str, dict[str, Any]]] = []

    class Link:  # the role's messaging, recorded (the refusal under test is WorkerRole's own code)
        run = None

        def send(self, kind: str, data: dict[str, Any]) -> None:
            sent.append((kind, data))

    data = {"test": 1, "fault_id": 3, "params": {"name": "exec", "command": ["touch", str(marker)]}}
    WorkerRole._run_fault(Link(), data, None)
    ((kind, ack),) = sent
    assert kind == "rr_fault_ran", kind
    assert ack["error"] == "ValueError: fault exec runs where the scheduler is, never on a worker", ack
    assert not marker.exists()


def test_the_worked_examples_in_the_docs_are_valid_profiles() -> None:
    text = (ROOT / "docs" / "faults.md").read_text()
    section = text[text.index("## `exec`: a command of yours") :]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(blocks) == 5
    for block in blocks:
        profile = parse_profile(yaml.safe_load(block), "docs/faults.md")
        assert [fault.name for fault in profile.chaos.faults] == ["exec"]
