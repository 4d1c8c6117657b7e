"""HTTP benchmark (run by hand, not a test): what the pack's HTTP users cost per request.

A trivial endpoint (``GET /ping`` answering a small JSON body, keep-alive) is served by a process of
its own, so its CPU is not the load generator's. Against it, in one go, each for --seconds with --users
users and no think time:

  bare   Locust's FastHttpUser calling ``self.client.get("/ping")``: what a user writes by hand
  pack   the pack's ServiceUser (scenarios/service_user.py), with a body check, and the recovery
         trackers listening with a fault window open all along

Prints requests/s and requests per CPU-second of the Locust process, and pack's share of bare.
The target: pack keeps at least 90% of bare's requests per CPU-second.

    .venv/bin/python bench/http_users.py --seconds 10 --users 20 --rounds 3
"""

from __future__ import annotations

import locust  # noqa: F401  (first: gevent's monkey-patching)
from locust import task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment
from locust.event import Events

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from typing import Any

import gevent

from chaos.profile import parse_profile
from recovery.tracker import RequestTrackers
from scenarios.run import PackRun, attach
from scenarios.service_user import ServiceUser
from targets.embedded import end_process, free_port

BODY = b'{"status":"ok"}'
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)


class Ping(asyncio.Protocol):
    """A keep-alive HTTP/1.1 server that answers every request (no body expected) with RESPONSE."""

    def connection_made(self, transport: Any) -> None:
        self.transport, self.buffer = transport, b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            self.buffer = self.buffer[end + 4 :]
            self.transport.write(RESPONSE)


def serve(port: int) -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Ping, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class BareUser(FastHttpUser):
    host = ""

    def wait_time(self) -> float:
        return 0.0

    @task
    def ping(self) -> None:
        self.client.get("/ping")


def run_locust(user_class: type[Any], users: int, seconds: float, url: str) -> tuple[int, float, float]:
    env = Environment(user_classes=[user_class], events=Events())
    if user_class is ServiceUser:
        profile = parse_profile(
            {
                "recovery": {"max_window_s": 3600},
                "service": {
                    "url": url,
                    "think_time": {"min_ms": 0, "max_ms": 0},
                    "endpoints": [
                        {"name": "GET /ping", "path": "/ping", "checks": [{"path": "status", "equals": "ok"}]}
                    ],
                },
            },
            "bench",
        )
        attach(env, PackRun(profile, "redis://127.0.0.1:1", "bench", service_url=url))
        trackers = RequestTrackers(profile.recovery, ServiceUser.request_types)
        env.events.request.add_listener(trackers.on_request)
        trackers.open_window(1, "bench", time.monotonic())
    else:
        BareUser.host = url
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users, wait=True)
    gevent.sleep(1.0)  # warm-up, then measure
    env.stats.reset_all()
    cpu0, wall0 = time.process_time(), time.monotonic()
    gevent.sleep(seconds)
    requests, failures = env.stats.total.num_requests, env.stats.total.num_failures
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    runner.quit()
    if failures:
        raise SystemExit(f"{user_class.__name__}: {failures} of {requests} requests failed: the figures are void")
    return requests, cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1, help="repeat both variants, interleaved")
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)  # the endpoint's process
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return
    port = free_port("127.0.0.1")
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("the endpoint's server did not start") from None
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        variants: dict[str, type[Any]] = {"bare": BareUser, "pack": ServiceUser}
        totals = {name: [0.0, 0.0, 0.0] for name in variants}
        for _ in range(args.rounds):
            for name, cls in variants.items():
                for i, value in enumerate(run_locust(cls, args.users, args.seconds, url)):
                    totals[name][i] += value
    finally:
        end_process(server)
    bare_per_cpu = totals["bare"][0] / totals["bare"][1]
    print(f"{'variant':8} {'requests':>9} {'req/s':>8} {'cpu_s':>7} {'req/cpu-s':>10} {'vs bare':>8}")
    for name, (requests, cpu_s, wall_s) in totals.items():
        per_cpu = requests / cpu_s
        print(
            f"{name:8} {int(requests):9d} {requests / wall_s:8.0f} {cpu_s:7.2f} {per_cpu:10.0f} "
            f"{per_cpu / bare_per_cpu:8.1%}"
        )
    ratio = totals["pack"][0] / totals["pack"][1] / bare_per_cpu
    print(f"target: pack >= 90% of bare requests/cpu-s: {'met' if ratio >= 0.9 else 'NOT met'} ({ratio:.1%})")


if __name__ == "__main__":
    main()
