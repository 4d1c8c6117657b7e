"""redis-resilience: Redis traffic under injected faults, with measured recovery and an SLO verdict.

    locust -f locustfile.py                                   # web UI, config/default.yaml
    locust -f locustfile.py --headless -u 50 -r 50 -t 60s --resilience-profile config/ci.yaml

Each workload is a user class; the profile's ``workload.mix`` weighs them (0: not run).
"""

import locust  # noqa: F401  (first: it patches the standard library with gevent)

import chaos.plugin  # noqa: F401  (the pack's options, events, chaos, tracker and verdict)
from scenarios.batch import PipelineUser, TransactionUser
from scenarios.cache import CacheUser
from scenarios.leaderboard import LeaderboardUser
from scenarios.ledger import LedgerUser
from scenarios.lock import LockUser
from scenarios.pubsub import PubSubUser
from scenarios.queue import QueueUser
from scenarios.ratelimit import RateLimitUser
from scenarios.session import SessionUser
from scenarios.stream import StreamUser

__all__ = [
    "CacheUser",
    "LeaderboardUser",
    "LedgerUser",
    "LockUser",
    "PipelineUser",
    "PubSubUser",
    "QueueUser",
    "RateLimitUser",
    "SessionUser",
    "StreamUser",
    "TransactionUser",
]
