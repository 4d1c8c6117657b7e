"""JUnit XML of a report, for CI systems (GitHub Actions, GitLab, Jenkins): one testcase per SLO (its
failure message the breach line) and one per fault (a failure when it failed to inject or did not
recover), built from the JSON report alone."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from recovery.report import write_atomically


def _case(suite: ET.Element, name: str, classname: str, failure: str | None, time_s: float = 0.0) -> None:
    case = ET.SubElement(suite, "testcase", name=name, classname=classname, time=f"{time_s:.3f}")
    if failure is not None:
        ET.SubElement(case, "failure", message=failure, type="failure").text = failure


def _fault_failure(f: dict[str, Any]) -> str | None:
    if not f["ok"]:
        return f"fault #{f['id']} {f['name']} failed to inject: {f.get('error')}"
    if f.get("recovered") is False and not f.get("truncated"):
        return f"fault #{f['id']} {f['name']}: not recovered within its {f.get('window_s')} s window"
    return None


def junit_xml(report: dict[str, Any]) -> str:
    root = ET.Element("testsuites", name=f"redis-resilience run {report['run_id']}")
    slo = ET.SubElement(root, "testsuite", name="redis-resilience SLOs")
    for s in report["slo"]:
        message = s.get("message") or f"SLO BREACHED {s['name']}: {s['value']} (limit {s['limit']})"
        _case(slo, s["name"], "slo", None if s["ok"] else message)
    faults = ET.SubElement(root, "testsuite", name="redis-resilience faults")
    for f in report["faults"]:
        name = f"#{f['id']} {f['name']} at +{f['offset_s']} s"
        _case(faults, name, f"fault.{f['name']}", _fault_failure(f), float(f.get("recovery_s") or 0.0))
    for suite in (slo, faults):
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        suite.set("errors", "0")
    root.set("tests", str(sum(int(s.get("tests", "0")) for s in (slo, faults))))
    root.set("failures", str(sum(int(s.get("failures", "0")) for s in (slo, faults))))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(report: dict[str, Any], path: str | Path) -> None:
    write_atomically(path, junit_xml(report))
