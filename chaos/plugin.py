"""Wiring into Locust. The ONLY module that touches ``locust.events`` and the command line.

Importing it (the locustfile does) adds the pack's options and, at ``init``, builds a
:class:`ResiliencePack` for the environment: profile validated, target reachable, embedded
server started, before any user spawns. Bad input ends the process with one line and exit 2.
"""

from __future__ import annotations

from locust import events
from locust import log as locust_log
from locust.env import Environment
from locust.runners import STATE_STOPPED, MasterRunner, WorkerRunner

import atexit
import contextlib
import logging
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import gevent
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from chaos.embedded import EmbeddedRedis, EmbeddedRedisError
from chaos.events import ResilienceEvents, install_events
from chaos.faults import FaultTarget
from chaos.report import RunFacts, build_report, compute_figures, console_lines, write_json
from chaos.scheduler import ChaosScheduler
from chaos.tracker import RecoveryTracker, WindowSummary
from chaos.verdict import EXIT_BAD_INPUT, evaluate
from config.loader import DEFAULT_PROFILE, ProfileError, load_profile
from config.redact import redact_url
from scenarios.run import IntegrityResult, RedisRun, attach
from scenarios.user import apply_profile_weights

logger = logging.getLogger("redis_resilience")
console = logging.getLogger("locust.stats_logger")  # Locust's own plain console output

EXPIRE_EVERY_S = 0.25


class SetupError(Exception):
    """The pack cannot start: ``str()`` is the one-line message."""


@dataclass(frozen=True)
class Settings:
    """The pack's command-line options."""

    profile_path: str = str(DEFAULT_PROFILE)
    redis_url: str | None = None
    report_path: str | None = None
    no_chaos: bool = False

    @classmethod
    def from_options(cls, options: Any) -> Settings:
        return cls(
            profile_path=options.resilience_profile,
            redis_url=options.redis_url or None,
            report_path=options.resilience_report or None,
            no_chaos=bool(options.no_chaos),
        )


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
        "--redis-url",
        metavar="URL",
        default=None,
        env_var="REDIS_URL",
        help="Redis to test (redis:// or rediss://); overrides the profile's target.url",
    )
    group.add_argument(
        "--resilience-report",
        metavar="PATH",
        default=None,
        env_var="RESILIENCE_REPORT",
        help="Write the JSON report here at the end of each test",
    )
    group.add_argument(
        "--no-chaos",
        action="store_true",
        default=False,
        env_var="RESILIENCE_NO_CHAOS",
        help="Baseline run: the same traffic and report, no faults",
    )


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    if environment.parsed_options is None:
        return  # used as a library: build ResiliencePack(environment, Settings(...)) yourself
    try:
        ResiliencePack(environment, Settings.from_options(environment.parsed_options))
    except SetupError as exc:
        sys.stderr.write(f"redis-resilience: {exc}\n")
        sys.exit(EXIT_BAD_INPUT)


def _interrupt_main_greenlet() -> None:
    gevent.get_hub().parent.throw(KeyboardInterrupt())


class _ActiveTest:
    """What lives from test_start to test_stop."""

    def __init__(self, tracker: RecoveryTracker, started_at: float, started_wall: float) -> None:
        self.tracker = tracker
        self.started_at = started_at
        self.started_wall = started_wall
        self.scheduler: ChaosScheduler | None = None
        self.expirer: gevent.Greenlet[..., None] | None = None


