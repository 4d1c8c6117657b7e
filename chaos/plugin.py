"""Wiring into Locust. The ONLY module that touches ``locust.events`` and the command line.

Importing it (the locustfile does) adds the pack's options and, at ``init``, builds a
:class:`ResiliencePack` for the environment. On the local or master node that means: profile
validated, embedded server started, target reachable, all before any user spawns; bad input
ends the process with one line and exit 2. A worker takes the run from its master instead.

Roles (DESIGN.md, "Chaos runs once", "Measure on the node that sees the request"):

- local: schedules faults, tracks its own requests, checks integrity, reports, sets the exit code.
- master: schedules faults (server-side ones run here; ``pool_reset`` is broadcast to the
  workers and acknowledged), tells workers of every window, merges their figures, reports and
  sets the exit code. It makes no Redis traffic of its own.
- worker: makes the traffic, tracks its own requests per window, checks its own acknowledged
  writes, and sends its figures to the master. It never schedules.
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
from urllib.parse import urlsplit, urlunsplit

import gevent
import redis
from pydantic import ValidationError

from chaos import messages as cluster
from chaos.events import ResilienceEvents, install_events
from chaos.faults import REGISTRY, CommandRefused, FaultParams, FaultTarget, build_fault
from chaos.scheduler import ChaosScheduler, FaultConflict, FaultRecord
from chaos.webui import install as install_web_ui
from config.hosts import is_loopback_host
from config.loader import DEFAULT_PROFILE, ProfileError, load_profile, parse_profile
from config.proxy import ProxySettings
from config.redact import redact_url
from config.schema import Profile
from recovery.report import RunFacts, build_report, compute_figures, console_lines, write_json
from recovery.results import NodeResult, merge_results, result_to_dict, window_to_dict
from recovery.tracker import RecoveryTracker, WindowSummary
from recovery.verdict import EXIT_BAD_INPUT, evaluate
from scenarios.run import IntegrityResult, PoolResetResult, RedisClient, RedisRun, attach
from scenarios.user import apply_profile_weights
from targets.access import Access, AccessError, admin_url, resolve_access, scheme_error
from targets.connect import ConnectError, open_client
from targets.embedded import EmbeddedRedisError
from targets.netproxy import NetworkDriver, NetworkProxyError, open_proxy
from targets.safety import remote_chaos_refusal
from targets.topology import TOPOLOGIES, Topology, start_topology

logger = logging.getLogger("redis_resilience")
console = logging.getLogger("locust.stats_logger")  # Locust's own plain console output

EXPIRE_EVERY_S = 0.25  # how often an open window is checked against max_window_s
WATCH_EVERY_S = 0.5  # how often the embedded servers are checked for an exit of their own
SETUP_TIMEOUT_S = 10.0  # workers answer the run setup within this
POOL_RESET_ACK_TIMEOUT_S = 5.0  # workers acknowledge a pool reset within this
COLLECT_TIMEOUT_S = 30.0  # workers send their final figures within this


class SetupError(Exception):
    """The pack cannot start: ``str()`` is the one-line message."""


@dataclass(frozen=True)
class Settings:
    """The pack's command-line options."""

    profile_path: str = str(DEFAULT_PROFILE)
    redis_url: str | None = None
    report_path: str | None = None
    no_chaos: bool = False
    allow_remote_chaos: bool = False

    @classmethod
    def from_options(cls, options: Any) -> Settings:
        return cls(
            profile_path=options.resilience_profile,
            redis_url=options.redis_url or None,
            report_path=options.resilience_report or None,
            no_chaos=bool(options.no_chaos),
            allow_remote_chaos=bool(getattr(options, "allow_remote_chaos", False)),
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
        help="Redis to test (redis:// or rediss://); overrides the profile's target.url. On a worker on "
        "another host than the master: the address of that Redis as this worker reaches it",
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
    group.add_argument(
        "--allow-remote-chaos",
        action="store_true",
        default=False,
        env_var="RESILIENCE_ALLOW_REMOTE_CHAOS",
        help="Allow faults against a target that is not on loopback (also the profile's chaos.allow_remote); "
        "without it such a run stops before any user spawns",
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


# The last stop signal received, for the report ("interrupted by SIGINT"): Locust itself handles them.
_signal_received: str | None = None


def _interrupt_main_greenlet() -> None:
    global _signal_received
    _signal_received = "SIGINT"
    gevent.get_hub().parent.throw(KeyboardInterrupt())


def _note_sigterm() -> None:
    """Beside Locust's own SIGTERM handler (which quits): remember it, for the report."""
    global _signal_received
    _signal_received = "SIGTERM"


def remote_worker_error(master_url: str, master_host: str, own_url: str | None) -> str | None:
    """Why a worker cannot use the master's target, or None.

    A target on the master's loopback (the embedded server, or a local one) is another machine's
    loopback for a worker on another host: such a worker must name the target itself.
    """
    if own_url or not is_loopback_host(urlsplit(master_url).hostname or "") or is_loopback_host(master_host):
        return None
    return (
        f"the master's target {redact_url(master_url)} is on the master's loopback, which this worker "
        f"(master host {master_host}) cannot reach: pass --redis-url (or REDIS_URL) with an address "
        "of that Redis server this worker can reach"
    )


def connect_admin(url: str, name: str, retries: int = 0, access: Access | None = None) -> RedisClient:
    """The pack's own connection (chaos and checks): named apart from traffic, no hidden retries.
    On a cluster, a cluster client: it reads and cleans up across every primary. ``access``: the
    admin credentials and TLS (credentials in ``url`` win over them: see targets.access.admin_url)."""
    try:
        return open_client(url, name, access or Access(), "admin", retries)
    except ConnectError as exc:
        raise SetupError(str(exc)) from None


def check_traffic_access(run: RedisRun) -> None:
    """One connection as the traffic makes them (its credentials, TLS and ``CLIENT SETNAME`` tag),
    opened and closed before any user spawns: a traffic user the target refuses is bad input."""
    try:
        open_client(run.url, f"{run.traffic_tag}setup", run.access, "traffic").close()
    except ConnectError as exc:
        raise SetupError(str(exc)) from None


def target_access(profile: Profile, url: str, source: str) -> tuple[Access, Access]:
    """The traffic and admin credentials and TLS for ``url``, secrets read now (see config/access.py)."""
    try:
        return resolve_access(profile.target, url, source)
    except AccessError as exc:
        raise SetupError(str(exc)) from None


class _ActiveTest:
    """What lives from test_start to test_stop on one node."""

    def __init__(self, test: int, tracker: RecoveryTracker | None) -> None:
        self.test = test
        self.tracker = tracker
        self.started_at = time.monotonic()
        self.started_wall = time.time()
        self.scheduler: ChaosScheduler | None = None
        self.expirer: gevent.Greenlet[..., None] | None = None
        self.watchdog: gevent.Greenlet[..., None] | None = None  # watches the embedded servers
        self.opened: set[int] = set()  # fault ids whose window this node opened
        self.interrupted: str | None = None  # cut short by a signal (or a quit) before its end
        self.aborted: str | None = None  # stopped by the pack itself, and why


class ResiliencePack:
    """The pack on one Locust node: run context, chaos, tracker, report and verdict."""

    def __init__(self, environment: Environment, settings: Settings) -> None:
        self.environment = environment
        self.settings = settings
        self.embedded: Topology | None = None
        self.proxy: NetworkDriver | None = None  # the fault proxy traffic goes through (network faults)
        self.admin_url: str | None = None
        self.admin: RedisClient | None = None
        self.run: RedisRun | None = None
        self.test: _ActiveTest | None = None
        self.tests_started = 0
        self.report: dict[str, Any] | None = None
        self.console_lines: list[str] = []
        self.printed = False
        self.bad_input: str | None = None
        self.remote_refusal: str | None = None  # set: chaos against this target needs the opt-in
        self.events: ResilienceEvents = install_events(environment.events)
        runner = environment.runner
        self.master: cluster.MasterLink | None = None
        self.worker: cluster.WorkerLink | None = None
        self.finals: dict[int, dict[str, Any]] = {}  # worker: final figures sent, per test
        if isinstance(runner, WorkerRunner):
            self.profile: Profile | None = None  # the master sends it
            self.node = uuid.uuid4().hex[:6]
            self.worker = cluster.WorkerLink(
                runner,
                {
                    cluster.SETUP: self._worker_setup,
                    cluster.FAULT: self._worker_fault,
                    cluster.POOL_RESET: self._worker_pool_reset,
                    cluster.COLLECT: self._worker_collect,
                },
            )
        else:
            self.node = "0"
            self._setup_target()
            assert self.profile is not None
            environment.user_classes = apply_profile_weights(environment.user_classes, self.profile)
            if isinstance(runner, MasterRunner):
                self.master = cluster.MasterLink(runner, self._worker_error)
            self.events.fault_injected.add_listener(self._fault_injected)
            if environment.web_ui is not None:  # resets on demand and the status, on the web UI
                install_web_ui(environment.web_ui, self)
            # Deliver Ctrl-C to Locust's main greenlet, never into a user or the chaos greenlet
            # mid-command: Locust then quits as usual and the pack reverts, checks and reports.
            gevent.signal_handler(signal.SIGINT, _interrupt_main_greenlet)
            gevent.signal_handler(signal.SIGTERM, _note_sigterm)
        environment.events.test_start.add_listener(self.on_test_start)
        environment.events.test_stop.add_listener(self.on_test_stop)
        environment.events.quitting.add_listener(self.on_quitting)
        environment.events.quit.add_listener(self.on_quit)

    # ---- set-up ----------------------------------------------------------------------------

    def _setup_target(self) -> None:
        try:
            self.profile = load_profile(self.settings.profile_path)
        except ProfileError as exc:
            raise SetupError(str(exc)) from None
        url = self.settings.redis_url or self.profile.target.url
        if self.settings.redis_url:
            problem = scheme_error(url, "--redis-url (REDIS_URL)")
            if problem:
                raise SetupError(problem)
        # Before anything connects: chaos off this machine only with an explicit opt-in (chaos/safety.py).
        allowed = self.profile.chaos.allow_remote or self.settings.allow_remote_chaos
        self.remote_refusal = None if allowed else remote_chaos_refusal(url)
        if self.remote_refusal is not None and self.chaos_enabled:
            raise SetupError(self.remote_refusal)
        traffic_access, admin_access = target_access(self.profile, url, self.settings.profile_path)
        if url in TOPOLOGIES:
            try:
                self.embedded = start_topology(url, self.profile.target.persistence)
            except EmbeddedRedisError as exc:
                raise SetupError(str(exc)) from None
            atexit.register(self.embedded.stop)
            url = self.embedded.url
        self.admin_url = url
        if self.profile.target.proxy is not None:  # traffic goes through the fault proxy, the admin does not
            url = self._open_proxy(self.profile.target.proxy, url)
        self.run = RedisRun(self.profile, url, uuid.uuid4().hex[:8], node=self.node, access=traffic_access)
        try:
            self.admin = connect_admin(
                admin_url(self.admin_url, self.profile.target), self.run.admin_name, access=admin_access
            )
            check_traffic_access(self.run)
        except SetupError:
            self.close()
            raise
        attach(self.environment, self.run)
        if self.chaos_enabled:
            self._check_capabilities()
        logger.info(
            "redis-resilience: run %s against %s, profile %s%s",
            self.run.run_id,
            self.target_label,
            self.settings.profile_path,
            "" if self.chaos_enabled else ", chaos off",
        )

    def _check_capabilities(self) -> None:
        """Before any load: every scheduled fault can run here (managed caches disable commands)."""
        assert self.profile is not None and self.admin is not None and self.run is not None
        target = self.fault_target()
        for spec in self.profile.chaos.faults:
            try:
                build_fault(spec, target).check()
            except (CommandRefused, redis.RedisError) as exc:
                self.close()
                raise SetupError(
                    f"{self.settings.profile_path}: fault {spec.name} cannot run on {self.target_label}: {exc}"
                ) from None

    def _open_proxy(self, settings: ProxySettings, url: str) -> str:
        """Start the fault proxy in front of ``url``; the URL traffic uses instead."""
        if not url.startswith(("redis://", "rediss://")):
            raise SetupError(f"{self.settings.profile_path}: target.proxy needs a standalone target, not {url}")
        parts = urlsplit(url)
        try:
            self.proxy = open_proxy(settings, parts.hostname or "127.0.0.1", parts.port or 6379)
        except NetworkProxyError as exc:
            self.close()
            raise SetupError(f"{self.settings.profile_path}: target.proxy: {exc}") from None
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@" if userinfo else ""
        return urlunsplit(parts._replace(netloc=f"{netloc}{self.proxy.host}:{self.proxy.port}"))

    def fault_target(self) -> FaultTarget:
        """What faults may touch: the admin connection, this run's tag, the pools, the managed servers."""
        assert self.admin is not None and self.run is not None
        return FaultTarget(
            admin=self.admin,
            traffic_tag=self.run.traffic_tag,
            reset_pools=self._reset_pools,
            network=self.proxy,
            servers=self.embedded,
        )

    @property
    def target_label(self) -> str:
        if self.run is None:
            return "(not set up)"
        if self.embedded is not None:
            return self.embedded.label()
        return redact_url(self.run.url)

    @property
    def chaos_enabled(self) -> bool:
        return self.profile is not None and self.profile.chaos.enabled and not self.settings.no_chaos

    @property
    def mode(self) -> str:
        return "worker" if self.worker else "master" if self.master else "local"

    # ---- test lifecycle --------------------------------------------------------------------

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        if self.test is not None:
            self.finish_test()
        self.tests_started += 1
        if self.run is not None:
            self.run.checks.clear()
        number = self._test_number()
        tracker = None
        if self.master is None and self.run is not None:  # local or worker: this node makes traffic
            tracker = RecoveryTracker(self.run.profile.recovery, on_closed=lambda w: self._window_closed(number, w))
            environment.events.request.add_listener(tracker.on_request)
        test = self.test = _ActiveTest(number, tracker)
        if tracker is not None:
            test.expirer = gevent.spawn(self._expire_windows, tracker)
        if self.master is not None:
            assert self.run is not None and self.profile is not None
            ready = self.master.begin(test.test, self._setup_message(), SETUP_TIMEOUT_S)
            logger.info("redis-resilience: %d worker(s) ready for run %s", len(ready.expected), self.run.run_id)
        if self.chaos_enabled and self.worker is None:
            assert self.admin is not None and self.run is not None and self.profile is not None
            target = self.fault_target()
            run_time = getattr(environment.parsed_options, "run_time", None)
            last_fault_by = test.started_at + run_time - self.profile.recovery.max_window_s if run_time else None
            test.scheduler = ChaosScheduler(
                self.profile.chaos, target, self.events, started_at=test.started_at, last_fault_by=last_fault_by
            )
            test.scheduler.start()
        if self.embedded is not None and self.worker is None:
            test.watchdog = gevent.spawn(self._watch_embedded, test)

    def _watch_embedded(self, test: _ActiveTest) -> None:
        """A server of the embedded topology that exits on its own (not by a fault) ends the test:
        reported as aborted, never a hang of users retrying a server that is gone."""
        assert self.embedded is not None
        while True:
            gevent.sleep(WATCH_EVERY_S)
            for server in (*self.embedded.servers, *self.embedded.sentinels):
                process = server.process  # a fault that stops a server clears this first
                code = process.poll() if process is not None else None
                if process is None or code is None:
                    continue
                server.process = None
                test.aborted = (
                    f"embedded {server.binary} (pid {process.pid}, port {server.port}) exited on its own "
                    f"(exit code {code}) at +{time.monotonic() - test.started_at:.1f}s: the test was stopped"
                )
                logger.error("redis-resilience: %s", test.aborted)
                runner = self.environment.runner
                if runner is not None:  # from a greenlet of its own: stopping the test kills this one
                    options = self.environment.parsed_options
                    gevent.spawn(runner.quit if options is not None and options.headless else runner.stop)
                return

    def _test_number(self) -> int:
        return self.worker_test if self.worker is not None else self.tests_started

    worker_test = 0  # on a worker: the test number the master's last setup named

    def _expire_windows(self, tracker: RecoveryTracker) -> None:
        while True:
            gevent.sleep(EXPIRE_EVERY_S)
            tracker.expire()

    def _reset_pools(self, fault_id: int) -> PoolResetResult:
        if self.master is not None:
            return self.master.reset_pools(fault_id, POOL_RESET_ACK_TIMEOUT_S)
        assert self.run is not None
        return self.run.reset_pools()

    def _fault_injected(self, fault_id: int, name: str, monotonic: float, time: float, **_: Any) -> None:
        if self.master is not None:
            self.master.announce_fault(fault_id, name, time)
        elif self.test is not None and self.test.tracker is not None:
            self.test.tracker.open_window(fault_id, name, monotonic)

    def _window_closed(self, test: int, window: WindowSummary) -> None:
        if self.worker is not None:
            self.worker.send(cluster.WINDOW, {"test": test, "window": window_to_dict(window)})
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
        """Stop chaos (reverting) and close windows; then report (local, master) or send figures (worker)."""
        test, self.test = self.test, None
        if test is None:
            return
        if test.scheduler is not None:
            test.scheduler.stop()
        if test.expirer is not None:
            test.expirer.kill(block=True)
        if test.watchdog is not None:
            test.watchdog.kill(block=True)
        if test.tracker is not None:
            test.tracker.close_all()
            with contextlib.suppress(ValueError):
                self.environment.events.request.remove_listener(test.tracker.on_request)
        records = test.scheduler.records if test.scheduler is not None else []
        if self.worker is not None:
            self._worker_finish(test)
        elif self.master is not None:
            self._master_finish(test, records)
        else:
            assert test.tracker is not None
            integrity, integrity_error = self._check_integrity()
            result = NodeResult.from_tracker(test.tracker, integrity, integrity_error, self._user_errors())
            self._cleanup_keys()
            self._report(test, records, result)

    def _check_integrity(self) -> tuple[dict[str, IntegrityResult] | None, str | None]:
        if self.run is None or self.admin is None:
            return None, "the run was never set up on this node"
        try:
            return self.run.verify_integrity(self.admin), None
        except (redis.RedisError, OSError) as exc:
            error = redact_url(f"{type(exc).__name__}: {exc}")
            logger.error("redis-resilience: could not check acknowledged writes: %s", error)
            return None, error

    def _cleanup_keys(self) -> None:
        if self.run is None or self.admin is None:
            return
        try:
            removed = self.run.cleanup_keys(self.admin)
            logger.info("redis-resilience: removed %d keys under %s*", removed, self.run.key_prefix)
        except (redis.RedisError, OSError) as exc:
            logger.error("redis-resilience: could not remove the run's keys: %s", redact_url(str(exc)))

    def _user_errors(self) -> int:
        """Unexpected exceptions in user code this test: Locust's error report, plus crashed greenlets."""
        runner = self.environment.runner
        counted = sum(int(row["count"]) for row in runner.exceptions.values()) if runner is not None else 0
        return counted + (1 if locust_log.unhandled_greenlet_exception else 0)

    def _report(
        self,
        test: _ActiveTest,
        records: list[FaultRecord],
        result: NodeResult,
        workers: dict[str, Any] | None = None,
        missing_by_fault: dict[int, list[str]] | None = None,
    ) -> None:
        assert self.profile is not None and self.run is not None
        missing = len(workers["missing"]) if workers else 0
        figures = compute_figures(records, result, missing)
        slo_results = evaluate(self.profile.slo, figures)
        facts = RunFacts(
            run_id=self.run.run_id,
            profile=self.settings.profile_path,
            target=self.target_label,
            embedded_pid=self.embedded.servers[0].pid if self.embedded is not None else None,
            embedded_pids=self.embedded.pids if self.embedded is not None else [],
            mode=self.mode,
            chaos=self.chaos_enabled,
            started_at=test.started_wall,
            duration_s=time.monotonic() - test.started_at,
            interrupted=test.interrupted,
            aborted=test.aborted,
        )
        self.report = build_report(facts, records, result, figures, slo_results, workers, missing_by_fault)
        self.console_lines = console_lines(self.report, slo_results)
        self.printed = False
        if self.settings.report_path:
            write_json(self.report, self.settings.report_path)
            logger.info("redis-resilience: report written to %s", self.settings.report_path)
        self.environment.process_exit_code = self.report["exit_code"]
        options = self.environment.parsed_options
        if not (options is not None and options.headless):
            self.print_report()  # web UI: show it now, the process may live on for another test

    def print_report(self) -> None:
        if self.report is not None and not self.printed:
            self.printed = True
            for line in self.console_lines:
                console.info(line)

    # ---- master ----------------------------------------------------------------------------

    def _setup_message(self) -> dict[str, Any]:
        assert self.run is not None and self.profile is not None
        return {
            "run_id": self.run.run_id,
            "profile": self.profile.model_dump(mode="json"),
            "url": self.run.url,
            "admin_url": self.admin_url,
        }

    def _worker_error(self, worker: str, error: str) -> None:
        logger.error("redis-resilience: worker %s: %s", worker, error)
        self.bad_input = self.bad_input or f"worker {worker}: {error}"
        runner = self.environment.runner
        if runner is not None:
            gevent.spawn_later(0, runner.quit)  # a worker that cannot reach the target is bad input

    def _master_finish(self, test: _ActiveTest, records: list[FaultRecord]) -> None:
        assert self.master is not None
        heard = self.master.collect(COLLECT_TIMEOUT_S)
        if heard is None:
            return
        expected = heard.expected
        missing = sorted(set(expected) - set(heard.finals))
        for worker in missing:
            logger.error("redis-resilience: worker %s sent no final figures: reported as missing", worker)
        result = merge_results(list(heard.finals.values()), [w for windows in heard.windows.values() for w in windows])
        result.user_errors += self._user_errors()
        if missing and result.integrity is not None:
            result.integrity = None
            result.integrity_error = f"not checked on missing workers: {', '.join(missing)}"
        missing_by_fault = {}
        for rec in records:
            if rec.ok:
                absent = [w for w in expected if not any(x.fault_id == rec.fault_id for x in heard.windows.get(w, []))]
                if absent:
                    missing_by_fault[rec.fault_id] = absent
        per_worker = {}
        for worker in expected:
            windows = heard.windows.get(worker, [])
            final = heard.finals.get(worker)
            outside = final.outside if final is not None else None
            per_worker[worker] = {
                "requests": sum(w.requests for w in windows) + (outside.requests if outside else 0),
                "failures": sum(w.failures for w in windows) + (outside.failures if outside else 0),
                "windows": len(windows),
            }
        workers = {"expected": expected, "reported": sorted(heard.finals), "missing": missing, "figures": per_worker}
        self._cleanup_keys()
        self._report(test, records, result, workers, missing_by_fault)

    # ---- worker ----------------------------------------------------------------------------

    def _worker_setup(self, data: dict[str, Any]) -> None:
        assert self.worker is not None
        self.worker_test = int(data["test"])
        error = None
        try:
            self._worker_run(data)
        except SetupError as exc:
            error = str(exc)
            logger.error("redis-resilience: %s", error)
            self.environment.process_exit_code = EXIT_BAD_INPUT
            runner = self.environment.runner
            if runner is not None:
                gevent.spawn_later(0.5, runner.quit)
        self.worker.send(cluster.READY, {"test": self.worker_test, "error": error})

    def _worker_run(self, data: dict[str, Any]) -> None:
        """Adopt the master's run: its profile, its target (or this worker's --redis-url)."""
        if self.run is not None and self.run.run_id == data["run_id"]:
            return
        try:
            profile = parse_profile(data["profile"], "the master's profile")
        except ProfileError as exc:
            raise SetupError(str(exc)) from None
        url = self.settings.redis_url or data["url"]
        master_host = str(getattr(self.environment.runner, "master_host", "127.0.0.1"))
        error = remote_worker_error(data["url"], master_host, self.settings.redis_url)
        if error:
            raise SetupError(error)
        traffic_access, admin_access = target_access(profile, url, "the master's profile")
        run = RedisRun(profile, url, data["run_id"], node=self.node, access=traffic_access)
        admin_at = admin_url(self.settings.redis_url or data.get("admin_url") or url, profile.target)  # past the proxy
        admin = connect_admin(admin_at, run.admin_name, retries=3, access=admin_access)  # a scope: all kill may hit it
        try:
            check_traffic_access(run)
        except SetupError:
            with contextlib.suppress(Exception):
                admin.close()
            raise
        self.close_admin()
        self.profile, self.run, self.admin = profile, run, admin
        attach(self.environment, run)

    def _worker_fault(self, data: dict[str, Any]) -> None:
        """A fault's window reaches this worker: t0 is the master's, by the wall clock when plausible."""
        test = self.test
        fault_id = int(data["fault_id"])
        if test is None or test.tracker is None or data["test"] != test.test or fault_id in test.opened:
            return
        delay = time.time() - float(data["time"])
        t0 = time.monotonic() - (delay if 0 <= delay < 2 else 0.0)  # clocks of other hosts may disagree
        test.opened.add(fault_id)
        test.tracker.open_window(fault_id, str(data["name"]), t0)

    def _worker_pool_reset(self, data: dict[str, Any]) -> None:
        assert self.worker is not None
        if self.run is None:
            return
        result = self.run.reset_pools()
        test = self.test
        fault_id = int(data["fault_id"])
        if test is not None and test.tracker is not None and fault_id not in test.opened:
            test.opened.add(fault_id)  # the window opens when this worker's reset returned
            test.tracker.open_window(fault_id, "pool_reset", time.monotonic())
        self.worker.send(
            cluster.POOL_RESET_ACK,
            {
                "test": data["test"],
                "fault_id": fault_id,
                "pools": result.pools,
                "connections": result.connections,
                "in_use": result.in_use,
            },
        )

    def _worker_finish(self, test: _ActiveTest) -> None:
        assert self.worker is not None and test.tracker is not None
        integrity, integrity_error = self._check_integrity()
        unhandled = 1 if locust_log.unhandled_greenlet_exception else 0  # task errors reach the master by Locust
        result = NodeResult.from_tracker(test.tracker, integrity, integrity_error, unhandled)
        final = {"test": test.test, "result": result_to_dict(result, include_windows=False)}
        self.finals[test.test] = final
        self.worker.send(cluster.FINAL, final)

    def _worker_collect(self, data: dict[str, Any]) -> None:
        assert self.worker is not None
        final = self.finals.get(int(data["test"]))
        if final is not None:
            self.worker.send(cluster.FINAL, final)
            return
        runner = self.environment.runner
        if self.test is not None and runner is not None:
            runner.stop()  # test_stop follows: this worker's users stop, its figures go to the master

    # ---- process end -----------------------------------------------------------------------

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        runner = environment.runner
        if self.test is not None and runner is not None and runner.state != STATE_STOPPED:
            self.test.interrupted = _signal_received or "quit"
            runner.stop()  # Ctrl-C or SIGTERM mid-test: stop users so writes can be checked
        self.finish_test()
        if self.bad_input is not None and self.worker is None:
            environment.process_exit_code = EXIT_BAD_INPUT
        elif self.report is not None:
            environment.process_exit_code = self.report["exit_code"]

    def on_quit(self, exit_code: int, **_: Any) -> None:
        self.print_report()  # after Locust's own tables, so the verdict is the last thing shown
        if self.bad_input is not None and self.worker is None:
            sys.stderr.write(f"redis-resilience: {self.bad_input}\n")
        self.close()

    def close_admin(self) -> None:
        if self.admin is not None:
            with contextlib.suppress(Exception):
                self.admin.close()
            self.admin = None

    def close(self) -> None:
        self.close_admin()
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None
        if self.embedded is not None:
            self.embedded.stop()

    # ---- on demand (web UI, chaos/webui.py) ------------------------------------------------

    def reset_now(self, fault: str | None = None) -> FaultRecord:
        """Inject ``fault`` (default ``pool_reset``) now, through the running test's scheduler, as ``trigger: web``.

        ``ValueError``: an unknown fault (or one needing params the profile does not give);
        :class:`FaultConflict`: no test is running, or a fault is active.
        """
        spec = self._on_demand_spec(fault or "pool_reset")
        if self.remote_refusal is not None and spec.name != "pool_reset":  # pool_reset touches only our pools
            raise ValueError(self.remote_refusal)
        test = self.test
        if test is None:
            raise FaultConflict("no test is running")
        if test.scheduler is None:
            if self.chaos_enabled:
                raise FaultConflict("the test is starting: its chaos scheduler is not set up yet")
            assert self.profile is not None  # chaos off: a scheduler for on-demand faults, its loop never started
            test.scheduler = ChaosScheduler(self.profile.chaos, self.fault_target(), self.events, test.started_at)
        return test.scheduler.inject_now(spec, trigger="web")

    def _on_demand_spec(self, name: str) -> FaultParams:
        """The profile's ``chaos.faults`` entry of that name, else the fault with its defaults."""
        kind = REGISTRY.get(name)
        if kind is None:
            raise ValueError(f"unknown fault {name!r}: expected one of {', '.join(sorted(REGISTRY))}")
        assert self.profile is not None
        listed = [spec for spec in self.profile.chaos.faults if spec.name == name]
        if listed:
            return listed[0]
        try:
            return kind.params.model_validate({"name": name})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"fault {name} is not in the profile's chaos.faults and needs: {problems}") from None

    def status(self) -> dict[str, Any]:
        """The test, its active fault, its faults so far, and this run's connections (never raises)."""
        test = self.test
        scheduler = test.scheduler if test is not None else None
        active = scheduler.active if scheduler is not None else None
        records = scheduler.records if scheduler is not None else []
        now = time.monotonic()
        active_fault = None
        if active is not None:
            since_s = None if active.t0 is None else round(now - active.t0, 3)  # None: still injecting
            active_fault = {"id": active.fault_id, "name": active.name, "trigger": active.trigger, "since_s": since_s}
        return {
            "running": test is not None,
            "mode": self.mode,
            "run_id": self.run.run_id if self.run is not None else None,
            "scheduled_chaos": self.chaos_enabled,
            "elapsed_s": round(now - test.started_at, 3) if test is not None else None,
            "active_fault": active_fault,
            "faults": {"count": len(records), "records": [r.brief() for r in records]},
            "connections": self._connection_status(),
        }

    def _connection_status(self) -> dict[str, Any]:
        """This node's pooled connections (redis-py) and the run's connections as the server lists them."""
        status: dict[str, Any] = {"pools": None}
        if self.master is not None:
            status["pools_note"] = "distributed run: the workers hold the connection pools, the master has none"
        elif self.run is not None:
            pools = list(self.run.pools)
            in_use = idle = 0
            for pool in pools:
                (free, _), (used, _) = pool.get_connection_count()
                idle, in_use = idle + free, in_use + used
            status["pools"] = {"pools": len(pools), "in_use": in_use, "idle": idle, "total": in_use + idle}
        tag = self.run.traffic_tag if self.run is not None else None
        server: dict[str, Any] = {"tag": tag, "clients": None, "error": None}
        try:
            from redis.cluster import RedisCluster

            admin = self.admin
            assert admin is not None and tag is not None, "the admin connection is closed"
            nodes = (  # a cluster: every primary as last mapped (a status poll does not refresh the slot map)
                [admin.get_redis_connection(n) for n in admin.get_primaries()]
                if isinstance(admin, RedisCluster)
                else [admin]
            )
            names = [c.get("name", "") for node in nodes for c in node.client_list()]
            server["clients"] = sum(1 for name in names if name.startswith(tag))
        except Exception as exc:  # a status never fails: the error is part of it
            server["error"] = redact_url(f"{type(exc).__name__}: {exc}")
        status["server"] = server
        return status
