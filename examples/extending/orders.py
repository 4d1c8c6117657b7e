"""orders: users place orders as an application's data layer does, each order measured as one operation.

A workload whose requests are its own: each ``place`` is one request of type ``ORDER`` around the
commands it takes (HINCRBY on the customer's order count, LPUSH onto their recent orders, LTRIM), fired
on Locust's ``request`` event as Locust's ``contrib/dns.py`` fires its own. The class declares the type
in ``request_types``, so the recovery tracker measures it beside the commands (``REDIS``): the report's
``by_type.ORDER`` says how many orders a fault failed and when placing one was healthy again.
"""

from __future__ import annotations

from locust import task
from locust.env import Environment

import random
import time

from pydantic import Field

from config.schema import WorkloadSettings
from scenarios.client import RedisRequestFailed
from scenarios.registry import register_workload
from scenarios.user import RedisUser

ORDER = "ORDER"


class OrderSettings(WorkloadSettings):
    customers: int = Field(100, ge=1, description="Distinct customers who place orders.")
    recent: int = Field(10, ge=1, description="How many recent orders each customer's list keeps.")


@register_workload
class OrderUser(RedisUser):
    label = "orders"
    Settings = OrderSettings
    request_types = (*RedisUser.request_types, ORDER)  # its commands, and its own operation

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.spec = self.settings(OrderSettings)
        self.fire = environment.events.request.fire

    @task
    def place(self) -> None:
        customer = random.randrange(self.spec.customers)
        start = time.perf_counter()
        failed: BaseException | None = None
        try:
            number = self.client.hincrby(self.key("orders", "count"), str(customer), 1)
            recent = self.key("orders", "recent", customer)
            self.client.lpush(recent, number)
            self.client.ltrim(recent, 0, self.spec.recent - 1)
        except RedisRequestFailed as exc:  # the command's own request is fired already; the order failed
            failed = exc.cause
        self.fire(
            request_type=ORDER,
            name="place",
            response_time=(time.perf_counter() - start) * 1000,
            response_length=0,
            exception=failed,
            context={"user": self.user_key},
        )
