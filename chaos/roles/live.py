"""The run as it stands, for what watches it live: the web UI's Resilience view and Prometheus.

A live report is the report built now from what this node has (recovery/report.py, the same code as
the final one), its verdict ``running``; between tests, the last test's report. Prometheus metrics
(recovery/metrics.py) are computed from it at each scrape, on the web UI's ``/chaos/metrics``, on
``--resilience-metrics-port`` (loopback) and, at the end of each test, pushed to
``--resilience-pushgateway``. A master's live figures are its workers' closed windows as they arrive;
their per-second series and counts outside windows join at the test's end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import push_to_gateway, start_http_server
from prometheus_client.registry import CollectorRegistry

from chaos.settings import SetupError
from config.hosts import LoopbackRequired, parse_hosts, require_loopback_or_opt_in
from config.redact import redact_url
from recovery.metrics import registry_of
from recovery.outcome import Outcome, make_report
from recovery.report import ReportInputs
from recovery.results import NodeResult

logger = logging.getLogger("redis_resilience")


@dataclass(frozen=True)
class Measured:
    """What a role has measured of a test: the result, and on a master its workers' side of it."""

    result: NodeResult
    workers: dict[str, Any] | None = None  # the report's ``workers``
    missing_by_fault: dict[int, list[str]] | None = None  # the workers that sent no window of each fault


class Watched(Protocol):
    """What the live view needs of the role that reports (local or master)."""

    test: Any
    outcome: Outcome

    def live_measured(self, test: Any) -> Measured: ...

    def report_inputs(
        self, test: Any, measured: Measured, at_end: bool, with_timeline: bool = True
    ) -> ReportInputs: ...

    def status(self) -> dict[str, Any]: ...


def live_report(role: Watched, with_timeline: bool = True) -> dict[str, Any] | None:
    """The running test's report as it stands (verdict ``running``); else the last test's; None before any.
    It is made as the final one is (:func:`make_report`) from what the role has now. Without the timeline it
    is cheap whatever the run's length (the stats poll's Resilience tab)."""
    test = role.test
    if test is None:
        return role.outcome.report
    inputs = role.report_inputs(test, role.live_measured(test), at_end=False, with_timeline=with_timeline)
    report, _ = make_report(inputs, with_timeline)
    report["verdict"] = "running"
    return report


def snapshot(role: Watched) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the live report, the run's connections) for a scrape."""
    return live_report(role, with_timeline=False), role.status().get("connections")


class Metrics:
    """The role's Prometheus registry, its own loopback server (headless runs) and the push at the end."""

    def __init__(self, role: Watched, port: int | None, pushgateway: str | None, allow_remote: bool) -> None:
        if pushgateway is not None:
            url = _pushgateway_url(pushgateway)
            opt_in = "Pushing metrics off this machine needs --allow-remote-chaos"
            try:
                if not allow_remote:
                    require_loopback_or_opt_in(url, opt_in, "--resilience-pushgateway")
            except LoopbackRequired as exc:
                raise SetupError(str(exc)) from None
        self.registry: CollectorRegistry = registry_of(lambda: snapshot(role))
        self.pushgateway = pushgateway
        self.server: Any = None
        if port is not None:
            try:
                self.server, _thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
            except OSError as exc:
                raise SetupError(f"--resilience-metrics-port {port}: cannot listen on 127.0.0.1: {exc}") from None
            logger.info("redis-resilience: Prometheus metrics on http://127.0.0.1:%d/metrics", port)

    def push(self) -> None:
        """The metrics as the test ended, to the Pushgateway (a failure is logged, never fatal)."""
        if self.pushgateway is None:
            return
        try:
            push_to_gateway(self.pushgateway, job="redis-resilience", registry=self.registry, timeout=5)
        except Exception as exc:  # the run's verdict stands; the push is a copy
            logger.error("redis-resilience: could not push the metrics to %s: %s", redact_url(self.pushgateway), exc)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _pushgateway_url(pushgateway: str) -> str:
    """``--resilience-pushgateway`` as ``push_to_gateway`` reads it (``HOST:PORT`` is ``http://HOST:PORT``);
    SetupError when it names no http(s) host."""
    url = pushgateway if "://" in pushgateway else f"http://{pushgateway}"
    try:
        hosts = parse_hosts(url)
    except ValueError:
        hosts = []
    if not hosts or not url.lower().startswith(("http://", "https://")):
        raise SetupError(f"--resilience-pushgateway: expected http(s)://HOST:PORT, got {redact_url(pushgateway)!r}")
    return url
