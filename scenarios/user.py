"""RedisUser: the abstract Locust user every workload builds on."""

from __future__ import annotations

from locust import User
from locust.env import Environment

import random
from typing import ClassVar, TypeVar

from config.schema import Profile, WorkloadSettings
from scenarios.client import ConnectionProbe
from scenarios.registry import Gate
from scenarios.request_types import DeclaresRequestTypes
from scenarios.run import run_of
from scenarios.service_user import ServiceUser
from scenarios.traffic_client import traffic_client

S = TypeVar("S", bound=WorkloadSettings)


class RedisUser(DeclaresRequestTypes, User):
    """A user with its own instrumented client and pool, like one instance of an application.

    Subclasses set ``label`` (the workload name, shown in request names and tags) and add tasks.
    Think time comes from the profile, so a subclass sets no ``wait_time``. On a cluster target
    the client is a cluster client (:mod:`scenarios.cluster`) with a pool per node.
    """

    abstract = True
    label = "redis"
    # What the workload registry reads (scenarios/registry.py): the profile keys under
    # ``workload.mix.<label>``, the integrity figures the verdict can limit, and how its run-wide
    # figures are derived from every node's merged ones.
    Settings: ClassVar[type[WorkloadSettings]] = WorkloadSettings
    gates: ClassVar[tuple[Gate, ...]] = ()
    # The request types it fires, which the recovery tracker measures (scenarios/request_types.py): its
    # client's (scenarios/client.py); a workload that fires one of its own adds it to these.
    request_types: ClassVar[tuple[str, ...]] = ("REDIS",)

    @staticmethod
    def derive_figures(figures: dict[str, float]) -> dict[str, float]:
        """Run-wide figures from the merged ones (none by default)."""
        return {}

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.redis_run = run_of(environment)
        self.user_key = self.redis_run.new_user_key()
        probe = ConnectionProbe()
        name = f"{self.redis_run.traffic_tag}{self.user_key}"
        run = self.redis_run
        self.client, self.pool = traffic_client(
            run.url, run.profile.client, name, probe, environment.events.request, self.label, self.user_key, run.access
        )
        run.pools.add(self.pool)
        think = self.redis_run.profile.workload.think_time
        self._think_s = (think.min_ms / 1000, think.max_ms / 1000)
        self._prefix = self.redis_run.key_prefix

    def settings(self, model: type[S]) -> S:
        """This workload's ``workload.mix.<label>`` settings from the profile, as its own model."""
        spec = getattr(self.redis_run.profile.workload.mix, self.label)
        if not isinstance(spec, model):
            raise TypeError(f"workload.mix.{self.label} is a {type(spec).__name__}, not a {model.__name__}")
        return spec

    def key(self, *parts: object) -> str:
        """A key under the run prefix: ``key("cache", 7)`` -> ``rr:<run id>:cache:7``."""
        return self._prefix + ":".join(str(p) for p in parts)

    def tagged_key(self, tag: str, *parts: object) -> str:
        """A key in the hash slot of ``tag``: ``tagged_key("queue", "jobs")`` -> ``rr:<run id>:{queue}:jobs``.

        Keys sharing a tag live on one Redis Cluster node, so they can meet in one command,
        transaction or script (BLMOVE, WATCH/MULTI/EXEC); the same layout on every target.
        """
        return f"{self._prefix}{{{tag}}}" + "".join(f":{p}" for p in parts)

    def wait_time(self) -> float:
        low, high = self._think_s
        return low + random.random() * (high - low)

    def on_stop(self) -> None:
        self.pool.disconnect()


def skewed_index(n: int, skew: float) -> int:
    """A random index below ``n``: uniform for skew 0, ever more often a low ("hot") one as skew grows."""
    return min(n - 1, int(n * random.random() ** (1.0 + skew)))


def apply_profile_weights(user_classes: list[type[User]], profile: Profile) -> list[type[User]]:
    """The user classes weighted as the profile says, without the ones weighted 0.

    Each workload class is subclassed under the same name with the profile's weight (a
    :class:`ServiceUser` with ``service.weight``, 0 without a service): the classes themselves stay
    untouched, so two environments (or tests) never share weights.
    ValueError: a workload class the registry does not know (it would run at Locust's weight 1,
    with no settings of its own).
    """
    weighted: list[type[User]] = []
    for cls in user_classes:
        spec = getattr(profile.workload.mix, cls.label, None) if issubclass(cls, RedisUser) else None
        if issubclass(cls, RedisUser) and spec is None:
            raise ValueError(
                f"the user class {cls.__name__} (label {cls.label!r}) is not a registered workload: decorate it "
                "with @register_workload and give it Settings (docs/extending.md)"
            )
        if spec is not None:
            cls = type(cls.__name__, (cls,), {"weight": spec.weight, "__module__": cls.__module__})
        elif issubclass(cls, ServiceUser):
            weight = profile.service.weight if profile.service is not None else 0
            cls = type(cls.__name__, (cls,), {"weight": weight, "__module__": cls.__module__})
        if cls.weight > 0 or cls.fixed_count > 0:
            weighted.append(cls)
    return weighted
