"""JUnit XML of a report, for CI systems (GitHub Actions, GitLab, Jenkins): one testcase per SLO (its
failure message the breach line) and one per fault (a failure when it failed to inject or did not
recover), built from the JSON report alone."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recovery.report import write_atomically


@dataclass(frozen=True)
class Case:
    """One testcase: a failure (its message) or a pass; ``time_s`` when it has a duration."""

    name: str
    classname: str
    failure: str | None = None
    kind: str = "failure"  # the failure's type
    time_s: float | None = None


def suite(name: str, cases: list[Case], properties: dict[str, str] | None = None) -> ET.Element:
    """A ``<testsuite>`` of ``cases``, with its counts (the one JUnit builder of every command)."""
    element = ET.Element("testsuite", name=name)
    if properties:
        props = ET.SubElement(element, "properties")
        for key, value in properties.items():
            ET.SubElement(props, "property", name=key, value=value)
    for c in cases:
        case = ET.SubElement(element, "testcase", name=c.name, classname=c.classname)
        if c.time_s is not None:
            case.set("time", f"{c.time_s:.3f}")
        if c.failure is not None:
            ET.SubElement(case, "failure", message=c.failure, type=c.kind).text = c.failure
    element.set("tests", str(len(cases)))
    element.set("failures", str(sum(1 for c in cases if c.failure is not None)))
    element.set("errors", "0")
    return element


def xml_text(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _fault_failure(f: dict[str, Any]) -> str | None:
    if not f["ok"]:
        return f"fault #{f['id']} {f['name']} failed to inject: {f.get('error')}"
    if f.get("recovered") is False and not f.get("truncated"):
        return f"fault #{f['id']} {f['name']}: not recovered within its {f.get('window_s')} s window"
    return None


def junit_xml(report: dict[str, Any]) -> str:
    slos = [
        Case(
            s["name"],
            "slo",
            None if s["ok"] else s.get("message") or f"SLO BREACHED {s['name']}: {s['value']} (limit {s['limit']})",
            time_s=0.0,
        )
        for s in report["slo"]
    ]
    faults = [
        Case(
            f"#{f['id']} {f['name']} at +{f['offset_s']} s",
            f"fault.{f['name']}",
            _fault_failure(f),
            time_s=float(f.get("recovery_s") or 0.0),
        )
        for f in report["faults"]
    ]
    root = ET.Element("testsuites", name=f"redis-resilience run {report['run_id']}")
    parts = [suite("redis-resilience SLOs", slos), suite("redis-resilience faults", faults)]
    root.extend(parts)
    root.set("tests", str(sum(int(s.get("tests", "0")) for s in parts)))
    root.set("failures", str(sum(int(s.get("failures", "0")) for s in parts)))
    return xml_text(root)


def write_junit(report: dict[str, Any], path: str | Path) -> None:
    write_atomically(path, junit_xml(report))
