"""Throughput benchmark (run by hand, not a test): what the pack costs per request, and how it scales.

Every figure in one run, against embedded redis-servers, with --users users and no think time:

  bare        a plain Locust user calling a pooled redis-py client and firing ``request`` itself
              (contrib/dns style): what a user writes by hand
  pooled      the pack's user (RedisUser, ``client.connection: pooled``) with the pack's request
              listener, the recovery trackers (per type, per-second series) and a fault window open
              all along, and once a second what a live view or a Prometheus scrape computes
  dedicated   the same with ``client.connection: dedicated`` (redis-py's ``single_connection_client``)
  pipelined   the pack's ``pipeline`` workload at ``depth`` 16, pooled, the same 90/10 GET/SET mix;
              its ops are commands (16 per request), sent with ``client.batch()`` (redis-py's pipeline)
  pipeline()  the same traffic through ``client.pipeline()`` directly, for comparison
  redis-benchmark, for reference (its own process, GET/SET; ops/s only)

Each runs in-process in a fresh process of its own, interleaved for --rounds (each round starts with
another), same keys and value size. Then:

  scaling     (bench/scaling.py) real headless ``locust --processes 1`` and ``--processes 2`` runs of one profile (the
              cache workload, pooled, zero think time, --users users): the steady-state requests/s
              of each, from the report's per-second timeline, and their ratio
  RSS         a fresh process spawns 1 then --rss-users pack users (pooled, and dedicated), each
              connected and making requests once a second: the RSS growth per 100 users

Every variant is stock redis-py, instrumented only at its public surfaces (DESIGN.md rule 10). Target:
pooled, the default, >= 95% of bare ops per CPU-second. The others are figures, not targets (the
figures measured, and earlier targets: docs/benchmarks.md).

    .venv/bin/python bench/throughput.py                       # about 3 minutes
    .venv/bin/python bench/throughput.py --seconds 5 --rounds 1 --scaling-seconds 15
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent's monkey-patching)
from locust import User, task
from locust.env import Environment
from locust.event import Events

import argparse
import gc
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gevent
import redis
from scaling import scaling_run

from chaos.profile import parse_profile
from chaos.roles.measuring import MeasuresRequests
from config.schema import Profile
from recovery.metrics import families
from recovery.series import timeline
from recovery.tracker import RequestTrackers
from scenarios.batch import BatchWorkload, PipelineUser
from scenarios.run import PackRun, attach
from scenarios.user import RedisUser
from targets.embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
KEYSPACE = 1000
VALUE_BYTES = 128
VALUE = b"v" * VALUE_BYTES
DEPTH = 16
# The scaling runs' workload: the cache workload alone (the pooled variant's GET/SET mix, with SET on a miss)
MIX: dict[str, object] = {
    "cache": {"weight": 1, "keyspace": KEYSPACE, "value_bytes": VALUE_BYTES},
    "ledger": {"weight": 0},
}
URL = ""  # set in main(): users are built by Locust, so the target travels as a module attribute


def one_op(client: Any) -> None:
    key = f"bench:{random.randrange(KEYSPACE)}"
    if random.random() < 0.9:
        client.get(key)
    else:
        client.set(key, VALUE)


class BareUser(User):
    """What a user would write without the pack: redis-py plus a hand-fired request event."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.redis = redis.Redis.from_url(URL)
        self.fire = environment.events.request.fire

    def wait_time(self) -> float:
        return 0.0

    @task
    def op(self) -> None:
        one_op(self)

    def get(self, key: str) -> Any:
        return self._call("GET", self.redis.get, key)

    def set(self, key: str, value: bytes) -> Any:
        return self._call("SET", self.redis.set, key, value)

    def _call(self, name: str, fn: Any, *args: Any) -> Any:
        start = time.perf_counter()
        exception = None
        result = None
        try:
            result = fn(*args)
        except redis.RedisError as exc:
            exception = exc
        self.fire(
            request_type="REDIS",
            name=name,
            response_time=(time.perf_counter() - start) * 1000,
            response_length=0,
            exception=exception,
            context={},
        )
        return result


class BenchUser(RedisUser):
    """The pack's own user (its client built from the profile), doing bare's GET/SET mix."""

    label = "bench"

    @task
    def op(self) -> None:
        one_op(self.client)


class PipelineObjectUser(RedisUser):
    """The pipeline workload's traffic through redis-py's ``pipeline()`` instead of ``client.batch()``
    (a RedisUser of its own: a subclass of PipelineUser would run PipelineUser's task too)."""

    label = "pipeline"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.spec = self.settings(BatchWorkload)
        self.value = b"p" * self.spec.value_bytes
        self.key_prefix = self.key("pipeline", "")

    @task
    def through_pipeline(self) -> None:
        spec, prefix, value = self.spec, self.key_prefix, self.value
        pipe = self.client.pipeline(transaction=False)
        for _ in range(spec.depth):
            key = f"{prefix}{random.randrange(spec.keyspace)}"
            if random.random() < spec.read_ratio:
                pipe.get(key)
            else:
                pipe.set(key, value)
        pipe.execute()