class ResiliencePack:
    """The pack on one Locust node: run context, chaos, tracker, report and verdict."""

    def __init__(self, environment: Environment, settings: Settings) -> None:
        self.environment = environment
        self.settings = settings
        try:
            self.profile = load_profile(settings.profile_path)
        except ProfileError as exc:
            raise SetupError(str(exc)) from None
        self.embedded: EmbeddedRedis | None = None
        url = settings.redis_url or self.profile.target.url
        if url == "embedded":
            try:
                self.embedded = EmbeddedRedis().start()
            except EmbeddedRedisError as exc:
                raise SetupError(str(exc)) from None
            atexit.register(self.embedded.stop)
            url = self.embedded.url
        self.run = RedisRun(self.profile, url, uuid.uuid4().hex[:8])
        self.admin = self._connect_admin(url)
        attach(environment, self.run)
        environment.user_classes = apply_profile_weights(environment.user_classes, self.profile)
        self.events: ResilienceEvents = install_events(environment.events)
        self.test: _ActiveTest | None = None
        self.report: dict[str, Any] | None = None
        self.printed = False
        environment.events.test_start.add_listener(self.on_test_start)
        environment.events.test_stop.add_listener(self.on_test_stop)
        environment.events.quitting.add_listener(self.on_quitting)
        environment.events.quit.add_listener(self.on_quit)
        self.events.fault_injected.add_listener(self._open_window)
        if self.mode != "worker":
            # Deliver Ctrl-C to Locust's main greenlet, never into a user or the chaos greenlet
            # mid-command: Locust then quits as usual and the pack reverts, checks and reports.
            gevent.signal_handler(signal.SIGINT, _interrupt_main_greenlet)
        logger.info(
            "redis-resilience: run %s against %s, profile %s%s",
            self.run.run_id,
            self.target_label,
            settings.profile_path,
            ", chaos off" if not self.chaos_enabled else "",
        )

    def _connect_admin(self, url: str) -> redis.Redis:
        try:
            admin = redis.Redis.from_url(
                url,
                client_name=self.run.admin_name,
                socket_timeout=5,
                socket_connect_timeout=5,
                retry=Retry(NoBackoff(), 0),  # the pack's own connection: no hidden retries
            )
            admin.ping()
        except (redis.RedisError, OSError, ValueError) as exc:
            self.close()
            raise SetupError(f"cannot reach Redis at {redact_url(url)}: {redact_url(str(exc))}") from None
        return admin

    @property
    def target_label(self) -> str:
        if self.embedded is not None:
            return f"embedded redis-server (pid {self.embedded.pid}, {self.run.url})"
        return redact_url(self.run.url)

    @property
    def chaos_enabled(self) -> bool:
        return self.profile.chaos.enabled and not self.settings.no_chaos

    @property
    def mode(self) -> str:
        runner = self.environment.runner
        if isinstance(runner, MasterRunner):
            return "master"
        if isinstance(runner, WorkerRunner):
            return "worker"
        return "local"

    # ---- test lifecycle -------------------------------------------------------------------

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        if self.test is not None:
            self.finish_test()
        self.run.checks.clear()
        tracker = RecoveryTracker(self.profile.recovery, on_closed=self._window_closed)
        test = self.test = _ActiveTest(tracker, time.monotonic(), time.time())
        environment.events.request.add_listener(tracker.on_request)
        test.expirer = gevent.spawn(self._expire_windows, tracker)
        if self.chaos_enabled and self.mode != "worker":
            target = FaultTarget(admin=self.admin, traffic_tag=self.run.traffic_tag, reset_pools=self.run.reset_pools)
            test.scheduler = ChaosScheduler(self.profile.chaos, target, self.events, started_at=test.started_at)
            test.scheduler.start()

    def _expire_windows(self, tracker: RecoveryTracker) -> None:
        while True:
            gevent.sleep(EXPIRE_EVERY_S)
            tracker.expire()

    def _open_window(self, fault_id: int, name: str, monotonic: float, **_: Any) -> None:
        if self.test is not None:
            self.test.tracker.open_window(fault_id, name, monotonic)

    def _window_closed(self, window: WindowSummary) -> None:
        if window.recovered:
            self.events.fault_recovered.fire(
                fault_id=window.fault_id,
                name=window.name,
                recovery_s=window.recovery_s,
                failures=window.failures,
                hidden_retries=window.hidden_retries,
            )

    def on_test_stop(self, environment: Environment, **_: Any) -> None:
        self.finish_test()

    def finish_test(self) -> None:
        """Stop chaos (reverting), close windows, check integrity, clean keys, report, verdict."""
        test, self.test = self.test, None
        if test is None:
            return
        if test.scheduler is not None:
            test.scheduler.stop()
        if test.expirer is not None:
            test.expirer.kill(block=True)
        tracker = test.tracker
        tracker.close_all()
        with contextlib.suppress(ValueError):
            self.environment.events.request.remove_listener(tracker.on_request)
        integrity: dict[str, IntegrityResult] | None = None
        integrity_error = None
        try:
            integrity = self.run.verify_integrity(self.admin)
            removed = self.run.cleanup_keys(self.admin)
            logger.info("redis-resilience: removed %d keys under %s*", removed, self.run.key_prefix)
        except (redis.RedisError, OSError) as exc:
            integrity_error = redact_url(f"{type(exc).__name__}: {exc}")
            logger.error("redis-resilience: could not check acknowledged writes: %s", integrity_error)
        records = test.scheduler.records if test.scheduler is not None else []
        figures = compute_figures(records, tracker.closed, tracker.outside, integrity, self._user_errors())
        slo_results = evaluate(self.profile.slo, figures)
        facts = RunFacts(
            run_id=self.run.run_id,
            profile=self.settings.profile_path,
            target=self.target_label,
            embedded_pid=self.embedded.pid if self.embedded is not None else None,
            mode=self.mode,
            chaos=self.chaos_enabled,
            started_at=test.started_wall,
            duration_s=time.monotonic() - test.started_at,
        )
        self.report = build_report(facts, records, tracker, integrity, integrity_error, figures, slo_results)
        self.console_lines = console_lines(self.report, slo_results)
        self.printed = False
        if self.settings.report_path:
            write_json(self.report, self.settings.report_path)
            logger.info("redis-resilience: report written to %s", self.settings.report_path)
        self.environment.process_exit_code = self.report["exit_code"]
        options = self.environment.parsed_options
        if not (options is not None and options.headless):
            self.print_report()  # web UI: show it now, the process may live on for another test

    def _user_errors(self) -> int:
        """Unexpected exceptions in user code this test: Locust's error report, plus crashed greenlets."""
        runner = self.environment.runner
        counted = sum(int(row["count"]) for row in runner.exceptions.values()) if runner is not None else 0
        return counted + (1 if locust_log.unhandled_greenlet_exception else 0)

    def print_report(self) -> None:
        if self.report is not None and not self.printed:
            self.printed = True
            for line in self.console_lines:
                console.info(line)

    # ---- process end -----------------------------------------------------------------------

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        runner = environment.runner
        if self.test is not None and runner is not None and runner.state != STATE_STOPPED:
            runner.stop()  # Ctrl-C or SIGTERM mid-test: stop users so writes can be checked
        self.finish_test()
        if self.report is not None:
            environment.process_exit_code = self.report["exit_code"]

    def on_quit(self, exit_code: int, **_: Any) -> None:
        self.print_report()  # after Locust's own tables, so the verdict is the last thing shown
        self.close()

    def close(self) -> None:
        admin = getattr(self, "admin", None)
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()
        if self.embedded is not None:
            self.embedded.stop()
