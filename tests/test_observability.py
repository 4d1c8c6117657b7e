"""Seeing a run: the HTML report, JUnit XML, progress lines, Prometheus metrics (a real Prometheus
server scraping the web UI's /chaos/metrics), the live Resilience view, all on real locust runs."""

from __future__ import annotations

import html as html_text
import importlib.metadata
import json
import platform
import re
import shutil
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recovery.html import main as render_main
from targets.embedded import end_process, free_port

from .helpers import embedded_report, finish, headless_args, locust, wait_for_output, web_locust, write_profile

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROMETHEUS = shutil.which("prometheus")


def redis_server_version() -> str:
    """What ``redis-server --version`` prints as its version (``v=7.0.15``)."""
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=10, check=True).stdout
    match = re.search(r"\bv=(\S+)", out)
    assert match, out
    return match.group(1)


def chromium_dom(page: Path | str, tmp_path: Path) -> str:
    """The page's DOM after its scripts ran, in headless Chromium (Debian's); bounded in time."""
    assert CHROMIUM, "chromium is not installed (./dev installs it)"
    out = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--window-size=1400,1200",
            "--virtual-time-budget=4000",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri() if isinstance(page, Path) else page,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    console = [line for line in out.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console  # no console message at all: no error, no warning
    return out.stdout


def test_a_headless_run_writes_the_html_report_junit_and_progress_and_serves_metrics(tmp_path: Path) -> None:
    # What this checks is what the run writes, not how fast clients recover: under the suite's load one
    # client_kill once took 2.17 s to recover (redis-py's backoff), over ci.yaml's 2 s.
    relaxed = {"max_recovery_p95_s": None}
    profile = write_profile(tmp_path / "p.yaml", {"chaos": {"count": 3, "every_s": 2.5}, "slo": relaxed})
    report_path, html, junit = tmp_path / "r.json", tmp_path / "r.html", tmp_path / "r.xml"
    port = free_port()
    proc = locust(
        headless_args(
            10,
            "12s",
            "--resilience-profile",
            str(profile),
            "--resilience-report",
            str(report_path),
            "--resilience-html",
            str(html),
            "--resilience-junit",
            str(junit),
            "--resilience-metrics-port",
            str(port),
        )
    )
    head = wait_for_output(proc, r"^fault 1 \w+: ", 40)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        live = response.read().decode()
    out = head + finish(proc, timeout=90)
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r'^redis_resilience_faults_total\{fault="\w+",outcome="injected"\} [1-9]', live, re.M), live
    report = json.loads(report_path.read_text())
    faults = report["faults"]
    assert len(faults) == 3
    # progress: one line per fault, as its window closed
    lines = re.findall(r"^fault (\d+) (\w+): (\d+) failed, (recovered in [\d.]+ s|NOT recovered)", out, re.M)
    assert [(int(i), n) for i, n, *_ in lines] == [(f["id"], f["name"]) for f in faults], lines
    # the HTML: self-contained, its data the report's
    page = html.read_text()
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", page), "an external script or stylesheet"
    data = embedded_report(page)
    assert data["faults"] == faults and data["summary"] == report["summary"] and data["slo"] == report["slo"]
    timeline = report["timeline"]
    assert sum(timeline["types"]["REDIS"]["requests"]) == report["summary"]["requests"]
    assert sum(timeline["types"]["REDIS"]["failures"]) == report["summary"]["failures"]
    assert max(u or 0 for u in timeline["users"]) == 10 and timeline["witness_outage_ms"] is not None
    # what ran: this venv's versions, the profile's client, the embedded server's INFO
    environment, server = report["environment"], redis_server_version()
    tools = ("locust", "gevent", "redis", "hiredis")
    assert {k: environment[k] for k in tools} == {k: importlib.metadata.version(k) for k in tools}, environment
    assert environment["python"] == platform.python_version()
    client_env = {"implementation": "redis-py", "parser": "hiredis", "connection": "pooled"}
    assert environment["client"] == {**client_env, "maint_notifications": "auto"}
    port = re.search(r"redis://127\.0\.0\.1:(\d+)/", report["target"])
    assert port, report["target"]
    assert environment["servers"] == [{"node": f"127.0.0.1:{port.group(1)}", "server": "redis", "version": server}]
    versions = f"redis-py {environment['redis']} + hiredis {environment['hiredis']} → redis {server}"
    printed = out.splitlines()
    title = next(i for i, line in enumerate(printed) if "Redis resilience report (run" in line)
    assert printed[title + 1] == versions, out[-3000:]  # the console's header, under its title
    dom = chromium_dom(html, tmp_path)
    assert 'data-ready="1"' in dom, dom[:2000]  # its script ran to the end
    header = re.search(r"<header>.*?</header>", dom, re.S)
    shown = re.search(r'<div id="versions"[^>]*>([^<]*)</div>', header.group(0) if header else "")
    assert shown and html_text.unescape(shown.group(1)) == versions, dom[:2000]  # the page's header says it too
    sizes = re.findall(r'<canvas width="(\d+)" height="(\d+)"', dom)
    assert len(sizes) == 3 and all(int(w) > 300 and int(h) > 100 for w, h in sizes), sizes
    # JUnit: a testcase per SLO and per fault, failures where they failed
    root = ET.parse(junit).getroot()
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    slo, fault_suite = suites["redis-resilience SLOs"], suites["redis-resilience faults"]
    assert len(slo.findall("testcase")) == len(report["slo"]) == int(slo.get("tests", "-1"))
    assert len(fault_suite.findall("testcase")) == len(faults)
    assert int(slo.get("failures", "-1")) == sum(1 for s in report["slo"] if not s["ok"])


