"""The HTML resilience report: one self-contained file built from the JSON report alone.

``render(report)`` gives the page: the report embedded as JSON, uPlot (vendored under
``recovery/static/uplot``, MIT, its licence beside it) and the page's own script and style inlined, so
it opens with no network. The header's line of what ran is the console's (``versions_line``), written in
the page here (it does not change while a live page redraws). ``--resilience-html PATH`` writes the page
at the end of each test, and ``redis-resilience-report report.json -o report.html`` renders a saved
report (exit 2 and one line on bad input).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from pathlib import Path
from typing import Any

from recovery.environment import versions_line
from recovery.report import ReportError, read_report, write_atomically

STATIC = Path(__file__).resolve().parent / "static"

STYLE = (STATIC / "report.css").read_text(encoding="utf-8")  # the reports' style (the matrix's and trend's too)
PAGE = (STATIC / "report.html").read_text(encoding="utf-8")  # the page; its placeholders filled by render()


def _inline_json(data: Any) -> str:
    """JSON safe inside a <script> element (no "</" to end it early)."""
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/").replace("<!--", "<\\!--")


def render(report: dict[str, Any], live_url: str = "") -> str:
    """The self-contained page of a JSON report; with ``live_url``, the page fetches the report from there
    every 2 s and draws it again (the web UI's live Resilience view)."""
    parts = {
        "__LIVE__": live_url.replace('"', "%22"),
        "__TITLE__": html.escape(str(report.get("run_id", ""))),
        "__VERSIONS__": html.escape(versions_line(report.get("environment"))),
        "__UPLOT_CSS__": (STATIC / "uplot" / "uPlot.min.css").read_text(encoding="utf-8"),
        "__STYLE__": STYLE,
        "__DATA__": _inline_json(report),
        "__UPLOT_JS__": (STATIC / "uplot" / "uPlot.iife.min.js").read_text(encoding="utf-8"),
        "__APP_JS__": (STATIC / "report.js").read_text(encoding="utf-8"),
    }
    # One pass over the template: what is put in (the report's text among it) is never searched again.
    return re.sub("|".join(parts), lambda match: parts[match.group(0)], PAGE)


def write_html(report: dict[str, Any], path: str | Path) -> None:
    write_atomically(path, render(report))


def main(argv: list[str] | None = None) -> int:
    """``redis-resilience-report report.json -o report.html``."""
    parser = argparse.ArgumentParser(
        prog="redis-resilience-report", description="Render a redis-resilience JSON report as one HTML page."
    )
    parser.add_argument("report", help="the JSON report (--resilience-report)")
    parser.add_argument("-o", "--output", help="the HTML file to write (default: the report's name, .html)")
    args = parser.parse_args(argv)
    output = args.output or str(Path(args.report).with_suffix(".html"))
    try:
        write_html(read_report(args.report), output)
    except ReportError as exc:
        sys.stderr.write(f"redis-resilience-report: {exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"redis-resilience-report: cannot write {output}: {exc.strerror or exc}\n")
        return 2
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
