"""redis-resilience: Redis traffic under injected faults, with measured recovery and an SLO verdict.

locust -f locustfile.py                                   # web UI, config/default.yaml
locust -f locustfile.py --headless -u 50 -r 50 -t 60s --resilience-profile config/ci.yaml
"""

import locust  # noqa: F401  (first: it patches the standard library with gevent)

import chaos.plugin  # noqa: F401  (the pack's options, events, chaos, tracker and verdict)
from scenarios.cache import CacheUser
from scenarios.ledger import LedgerUser

__all__ = ["CacheUser", "LedgerUser"]
