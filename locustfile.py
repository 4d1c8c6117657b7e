"""redis-resilience: Redis traffic under injected faults, with measured recovery and an SLO verdict.

    locust -f locustfile.py                                   # web UI, config/default.yaml
    locust -f locustfile.py --headless -u 50 -r 50 -t 60s --resilience-profile config/ci.yaml

Each registered workload is a user class (scenarios/workloads.py); the profile's ``workload.mix``
weighs them (0: not run). ServiceUser calls the profile's ``service`` (HTTP through a Redis-backed
service: docs/service.md), weighted by ``service.weight``. A locustfile of your own can register
more workloads (docs/extending.md).
"""

import locust  # noqa: F401  (first: it patches the standard library with gevent)

import chaos.plugin  # noqa: F401  (the pack's options, events, chaos, tracker and verdict)
from scenarios.service_user import ServiceUser  # noqa: F401  (HTTP users of the profile's service, if any)
from scenarios.workloads import *  # noqa: F403  (every registered workload's user class, for Locust to run)
