"""pubsub: every user subscribes on a connection of its own and publishes; receivers are counted.

PUBLISH answers how many subscribers got the message, so published deliveries can be set
against messages received. Pub/sub is at-most-once: a subscriber that lost its connection
misses what was published until it has subscribed again. The figures: deliveries expected and
received (lost = the difference, over all nodes: :func:`lost_messages`), resubscriptions and
the longest time from a connection error to the renewed subscription.
"""

from __future__ import annotations

from locust import tag, task
from locust.env import Environment

import contextlib
import random
import time
from typing import Any

import gevent
from pydantic import Field

from config.schema import WorkloadSettings
from scenarios.client import ConnectionProbe
from scenarios.registry import Gate, register_workload
from scenarios.run import IntegrityResult, RedisClient
from scenarios.traffic_client import plain_client
from scenarios.user import RedisUser
from targets.clients import REDIS_CALL_ERRORS
from targets.greenlets import spawn_reported, stop

DRAIN_S = 0.5  # at stop, how long a subscriber may take to read what is still on its way


def lost_messages(figures: dict[str, float]) -> int:
    return int(max(0, figures.get("deliveries_expected", 0) - figures.get("received", 0)))


class PubSubFigures:
    def __init__(self) -> None:
        self.published = 0
        self.deliveries_expected = 0
        self.received = 0
        self.resubscribes = 0
        self.resubscribe_s_max = 0.0

    def verify(self, client: RedisClient) -> IntegrityResult:
        figures: dict[str, float] = {
            "published": self.published,
            "deliveries_expected": self.deliveries_expected,
            "received": self.received,
            "resubscribes": self.resubscribes,
            "resubscribe_s_max": round(self.resubscribe_s_max, 4),
        }
        return IntegrityResult(figures=figures)


class PubSubWorkload(WorkloadSettings):
    channels: int = Field(1, ge=1)
    value_bytes: int = Field(64, ge=0)


@register_workload
class PubSubUser(RedisUser):
    Settings = PubSubWorkload
    gates = (
        Gate(
            "lost_messages",
            "lost_messages",
            None,
            "Pub/sub is at-most-once: lost messages are reported; set a limit to gate on them.",
        ),
    )

    @staticmethod
    def derive_figures(figures: dict[str, float]) -> dict[str, float]:
        return {"lost_messages": lost_messages(figures)}

    label = "pubsub"

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.spec = self.settings(PubSubWorkload)
        # One hash tag: on a cluster, subscribers (on the node of their first channel's slot) and PUBLISH
        # (on the node of its channel's slot) meet on one node, whose receiver count PUBLISH returns.
        self.channels = [self.tagged_key("pubsub", i) for i in range(self.spec.channels)]
        self.payload = "m" * self.spec.value_bytes
        self.figures = self.redis_run.check(self.label, PubSubFigures)
        # The subscription has a pool (and probe) of its own: its errors and reconnections are its own.
        run = self.redis_run
        self.sub_probe = ConnectionProbe()
        sub_client, self.sub_pool = plain_client(
            run.url, run.profile.client, f"{run.traffic_tag}{self.user_key}s", self.sub_probe, run.access
        )
        run.pools.add(self.sub_pool)
        self.pubsub = sub_client.pubsub()
        self.listener: gevent.Greenlet[..., None] | None = None
        self.lost_at: float | None = None

    def on_start(self) -> None:
        self.listener = spawn_reported(self.listener_crashed, self.listen)

    def listener_crashed(self, exc: BaseException) -> None:
        """Redis errors are retried in :meth:`listen`: anything else is a bug that ends the subscription.
        It counts as a crashed task does (Locust's user errors, the report's ``user_errors``), not only
        as lost messages."""
        self.environment.events.user_error.fire(user_instance=self, exception=exc, tb=exc.__traceback__)

    def listen(self) -> None:
        confirmed = 0
        while True:
            try:
                if not self.pubsub.subscribed:
                    self.pubsub.subscribe(*self.channels)
                message = self.pubsub.get_message(timeout=1.0)
            except REDIS_CALL_ERRORS:
                self.lost_at = self.lost_at or time.monotonic()
                gevent.sleep(0.05)  # back off before the next read reconnects
                continue
            if message is not None:
                confirmed = self.on_message(message, confirmed)

    def on_message(self, message: dict[str, Any], confirmed: int) -> int:
        if message["type"] in ("message", b"message"):
            self.figures.received += 1
        elif message["type"] in ("subscribe", b"subscribe"):
            confirmed += 1
            if confirmed > len(self.channels) and confirmed % len(self.channels) == 0:  # all channels again
                lost_at = self.lost_at or self.sub_probe.last_failure_at
                self.figures.resubscribes += 1
                if lost_at:
                    self.figures.resubscribe_s_max = max(self.figures.resubscribe_s_max, time.monotonic() - lost_at)
                self.lost_at = None
        return confirmed

    @tag("pubsub")
    @task
    def publish(self) -> None:
        receivers = self.client.publish(random.choice(self.channels), self.payload)
        self.figures.published += 1
        self.figures.deliveries_expected += int(receivers)

    def on_stop(self) -> None:
        stop(self.listener)
        with contextlib.suppress(*REDIS_CALL_ERRORS), gevent.Timeout(DRAIN_S, False):
            while (message := self.pubsub.get_message(timeout=0.1)) is not None:
                self.on_message(message, 0)
        with contextlib.suppress(*REDIS_CALL_ERRORS):
            self.pubsub.close()
        self.sub_pool.disconnect()
        super().on_stop()