# name: (user class, client.connection of a pack user or None for bare, commands per request)
VARIANTS: dict[str, tuple[type[User], str | None, int]] = {
    "bare": (BareUser, None, 1),
    "pooled": (BenchUser, "pooled", 1),
    "dedicated": (BenchUser, "dedicated", 1),
    "pipelined": (PipelineUser, "pooled", DEPTH),
    "pipeline()": (PipelineObjectUser, "pooled", DEPTH),
}


def bench_profile(connection: str, think_ms: int = 0) -> Profile:
    return parse_profile(
        {
            "client": {"connection": connection},
            "workload": {
                "think_time": {"min_ms": think_ms, "max_ms": think_ms},
                "mix": {
                    "cache": {"weight": 0},
                    "ledger": {"weight": 0},
                    "pipeline": {
                        "weight": 1,
                        "depth": DEPTH,
                        "read_ratio": 0.9,
                        "keyspace": KEYSPACE,
                        "value_bytes": VALUE_BYTES,
                    },
                },
            },
            "recovery": {"max_window_s": 3600},
        },
        "bench",
    )


def observe(trackers: RequestTrackers, env: Environment) -> None:
    """What a run's timer does (expire windows, sample users: chaos/locust_test.py), and once a second
    what a live view or a Prometheus scrape computes."""
    ticks = 0
    while True:
        gevent.sleep(0.25)
        trackers.expire()
        ticks += 1
        if ticks % 4 == 0:
            trackers.sample_users(env.runner.user_count if env.runner else 0)
            timeline(trackers.series(), trackers.users)
            families(None, None)


def run_locust(user_class: type[User], connection: str | None, users: int, seconds: float) -> tuple[int, float, float]:
    """(requests, CPU seconds, wall seconds) of ``users`` users after a second of warm-up."""
    env = Environment(user_classes=[user_class], events=Events())
    observer = None
    if connection is not None:  # a pack user: the pack's run on the environment, its listener and trackers
        profile = bench_profile(connection)
        attach(env, PackRun(profile, URL, f"bench{random.randrange(10**6)}"))
        trackers = RequestTrackers(profile.recovery, ("REDIS",))  # a pack user's requests
        listener = MeasuresRequests()
        listener.test = SimpleNamespace(tracker=trackers)  # type: ignore[assignment]  # what a MeasuredTest offers
        env.events.request.add_listener(listener.on_request)
        trackers.open_window(1, "bench", time.monotonic())
        observer = gevent.spawn(observe, trackers, env)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users, wait=True)
    gevent.sleep(1.0)  # warm-up, then measure
    env.stats.reset_all()
    cpu0, wall0 = time.process_time(), time.monotonic()
    gevent.sleep(seconds)
    requests = env.stats.total.num_requests
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    runner.quit()
    if observer is not None:
        observer.kill()
    return requests, cpu, wall


def redis_benchmark(port: int, users: int) -> float | None:
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    out = subprocess.run(
        [binary, "-p", str(port), "-c", str(users), "-n", "200000", "-t", "get,set", "-q", "-d", str(VALUE_BYTES)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    ).stdout
    rates = [float(x) for x in re.findall(r"([\d.]+) requests per second", out)]
    return sum(rates) / len(rates) if rates else None


def rss_kib() -> int:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) if match else 0


def rss_child(connection: str, users: int) -> None:
    """In a fresh process: RSS with 1 pack user, then with ``users``, each connected and making requests."""
    env = Environment(user_classes=[BenchUser], events=Events())
    attach(env, PackRun(bench_profile(connection, think_ms=1000), URL, "rss"))
    runner = env.create_local_runner()
    runner.start(1, spawn_rate=1, wait=True)
    gevent.sleep(2.0)
    gc.collect()
    base = rss_kib()
    runner.start(users, spawn_rate=users, wait=True)
    gevent.sleep(3.0)  # every user has connected and made requests
    gc.collect()
    grown = rss_kib()
    runner.quit()
    print(json.dumps({"base_kib": base, "kib": grown, "users": users, "requests": env.stats.total.num_requests}))


