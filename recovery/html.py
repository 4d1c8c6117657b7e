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

STYLE = """
:root { --ink: #1c2833; --muted: #5d6d7e; --line: #d5d8dc; --bad: #c0392b; --good: #1e8449; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); margin: 0;
       background: #f4f6f7; }
header { background: #1c2833; color: #fdfefe; padding: 14px 24px; display: flex; flex-wrap: wrap; gap: 8px 24px;
         align-items: baseline; }
header h1 { font-size: 19px; margin: 0; font-weight: 600; }
#facts { display: flex; flex-wrap: wrap; gap: 4px 16px; color: #d5d8dc; font-size: 13px; }
#versions { flex-basis: 100%; color: #fdfefe; font: 13px ui-monospace, "SFMono-Regular", Menlo, monospace; }
.verdict { font-weight: 700; padding: 3px 12px; border-radius: 4px; }
.verdict.pass { background: var(--good); } .verdict.fail { background: var(--bad); }
.verdict.running { background: #2471a3; }
main { padding: 16px 24px 40px; max-width: 1500px; margin: 0 auto; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; margin: 0 0 16px; }
h2 { font-size: 16px; margin: 0 0 8px; display: flex; gap: 12px; align-items: center; }
#totals { display: flex; flex-wrap: wrap; gap: 10px; margin-bottom: 16px; }
.tile { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 130px;
        color: var(--muted); font-size: 12px; }
.tile b { display: block; font-size: 20px; color: var(--ink); }
.tile.bad b { color: var(--bad); }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 4px 8px; border-bottom: 1px solid #eaecee; text-align: left; white-space: nowrap; }
th { color: var(--muted); font-weight: 600; background: #fbfcfc; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.strong { font-weight: 600; }
tr.breach td { background: #fdedec; color: #922b21; font-weight: 600; }
tr.sub td { color: var(--muted); font-size: 12px; border-bottom: 1px dotted #eaecee; }
.warn { color: var(--bad); font-weight: 600; }
.legend-note { color: var(--muted); font-size: 12px; margin: 4px 0 0; }
.swatch { display: inline-block; width: 12px; height: 10px; margin: 0 4px 0 10px; vertical-align: middle; }
button { font: inherit; font-size: 12px; padding: 2px 10px; border: 1px solid var(--line); background: #fbfcfc;
         border-radius: 4px; cursor: pointer; }
.chart { margin: 6px 0 14px; }
.u-title { font-size: 14px !important; font-weight: 600 !important; text-align: left !important; }
.scroll { overflow-x: auto; }
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Resilience report __TITLE__</title>
<style>__UPLOT_CSS__</style><style>__STYLE__</style></head>
<body data-live="__LIVE__">
<header><h1>Redis resilience report</h1><span id="verdict" class="verdict"></span><div id="facts"></div>
<div id="versions" title="what ran: the client, its parser, the server">__VERSIONS__</div></header>
<main>
<div id="notes"></div>
<div id="totals"></div>
<section id="slo-section"><h2>SLOs</h2>
<table id="slo"><thead><tr><th>result</th><th>SLO</th><th class="num">value</th><th class="num">limit</th></tr></thead>
<tbody></tbody></table></section>
<section id="timeline"><h2>Timeline <button id="reset-zoom">whole run</button></h2>
<p class="legend-note">Each fault: a red line at its injection (t0) with its id and name;
<span class="swatch" style="background: rgba(231, 76, 60, 0.35)"></span>until the clients recovered
<span class="swatch" style="background: rgba(243, 156, 18, 0.3)"></span>the rest of its window
<span class="swatch" style="background: rgba(52, 73, 94, 0.45)"></span>how long a sustained fault lasted.
Drag to zoom, double-click to zoom out; hover for values. Click a fault's id below to see its window.</p>
<div id="charts"></div></section>
<section><h2>Faults</h2><div class="scroll"><table id="faults"><thead><tr>
<th>#</th><th>fault</th><th class="num">offset s</th><th class="num">requests</th><th class="num">failures</th>
<th class="num">degraded</th><th class="num">hidden retries</th><th class="num">users affected</th>
<th class="num">per-user recovery p50 / p95 / max s</th><th class="num">outage s</th><th class="num">recovery s</th>
<th class="num">client excess s</th><th class="num">lasted s</th></tr></thead><tbody></tbody></table></div></section>
<section><h2>Integrity: acknowledged writes</h2><table id="integrity"><thead><tr><th>workload</th>
<th class="num">acknowledged</th><th class="num">lost</th><th class="num">duplicated</th>
<th class="num">unacknowledged but applied</th></tr></thead><tbody></tbody></table></section>
</main>
<script id="report-data" type="application/json">__DATA__</script>
<script>__UPLOT_JS__</script>
<script>__APP_JS__</script>
</body></html>
"""


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
