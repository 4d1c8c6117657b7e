"""Wiring into Locust. The ONLY module that touches ``locust.events`` and the command line.

Importing it (the locustfile does) adds the pack's options and, at ``init``, builds one role object
for the process, chosen once by its runner, and connects Locust's events to it:

- local (chaos/roles/local.py): schedules faults, tracks its own requests, checks integrity,
  reports, sets the exit code.
- master (chaos/distributed/master.py): schedules faults (server-side ones run here;
  ``traffic_nodes`` ones are run by every worker, and acknowledged), tells workers of every window,
  merges their figures, reports and sets the exit code. It makes no Redis traffic of its own.
- worker (chaos/distributed/worker.py): makes the traffic, tracks its own requests per window,
  checks its own acknowledged writes, and sends its figures to the master. It never schedules.

On the local or master node the role's construction validates the profile, starts the embedded
server and checks the target, all before any user spawns; bad input ends the process with one line
and exit 2. Used as a library (no parsed options), call :func:`attach_pack` yourself.
"""

from __future__ import annotations

from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

import sys
from typing import Any

from chaos.distributed.master import MasterRole
from chaos.distributed.worker import WorkerRole
from chaos.events import install_events
from chaos.roles.base import Role
from chaos.roles.local import LocalRole
from chaos.settings import SERVICE_ENV, SERVICE_FLAG, URL_ENV, URL_FLAG, Settings, SetupError
from chaos.webui import install as install_web_ui
from config.loader import DEFAULT_PROFILE
from recovery.verdict import EXIT_BAD_INPUT


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_: Any) -> None:
    group = parser.add_argument_group(
        "redis-resilience", "Redis traffic under injected faults, measured recovery and an SLO verdict"
    )
    group.add_argument(
        "--resilience-profile",
        metavar="PATH",
        default=str(DEFAULT_PROFILE),
        env_var="RESILIENCE_PROFILE",
        help="YAML profile: target, client options, workload mix, chaos schedule, SLOs (default: config/default.yaml)",
    )
    group.add_argument(
        URL_FLAG,
        metavar="URL",
        default=None,
        env_var=URL_ENV,
        help="Redis to test (redis:// or rediss://); overrides the profile's target.url. On a worker on "
        "another host than the master: the address of that Redis as this worker reaches it. "
        "A REDIS_URL in the environment is not read",
    )
    group.add_argument(
        "--resilience-report",
        metavar="PATH",
        default=None,
        env_var="RESILIENCE_REPORT",
        help="Write the JSON report here at the end of each test",
    )
    group.add_argument(
        "--resilience-html",
        metavar="PATH",
        default=None,
        env_var="RESILIENCE_HTML",
        help="Write the report as one self-contained HTML page (timeline, faults, SLOs) at the end of each test",
    )
    group.add_argument(
        "--resilience-junit",
        metavar="PATH",
        default=None,
        env_var="RESILIENCE_JUNIT",
        help="Write JUnit XML (a testcase per SLO and per fault) at the end of each test",
    )
    group.add_argument(
        "--no-resilience-progress",
        action="store_true",
        default=False,
        env_var="RESILIENCE_NO_PROGRESS",
        help="Headless: no line per fault as its window closes",
    )
    group.add_argument(
        "--resilience-metrics-port",
        metavar="PORT",
        type=int,
        default=None,
        env_var="RESILIENCE_METRICS_PORT",
        help="Serve Prometheus metrics on this loopback port (headless runs; with the web UI they are at "
        "/chaos/metrics too)",
    )
    group.add_argument(
        "--resilience-pushgateway",
        metavar="URL",
        default=None,
        env_var="RESILIENCE_PUSHGATEWAY",
        help="Push the metrics to this Prometheus Pushgateway at the end of each test (loopback unless "
        "--allow-remote-chaos)",
    )
    group.add_argument(
        "--no-chaos",
        action="store_true",
        default=False,
        env_var="RESILIENCE_NO_CHAOS",
        help="Baseline run: the same traffic and report, no faults",
    )
    group.add_argument(
        "--allow-remote-chaos",
        action="store_true",
        default=False,
        env_var="RESILIENCE_ALLOW_REMOTE_CHAOS",
        help="Allow faults against a target that is not on loopback (also the profile's chaos.allow_remote); "
        "without it such a run stops before any user spawns",
    )
    group.add_argument(
        SERVICE_FLAG,
        metavar="URL",
        default=None,
        env_var=SERVICE_ENV,
        help="The Redis-backed HTTP service the profile's service users call (http:// or https://); overrides "
        "service.url. Its Redis is the target (--redis-url)",
    )
    group.add_argument(
        "--allow-remote-service",
        action="store_true",
        default=False,
        env_var="RESILIENCE_ALLOW_REMOTE_SERVICE",
        help="Allow a service URL that is not on loopback (also the profile's service.allow_remote)",
    )


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    if environment.parsed_options is None:
        return  # used as a library: call attach_pack(environment, Settings(...)) yourself
    try:
        attach_pack(environment, Settings.from_options(environment.parsed_options))
    except SetupError as exc:
        sys.stderr.write(f"redis-resilience: {exc}\n")
        sys.exit(EXIT_BAD_INPUT)


def attach_pack(environment: Environment, settings: Settings) -> Role[Any]:
    """The pack on this process: its role, built by the runner type, and every listener it needs.

    :class:`~chaos.settings.SetupError` (one line) when the target or profile cannot be used.
    """
    pack_events = install_events(environment.events)
    runner = environment.runner
    role: Role[Any]
    if isinstance(runner, WorkerRunner):
        role = WorkerRole(environment, settings, pack_events, runner)
    else:
        chaos_role = (
            MasterRole(environment, settings, pack_events, runner)
            if isinstance(runner, MasterRunner)
            else LocalRole(environment, settings, pack_events)
        )
        chaos_role.signals.install()
        if environment.web_ui is not None:  # resets on demand and the status, on the web UI
            base_path = getattr(environment.parsed_options, "web_base_path", None)
            install_web_ui(environment.web_ui, chaos_role, base_path)
        role = chaos_role
    pack_events.fault_started.add_listener(role.on_fault_started)
    environment.events.request.add_listener(role.on_request)
    environment.events.test_start.add_listener(role.on_test_start)
    environment.events.test_stop.add_listener(role.on_test_stop)
    environment.events.quitting.add_listener(role.on_quitting)
    environment.events.quit.add_listener(role.on_quit)
    return role
