"""The pack's workloads: one module each, registered by name (scenarios/registry.py).

Each line imports a workload's user class, which registers it (``@register_workload``); the
locustfile imports this module's classes so Locust runs them. Adding a workload is its module
and its line here; docs/extending.md walks through it.
"""

from __future__ import annotations

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
