"""The pack with a fault and two workloads of your own, one with a request type of its own (docs/extending.md).

    locust -f examples/extending/locustfile.py --headless -u 20 -r 20 -t 20s \
        --resilience-profile examples/extending/profile.yaml

Locust puts this file's folder on the import path, so the two modules beside it import by name.
"""

import locust  # noqa: F401  (first: it patches the standard library with gevent)

import script_flush  # noqa: F401  (registers the script_flush fault)
from counter import CounterUser  # noqa: F401  (registers the counter workload; Locust runs it)
from orders import OrderUser  # noqa: F401  (the orders workload: requests of its own type, ORDER)

import chaos.plugin  # noqa: F401  (the pack's options, events, chaos, tracker and verdict)
from scenarios.workloads import *  # noqa: F403  (the pack's own workloads: weight 0 unless the profile says)
