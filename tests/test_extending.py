"""A fault and a workload of a user's own, added as docs/extending.md says: one module each, registered
by a decorator line, outside the pack (examples/extending, copied into a throwaway folder), then run
by a real headless locust against a real redis-server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaos.locust_command import headless_command
from chaos.profile import parse_profile
from config.loader import ProfileError
from config.schema import WorkloadSettings
from scenarios.registry import register_workload

from .helpers import LOCUST, ROOT, finish

EXAMPLE = ROOT / "examples" / "extending"


def run_example(tmp_path: Path, profile: dict[str, Any], seconds: int) -> tuple[subprocess.Popen[str], str, Path]:
    package = tmp_path / "mine"
    shutil.copytree(EXAMPLE, package)
    (package / "profile.yaml").write_text(yaml.safe_dump(profile))
    report = tmp_path / "report.json"
    proc = subprocess.Popen(
        headless_command(LOCUST, 12, seconds, package / "profile.yaml", report, locustfile=package / "locustfile.py"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    return proc, finish(proc, seconds + 60), report


def test_a_fault_and_a_workload_of_ones_own_run_in_a_headless_run(tmp_path: Path) -> None:
    profile = yaml.safe_load((EXAMPLE / "profile.yaml").read_text())
    proc, out, report_path = run_example(tmp_path, profile, 9)
    assert proc.returncode == 0, out[-4000:]
    assert "Traceback" not in out, out[-4000:]
    report = json.loads(report_path.read_text())
    flushes = [f for f in report["faults"] if f["name"] == "script_flush"]
    assert flushes and all(f["ok"] and f["details"] == {"nodes": 1, "mode": "SYNC"} for f in flushes), report["faults"]
    assert {f["name"] for f in report["faults"]} == {"script_flush", "client_kill"}
    counter = report["integrity"]["counter"]
    assert counter["added_acked"] > 0 and counter["added_acked"] % 3 == 0  # step: 3
    # None lost; more than acknowledged is possible: an INCRBY that was applied, its reply lost to the
    # kill and retried by redis-py, counts twice on the server (hidden retries duplicate writes)
    assert counter["final_total_max"] >= counter["added_acked"] and counter["lost_increments"] == 0
    # every flush made some EVALSHA meet NOSCRIPT and load the script again (plus the first load)
    assert report["integrity"]["ratelimit"]["script_loads"] >= 1 + len(flushes)
    assert report["summary"]["lost_increments"] == 0
    # the orders workload's own request type (its request_types) is measured beside its commands
    orders = report["summary"]["by_type"]["ORDER"]
    assert orders["in_windows"]["requests"] > 0 and orders["outside_windows"]["requests"] > 0, orders
    assert set(report["summary"]["by_type"]) == {"REDIS", "ORDER"}
    assert any(f["by_type"]["ORDER"]["requests"] > 0 for f in report["faults"]), report["faults"]
    gate = next(s for s in report["slo"] if s["name"] == "max_lost_increments")
    assert (gate["limit"], gate["value"], gate["ok"]) == (0, 0, True)
    assert "SLO ok       max_lost_increments: 0 <= 0" in out


def test_a_key_the_workload_does_not_have_is_a_profile_error(tmp_path: Path) -> None:
    profile = yaml.safe_load((EXAMPLE / "profile.yaml").read_text())
    profile["workload"]["mix"]["counter"]["stepp"] = 2
    proc, out, _ = run_example(tmp_path, profile, 5)
    assert proc.returncode == 2, out[-3000:]
    assert "Traceback" not in out and "Ramping to" not in out, out[-3000:]
    assert "workload.mix.counter.stepp: unknown key: expected one of weight, counters, step" in out, out[-3000:]


def test_an_unknown_workload_is_a_profile_error_naming_the_registered_ones() -> None:
    expected = r"p\.yaml: workload\.mix\.nope: unknown key: expected one of .*cache.*ledger"
    with pytest.raises(ProfileError, match=expected):
        parse_profile({"workload": {"mix": {"nope": {"weight": 1}}}}, "p.yaml")


def test_the_registry_refuses_a_workload_without_settings_or_a_second_claim_on_a_name() -> None:
    with pytest.raises(TypeError, match="Settings must subclass"):
        register_workload(type("NoSettings", (), {"label": "no_settings", "Settings": dict}))
    with pytest.raises(ValueError, match="'cache' is registered already"):
        register_workload(type("Impostor", (), {"label": "cache", "Settings": WorkloadSettings}))


def test_a_workload_class_not_registered_is_bad_input_not_weight_1(tmp_path: Path) -> None:
    (tmp_path / "locustfile.py").write_text(
        "import locust\nimport chaos.plugin\nfrom locust import task\nfrom scenarios.user import RedisUser\n"
        "from scenarios.workloads import CacheUser\n\n\n"
        "class Mine(RedisUser):\n    label = 'mine'\n\n"
        "    @task\n    def ping(self) -> None:\n        self.client.ping()\n"
    )
    proc = subprocess.Popen(
        [LOCUST, "-f", str(tmp_path / "locustfile.py"), "--headless", "-u", "2", "-r", "2", "-t", "5s"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    out = finish(proc, 60)
    assert proc.returncode == 2, out[-3000:]
    assert "Traceback" not in out and "Ramping to" not in out, out[-3000:]
    assert "the user class Mine (label 'mine') is not a registered workload" in out, out[-3000:]
