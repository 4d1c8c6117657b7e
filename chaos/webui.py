"""The pack on Locust's web UI (master or local runner): reset Redis connections on demand, see the status.

Routes, under Locust's ``--web-base-path`` and behind ``--web-login`` like Locust's own:

- ``POST /chaos/redis-reset`` with ``{"force": true}`` and optionally ``"fault": "<name>"`` (default:
  the first registered fault that runs on the traffic nodes, i.e. the load generators' own connection
  reset; see chaos/roles/scheduling.py) injects that fault now through the running test's scheduler:
  it gets a record, the fault events, a window and a report row like a scheduled fault, with ``trigger: "web"``.
  200 ``{fault_id, name, trigger, params, offset_s, ok, details, error}`` once the injection returned
  (a failed injection is a record with its ``error``, as in the report); 400 ``{error}`` for a bad body
  (``force`` not true) or an unknown fault; 409 ``{error}`` when no test runs or a fault is active.
- ``GET /chaos/status``: :meth:`ChaosControl.status` as JSON.
- ``GET /chaos/panel.js``: the panel's script.

The button: Locust 2.4x's React UI takes extensions as ``extended_tabs``, which render tables only
(no controls), and its ``template_args`` reach the page as JSON, never as markup. So the lightest way
that does not fork the UI is an ``after_request`` hook on Locust's Flask app that adds a small panel
(outside React's ``#root``, so React leaves it alone) and one ``<script>`` tag to Locust's own index
page: a button that POSTs the reset with ``force`` and a line of status polled from ``/chaos/status``.
"""

from __future__ import annotations

from locust.web import WebUI

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from flask import Blueprint, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from chaos.scheduler import FaultConflict, FaultRecord
from recovery.html import render


class ChaosControl(Protocol):
    """What the web UI needs of the role that runs the chaos (local or master)."""

    def reset_now(self, fault: str | None = None) -> FaultRecord:
        """Inject ``fault`` (None: the default) now; ``ValueError`` (400) or :class:`FaultConflict` (409)."""
        ...

    def status(self) -> dict[str, Any]:
        """The test, its faults and the run's connections, as JSON-ready data (never raises)."""
        ...

    def live_report(self, with_timeline: bool = True) -> dict[str, Any] | None:
        """The report as it stands (verdict ``running`` during a test), or the last one; None before any."""
        ...

    def shown_report(self) -> dict[str, Any]:
        """The live report, or before the first test the report pipeline's own, empty (verdict ``running``)."""
        ...

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """The run's Prometheus metrics (chaos/roles/live.py)."""
        ...


RESILIENCE_TAB = "resilience"
RESILIENCE_COLUMNS = (
    ("id", "#"),
    ("fault", "fault"),
    ("offset_s", "offset s"),
    ("requests", "requests"),
    ("failures", "failures"),
    ("hidden_retries", "hidden retries"),
    ("outage_s", "outage s"),
    ("recovery_s", "recovery s"),
    ("by_type", "recovery by type"),
)


def resilience_rows(report: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The Resilience tab's table: a row per fault of the live report."""
    rows = []
    running = (report or {}).get("verdict") == "running"
    for f in (report or {}).get("faults", []):
        recovery = f.get("recovery_s")
        if not f["ok"]:
            shown = "FAILED"
        elif recovery is not None:
            shown = f"{recovery:.3f}"
        elif "recovered" not in f or (running and f.get("truncated")):
            shown = "open"  # its window has not closed yet
        else:
            shown = "cut short" if f.get("truncated") else "not recovered"
        typed = ", ".join(
            f"{t} {w['recovery_s']:.3f}" if w.get("recovery_s") is not None else f"{t} -"
            for t, w in sorted((f.get("by_type") or {}).items())
        )
        rows.append(
            {
                "id": f["id"],
                "fault": f["name"] if f.get("trigger", "schedule") == "schedule" else f"{f['name']} (web)",
                "offset_s": f"{f['offset_s']:.1f}",
                "requests": f.get("requests", 0),
                "failures": f.get("failures", 0),
                "hidden_retries": f.get("hidden_retries", 0),
                "outage_s": "-" if f.get("outage_s") is None else f"{f['outage_s']:.3f}",
                "recovery_s": shown,
                "by_type": typed or "-",
            }
        )
    return rows


BODY_KEYS = frozenset({"force", "fault"})

STATIC = Path(__file__).parent / "static"  # the panel's markup and script, as files (package data)
PANEL_HTML = (STATIC / "panel.html").read_text(encoding="utf-8")
PANEL_JS = (STATIC / "panel.js").read_text(encoding="utf-8")


def record_json(record: FaultRecord) -> dict[str, Any]:
    """A fault record as the reset answers it."""
    return {
        "fault_id": record.fault_id,
        "name": record.name,
        "trigger": record.trigger,
        "params": record.params,
        "offset_s": round(record.offset_s, 3),
        "ok": record.ok,
        "details": record.details,
        "error": record.error,
    }


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"error": message}), status


