"""Throughput benchmark (run by hand, not a test): what the pack costs per request.

Against one embedded redis-server, in one go, each for --seconds with --users users and no
think time, same 90/10 GET/SET mix over the same keys:

  bare        a plain Locust user calling redis-py and firing ``request`` itself (contrib/dns style)
  pack-off    the pack's instrumented client, no recovery tracker listening
  pack-on     the pack's client with the recovery tracker listening, a fault window open all along
  pack-obs    pack-on with the per-second time series kept (the trackers per request type) and, once a
              second, what a live view or a Prometheus scrape computes (the timeline, the metrics)
  redis-benchmark, for reference (its own process; ops/s only)

Prints ops/s and ops per CPU-second of the Locust process, and the ratios to bare. The target:
pack-on keeps at least 90% of bare's ops per CPU-second.

    .venv/bin/python bench/throughput.py --seconds 10 --users 20
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent's monkey-patching)
from locust import User, task
from locust.env import Environment
from locust.event import Events

import argparse
import random
import re
import shutil
import subprocess
import time
from typing import Any

import gevent
import redis

from chaos.profile import parse_profile
from recovery.metrics import families
from recovery.series import timeline
from recovery.tracker import RecoveryTracker, RequestTrackers
from scenarios.client import ConnectionProbe, InstrumentedRedis, make_pool
from targets.embedded import EmbeddedRedis

KEYSPACE = 1000
VALUE = b"v" * 128
URL = ""  # set in main(): users are built by Locust, so the target travels as a class attribute


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


class PackUser(User):
    """The pack's instrumented client, built from the default profile's client options."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        probe = ConnectionProbe()
        profile = parse_profile({}, "bench")
        pool = make_pool(URL, profile.client, "rr-bench-0", probe)
        self.client = InstrumentedRedis(pool, environment.events.request, "bench", id(self), probe)

    def wait_time(self) -> float:
        return 0.0

    @task
    def op(self) -> None:
        one_op(self.client)


def scrape(trackers: RequestTrackers) -> None:
    """Once a second, what a live view or a Prometheus scrape computes."""
    while True:
        gevent.sleep(1.0)
        timeline(trackers.series(), trackers.users)
        families(None, None)


def run_locust(user_class: type[User], users: int, seconds: float, tracker: str) -> tuple[int, float, float]:
    env = Environment(user_classes=[user_class], events=Events())
    scraper = None
    recovery = parse_profile({"recovery": {"max_window_s": 3600}}, "bench").recovery
    if tracker == "on":
        t = RecoveryTracker(recovery)
        env.events.request.add_listener(t.on_request)
        t.open_window(1, "bench", time.monotonic())
    elif tracker == "obs":
        trackers = RequestTrackers(recovery)
        env.events.request.add_listener(trackers.on_request)
        trackers.open_window(1, "bench", time.monotonic())
        scraper = gevent.spawn(scrape, trackers)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users, wait=True)
    gevent.sleep(1.0)  # warm-up, then measure
    env.stats.reset_all()
    cpu0, wall0 = time.process_time(), time.monotonic()
    gevent.sleep(seconds)
    ops = env.stats.total.num_requests
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    runner.quit()
    if scraper is not None:
        scraper.kill()
    return ops, cpu, wall


def redis_benchmark(port: int, users: int) -> float | None:
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    out = subprocess.run(
        [binary, "-p", str(port), "-c", str(users), "-n", "200000", "-t", "get,set", "-q", "-d", "128"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    rates = [float(x) for x in re.findall(r"([\d.]+) requests per second", out)]
    return sum(rates) / len(rates) if rates else None


def main() -> None:
    global URL
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1, help="repeat the Locust variants, interleaved")
    args = parser.parse_args()
    with EmbeddedRedis() as server:
        URL = server.url
        variants = {
            "bare": (BareUser, "off"),
            "pack-off": (PackUser, "off"),
            "pack-on": (PackUser, "on"),
            "pack-obs": (PackUser, "obs"),
        }
        totals: dict[str, list[float]] = {name: [0.0, 0.0, 0.0] for name in variants}
        names = list(variants)
        for round_ in range(args.rounds):  # each round starts with another variant: no variant always runs first
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                cls, tracker = variants[name]
                ops, cpu, wall = run_locust(cls, args.users, args.seconds, tracker)
                totals[name][0] += ops
                totals[name][1] += cpu
                totals[name][2] += wall
        reference = redis_benchmark(server.port, args.users)
    bare_per_cpu = totals["bare"][0] / totals["bare"][1]
    print(f"{'variant':10} {'ops':>9} {'ops/s':>9} {'cpu_s':>7} {'ops/cpu-s':>10} {'vs bare':>8}")
    for name, (total_ops, cpu_s, wall_s) in totals.items():
        per_cpu = total_ops / cpu_s
        print(
            f"{name:10} {int(total_ops):9d} {total_ops / wall_s:9.0f} {cpu_s:7.2f} {per_cpu:10.0f}"
            f" {per_cpu / bare_per_cpu:8.1%}"
        )
    if reference is not None:
        print(f"{'redis-benchmark':15} {reference:9.0f} ops/s (GET/SET, {args.users} clients, its own process)")
    ratio = totals["pack-on"][0] / totals["pack-on"][1] / bare_per_cpu
    print(f"target: pack-on >= 90% of bare ops/cpu-s: {'met' if ratio >= 0.9 else 'NOT met'} ({ratio:.1%})")
    obs = totals["pack-obs"][0] / totals["pack-obs"][1] / bare_per_cpu
    lost = (ratio - obs) * 100
    print(f"target: the series and metrics cost at most 3 points: {'met' if lost <= 3 else 'NOT met'} "
          f"(pack-obs {obs:.1%}, {lost:+.1f} points against pack-on)")


if __name__ == "__main__":
    main()