def variant_in_child(name: str, users: int, seconds: float, url: str) -> tuple[int, float, float]:
    """One in-process variant run in a fresh process: what one variant leaves behind (its users' clients,
    their garbage, the hub's timers) is not charged to the next one's CPU."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--variant-child",
            name,
            "--users",
            str(users),
            "--seconds",
            str(seconds),
            "--url",
            url,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 120,
    ).stdout
    requests, cpu, wall = json.loads(out.strip().splitlines()[-1])
    return int(requests), float(cpu), float(wall)


def rss_per_100(connection: str, users: int, url: str) -> tuple[float, int]:
    """(MiB of RSS per 100 users beyond the first, the baseline process's RSS in MiB)."""
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", connection, "--rss-users", str(users), "--url", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    per_user_kib = (figures["kib"] - figures["base_kib"]) / (users - 1)
    return per_user_kib * 100 / 1024, figures["base_kib"] // 1024


def main() -> None:
    global URL
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per in-process variant")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="repeat the in-process variants, interleaved")
    parser.add_argument("--scaling-seconds", type=int, default=20, help="length of each --processes run")
    parser.add_argument("--rss-users", type=int, default=1000)
    parser.add_argument("--rss-child", choices=["pooled", "dedicated"], help=argparse.SUPPRESS)
    parser.add_argument("--variant-child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        URL = args.url
        rss_child(args.rss_child, args.rss_users)
        return
    if args.variant_child:
        URL = args.url
        cls, connection, _ = VARIANTS[args.variant_child]
        print(json.dumps(run_locust(cls, connection, args.users, args.seconds)))
        return
    variants = VARIANTS
    totals = {name: [0.0, 0.0, 0.0] for name in variants}  # ops, CPU s, wall s
    names = list(variants)
    with EmbeddedRedis() as server:
        URL = server.url
        for round_ in range(args.rounds):  # each round starts with another variant: none always runs first
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                requests, cpu, wall = variant_in_child(name, args.users, args.seconds, server.url)
                ops_per_request = variants[name][2]
                totals[name][0] += requests * ops_per_request
                totals[name][1] += cpu
                totals[name][2] += wall
        reference = redis_benchmark(server.port, args.users)
        rss = {
            connection: rss_per_100(connection, args.rss_users, server.url) for connection in ("pooled", "dedicated")
        }
    with tempfile.TemporaryDirectory(prefix="rr-bench-") as work:
        scaling = {n: scaling_run(n, args.users, args.scaling_seconds, Path(work), MIX) for n in (1, 2)}

    per_cpu = {name: ops / cpu for name, (ops, cpu, _) in totals.items()}
    bare = per_cpu["bare"]
    print(f"{args.users} users, no think time, {args.rounds} x {args.seconds:g} s per variant")
    print(f"{'variant':10} {'ops':>9} {'ops/s':>9} {'cpu_s':>7} {'ops/cpu-s':>10} {'vs bare':>8}")
    for name, (ops, cpu, wall) in totals.items():
        print(f"{name:10} {int(ops):9d} {ops / wall:9.0f} {cpu:7.2f} {per_cpu[name]:10.0f} {per_cpu[name] / bare:8.1%}")
    if reference is not None:
        print(f"{'redis-benchmark':20} {reference:9.0f} ops/s (GET/SET, {args.users} clients, its own process)")
    one, two = scaling[1], scaling[2]
    ratio = two.requests_per_s / one.requests_per_s if one and two else None
    for n, run in scaling.items():
        if run is None:
            print(f"scaling    --processes {n}: no report")
            continue
        print(
            f"scaling    --processes {n}: {run.requests_per_s:7.0f} req/s; cores used: locust "
            f"{run.locust_cores:.2f}, redis-server {run.server_cores:.2f}"
        )
    print(f"scaling    ratio {ratio or 0:.2f} ({args.users} users, {args.scaling_seconds} s each, the cache workload)")
    if one and two:  # what limits the ratio on a machine whose cores the server shares
        cost = [run.locust_cores / run.requests_per_s * 1e6 for run in (one, two)]
        ceiling = (os.cpu_count() or 1) - two.server_cores
        most = ceiling / one.locust_cores
        print(
            f"scaling    locust CPU per request: {cost[0]:.0f} us (1 process), {cost[1]:.0f} us (2); cores left "
            f"beside the server: {ceiling:.2f}, so at most {most:.2f}x the 1-process run"
        )
    for connection, (mib, base) in rss.items():
        print(f"RSS        {connection}: {mib:.2f} MiB per 100 users ({args.rss_users} users; baseline {base} MiB)")
    checks = [
        (
            "pooled (stock, instrumented) >= 95% of bare ops/cpu-s",
            per_cpu["pooled"] / bare >= 0.95,
            f"{per_cpu['pooled'] / bare:.1%}",
        ),
    ]
    for what, met, figure in checks:
        print(f"target: {what}: {'met' if met else 'NOT met'} ({figure})")


if __name__ == "__main__":
    main()
