"""The request listener's cost per request, as Locust calls it (keyword arguments), run by hand:

    .venv/bin/python bench/listener.py

Compares the tracker called directly, the role's listener (chaos/roles/measuring.py), and a
``**kwargs`` forwarder (what the role's listener must not be: it repacks every request's arguments).
"""

from __future__ import annotations

import locust  # noqa: F401  (first: it patches the standard library with gevent)

import timeit
from collections.abc import Callable
from functools import partial
from typing import Any

from chaos.locust_test import MeasuredTest
from chaos.profile import parse_profile
from chaos.roles.measuring import MeasuresRequests
from scenarios.user import RedisUser

REQUESTS = 200_000


class KwargsForwarder:
    def __init__(self, run: MeasuredTest) -> None:
        self.run = run

    def on_request(self, **kwargs: Any) -> None:
        run = self.run
        if run is not None:
            run.tracker.on_request(**kwargs)


class Role(MeasuresRequests):
    def __init__(self, run: MeasuredTest) -> None:
        self.run = run


def call(listener: Callable[..., None], fired: dict[str, Any]) -> None:
    listener(**fired)  # as Locust's EventHook.fire does


def main() -> None:
    run = MeasuredTest(1, parse_profile({}, "bench").recovery, on_closed=lambda window: None, user_classes=[RedisUser])
    context = {"user": "u1", "retries": 0, "reconnects": 0}
    fired = {
        "request_type": "REDIS",
        "name": "GET",
        "response_time": 0.4,
        "response_length": 10,
        "exception": None,
        "context": context,
        "url": None,
        "start_time": 0.0,
    }
    role, forwarder = Role(run), KwargsForwarder(run)
    for label, listener in (
        ("tracker alone", run.tracker.on_request),
        ("role listener", role.on_request),
        ("**kwargs forwarder", forwarder.on_request),
    ):
        best = min(timeit.repeat(partial(call, listener, fired), number=REQUESTS, repeat=5))
        print(f"{label:20s} {best / REQUESTS * 1e6:.2f} us per request")


if __name__ == "__main__":
    main()