def test_the_report_command_renders_a_saved_report_and_refuses_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = {
        "schema": "redis-resilience/report/v1",
        "run_id": "x1",
        "profile": "p",
        "target": "t",
        "mode": "local",
        "started_at": 0,
        "duration_s": 1,
        "faults": [],
        "summary": {
            "requests": 0,
            "failures": 0,
            "faults_recovered": 0,
            "faults_injected": 0,
            "hidden_retries": 0,
            "lost_writes": 0,
        },
        "slo": [],
        "verdict": "pass",
        "exit_code": 0,
        "integrity": {},
        "timeline": None,
    }
    saved = tmp_path / "r.json"
    saved.write_text(json.dumps({**report, "target": "</script><script>alert(1)</script>"}))
    assert render_main([str(saved), "-o", str(tmp_path / "out.html")]) == 0
    page = (tmp_path / "out.html").read_text()
    assert embedded_report(page)["target"] == "</script><script>alert(1)</script>"  # data, never markup
    assert '<div id="versions" title="what ran: the client, its parser, the server">versions not recorded' in page
    (tmp_path / "bad.json").write_text("{not json")
    assert render_main([str(tmp_path / "bad.json")]) == 2
    assert render_main([str(tmp_path / "missing.json")]) == 2
    (tmp_path / "other.json").write_text(json.dumps({"schema": "something/else"}))
    assert render_main([str(tmp_path / "other.json")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("redis-resilience-report: ") for line in err), err
    assert "not JSON" in err[0] and "cannot read it" in err[1] and "not a redis-resilience report" in err[2]


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real Prometheus server on a free loopback port; its config is written by the test (reloaded on SIGHUP)."""
    assert PROMETHEUS, "prometheus is not installed (./dev installs it)"
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1s}\nscrape_configs: []\n")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "prometheus did not get ready"
        time.sleep(0.2)
    yield url, config
    end_process(proc)


def query(url: str, promql: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v1/query?query={urllib.request.quote(promql)}", timeout=10) as response:
        return list(json.loads(response.read())["data"]["result"])


def test_prometheus_scrapes_the_web_uis_metrics_and_the_resilience_view_is_live(
    tmp_path: Path, prometheus: tuple[str, Path]
) -> None:
    prom_url, config = prometheus
    profile = write_profile(
        tmp_path / "p.yaml", {"chaos": {"every_s": 2, "start_after_s": 1.5}, "slo": {"max_recovery_p95_s": None}}
    )
    with web_locust(["-u", "5", "-r", "5", "--resilience-profile", str(profile)], tmp_path / "r.json") as run:
        config.write_text(
            "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: pack\n    metrics_path: /chaos/metrics\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{run.port}']}}]\n"
        )
        with urllib.request.urlopen(urllib.request.Request(f"{prom_url}/-/reload", method="POST"), timeout=10):
            pass
        run.status_when(lambda s: s["faults"]["count"] >= 2, 40, "two faults")
        code, page = run.call("/chaos/resilience")
        assert code == 200 and 'data-live="report.json"' in page and embedded_report(page)["verdict"] == "running"
        dom = chromium_dom(f"{run.base}/chaos/resilience", tmp_path)  # the live view in a browser
        assert 'data-ready="1"' in dom and "RUNNING (live, every 2 s)" in dom, dom[:2000]
        assert len(re.findall(r'<canvas width="[1-9]\d+" height="[1-9]\d+"', dom)) == 3
        code, live = run.call("/chaos/report.json")
        assert code == 200 and live["verdict"] == "running" and len(live["faults"]) >= 2
        code, stats = run.call("/stats/requests")
        rows = stats["extended_stats"][0]["data"]
        assert stats["extended_stats"][0]["key"] == "resilience" and len(rows) >= 2, stats["extended_stats"]
        report = run.stop()
        injected = sum(1 for f in report["faults"] if f["ok"])
        promql = 'sum(redis_resilience_faults_total{outcome="injected"})'
        want = ([float(injected)], [1.0 if report["verdict"] == "pass" else 0.0])
        deadline = time.monotonic() + 20
        got: tuple[list[float], list[float]] = ([], [])
        while time.monotonic() < deadline:  # scraped each second: the test's end shows within a few
            values = [[float(r["value"][1]) for r in query(prom_url, q)] for q in (promql, "redis_resilience_verdict")]
            got = (values[0], values[1])
            if got == want:
                break
            time.sleep(0.5)
        assert got == want, (got, want)


def test_progress_text_says_failures_and_recovery_per_type() -> None:
    from chaos.roles.scheduling import progress_text

    from .helpers import window

    redis_side = window(1, failures=3, recovery=0.025)
    http_side = window(1, failures=2, recovery=None)
    http_side.request_type = "HTTP"
    assert progress_text([redis_side]) == "3 failed, recovered in 0.025 s"
    assert progress_text([redis_side, http_side]) == "5 failed, NOT recovered (HTTP not recovered, REDIS 0.025 s)"


def test_a_remote_pushgateway_needs_the_opt_in() -> None:
    from .helpers import refused_at_setup

    line = refused_at_setup(
        ["--resilience-profile", "config/ci.yaml", "--resilience-pushgateway", "http://10.1.2.3:9091"]
    )
    assert "--resilience-pushgateway: 10.1.2.3 is not a loopback address" in line, line


PUSHGATEWAY = shutil.which("prometheus-pushgateway")


def test_a_short_run_pushes_its_metrics_to_a_pushgateway_and_progress_can_be_off(tmp_path: Path) -> None:
    """A real Pushgateway (Debian's) on a free loopback port; the run pushes once, at its end."""
    assert PUSHGATEWAY, "prometheus-pushgateway is not installed (./dev installs it)"
    port = free_port()
    gateway = subprocess.Popen(
        [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        profile = write_profile(
            tmp_path / "p.yaml", {"chaos": {"count": 2, "every_s": 2}, "slo": {"max_recovery_p95_s": None}}
        )
        report_path = tmp_path / "r.json"
        proc = locust(
            headless_args(
                5,
                "8s",
                "--resilience-profile",
                str(profile),
                "--resilience-report",
                str(report_path),
                "--resilience-pushgateway",
                f"http://127.0.0.1:{port}",
                "--no-resilience-progress",
            )
        )
        out = finish(proc, timeout=60)
        assert proc.returncode == 0, out[-3000:]
        assert not re.search(r"^fault \d+ ", out, re.M)  # progress off
        report = json.loads(report_path.read_text())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            pushed = response.read().decode()
        injected = re.findall(
            r'^redis_resilience_faults_total\{fault="\w+",instance="",job="redis-resilience",'
            r'outcome="injected"\} (\d+)',
            pushed,
            re.M,
        )
        assert sum(int(n) for n in injected) == len(report["faults"]) == 2, pushed[:3000]
        assert re.search(r'^redis_resilience_verdict\{instance="",job="redis-resilience"\} 1$', pushed, re.M)
    finally:
        end_process(gateway)
