"""The run's outcome, owned by one object: the JSON report, the console lines and the exit code.

The node that reports (local or master) hands it what was measured at the end of each test; a node
that meets bad input (a target, a profile or a worker the pack cannot use) says so. It alone turns
that into the exit code (DESIGN.md, "The verdict is ours"):

- 2: bad input, whatever was measured before;
- 3: an SLO breached, or the test aborted by the pack itself (its figures are no pass);
- 0: every SLO met;
- None: nothing to say yet (no test ended): Locust's own code stands.
"""

from __future__ import annotations

import logging
from typing import Any

from recovery.console import console_lines
from recovery.html import write_html
from recovery.junit import write_junit
from recovery.report import ReportInputs, build_report, compute_figures, write_json
from recovery.results import per_fault
from recovery.verdict import EXIT_BAD_INPUT, EXIT_PASS, EXIT_SLO_BREACHED, SloResult, evaluate

logger = logging.getLogger("redis_resilience")
console = logging.getLogger("locust.stats_logger")  # Locust's own plain console output


def exit_code_for(slo_results: list[SloResult], aborted: str | None = None) -> int:
    """3 when an SLO is breached or the test was aborted, else 0."""
    if aborted is not None or not all(r.ok for r in slo_results):
        return EXIT_SLO_BREACHED
    return EXIT_PASS


def make_report(inputs: ReportInputs, with_timeline: bool = True) -> tuple[dict[str, Any], list[SloResult]]:
    """The report of ``inputs`` and its SLO lines: the one pipeline (figures, verdict, exit code, report), for
    the live views (the web UI, Prometheus) and the end of a test alike. Without the timeline it is
    cheap whatever the run's length."""
    windows = per_fault(inputs.result.windows)  # merged over the request types, once
    figures = compute_figures(
        inputs.records, inputs.result, inputs.missing_workers, inputs.service_health, windows=windows
    )
    slo_results = evaluate(inputs.slo, figures)
    code = exit_code_for(slo_results, inputs.facts.aborted)
    return build_report(inputs, windows, figures, slo_results, code, with_timeline), slo_results


class Outcome:
    """The report of the last test, its console lines, a refusal, and the exit code they make.

    :param report_path: where the JSON report is written at the end of each test (None: nowhere)
    :param html_path: the same as one self-contained HTML page (recovery/html.py)
    :param junit_path: the same as JUnit XML (recovery/junit.py)
    """

    def __init__(
        self, report_path: str | None = None, html_path: str | None = None, junit_path: str | None = None
    ) -> None:
        self.report_path = report_path
        self.html_path, self.junit_path = html_path, junit_path
        self.report: dict[str, Any] | None = None
        self.lines: list[str] = []
        self.printed = False
        self.refusal: str | None = None  # bad input: the first reason
        self.refusal_shown = False

    def conclude(self, inputs: ReportInputs) -> dict[str, Any]:
        """A test ended: its report (written to ``report_path``), its lines and its verdict."""
        report, slo_results = make_report(inputs)
        self.report = report
        self.lines = console_lines(report, slo_results)
        self.printed = False
        for path, write, what in (
            (self.report_path, write_json, "report"),
            (self.html_path, write_html, "HTML report"),
            (self.junit_path, write_junit, "JUnit XML"),
        ):
            if path:
                try:
                    write(report, path)
                except OSError as exc:  # the verdict stands; the file is missing, said once
                    logger.error("redis-resilience: could not write the %s to %s: %s", what, path, exc)
                else:
                    logger.info("redis-resilience: %s written to %s", what, path)
        return report

    def refuse(self, reason: str, shown: bool = False) -> None:
        """Bad input: the run ends with exit code 2. ``shown``: the reason was logged already, don't repeat it."""
        if self.refusal is None:
            self.refusal, self.refusal_shown = reason, shown

    @property
    def exit_code(self) -> int | None:
        if self.refusal is not None:
            return EXIT_BAD_INPUT
        return None if self.report is None else int(self.report["exit_code"])

    def print_report(self) -> None:
        """The report's lines on Locust's console, once per report."""
        if self.report is not None and not self.printed:
            self.printed = True
            for line in self.lines:
                console.info(line)

    def refusal_line(self) -> str | None:
        """The refusal as the last line of a run's output, once (None: nothing to add)."""
        if self.refusal is None or self.refusal_shown:
            return None
        self.refusal_shown = True
        return f"redis-resilience: {self.refusal}\n"