def reset_fault(body: Any) -> str | None:
    """The fault a reset request names (None: the default); ``ValueError`` for a bad body."""
    if not isinstance(body, dict):
        raise ValueError('expected a JSON object body, e.g. {"force": true}')
    unknown = sorted(set(body) - BODY_KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}: expected force and, optionally, fault")
    if body.get("force") is not True:
        raise ValueError('"force": true is required: this resets live Redis connections of the running test')
    fault = body.get("fault")
    if fault is not None and not isinstance(fault, str):
        raise ValueError('"fault" must be a fault name (a string)')
    return fault


def install(web_ui: WebUI, control: ChaosControl, base_path: str | None = None) -> None:
    """Add the routes and the panel to Locust's web UI (before it starts serving), under ``--web-base-path``."""
    app = web_ui.app
    assert app is not None
    base = (base_path or "").rstrip("/")
    chaos = Blueprint("redis_resilience", __name__, url_prefix=f"{base}/chaos")

    def route(rule: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
        def register(view: Callable[..., Any]) -> Any:
            return chaos.route(rule, **options)(web_ui.auth_required_if_enabled(view))

        return register

    @route("/redis-reset", methods=["POST"])
    def redis_reset() -> tuple[Response, int]:
        try:
            fault = reset_fault(request.get_json(force=True, silent=True))
        except ValueError as exc:
            return _error(400, str(exc))
        try:
            record = control.reset_now(fault)
        except ValueError as exc:
            return _error(400, str(exc))
        except FaultConflict as exc:
            return _error(409, str(exc))
        return jsonify(record_json(record)), 200

    @route("/status")
    def status() -> Response:
        return jsonify(control.status())

    @route("/panel.js")
    def panel_js() -> Response:
        return Response(PANEL_JS, mimetype="text/javascript")

    @route("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(control.metrics_registry), mimetype=CONTENT_TYPE_LATEST)

    @route("/report.json")
    def report_json() -> Response:
        return jsonify(control.shown_report())

    @route("/resilience")
    def resilience() -> Response:
        """The live Resilience view: the HTML report of the run as it stands, drawn again every 2 s."""
        page = render(control.shown_report(), live_url="report.json")
        at = page.rfind("</body>")  # the panel (the reset button, the status) here too, its links beside it
        panel = PANEL_HTML.replace('href="./chaos/resilience"', 'href="resilience"').replace("./chaos/", "./")
        return Response(page[:at] + panel + page[at:], mimetype="text/html")

    app.register_blueprint(chaos)
    # The Resilience tab among Locust's own (its extension point: a tab is a table whose rows come with the
    # stats it polls); its full view, with the timeline, is /chaos/resilience, linked from the panel.
    web_ui.template_args["extended_tabs"] = [{"title": "Resilience", "key": RESILIENCE_TAB}]
    web_ui.template_args["extended_tables"] = [
        {"key": RESILIENCE_TAB, "structure": [{"key": key, "title": title} for key, title in RESILIENCE_COLUMNS]}
    ]

    @app.after_request
    def add_resilience_rows(response: Response) -> Response:
        """Locust's stats poll, with the Resilience tab's rows."""
        if request.endpoint != "locust.request_stats" or response.status_code != 200 or not response.is_json:
            return response
        data = response.get_json()
        if isinstance(data, dict):
            rows = resilience_rows(control.live_report(with_timeline=False))
            data["extended_stats"] = [{"key": RESILIENCE_TAB, "data": rows}]
            response.set_data(json.dumps(data))
        return response

    @app.after_request
    def add_panel(response: Response) -> Response:
        """Locust's own page, with the panel before ``</body>``."""
        if request.endpoint != "locust.index" or response.status_code != 200 or response.mimetype != "text/html":
            return response
        page = response.get_data(as_text=True)
        at = page.rfind("</body>")
        if at >= 0:
            response.set_data(page[:at] + PANEL_HTML + page[at:])
        return response
