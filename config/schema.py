"""The profile's generic models: typed, frozen, strict. What only the registries know (each fault's
params, each workload's settings and integrity limits) is added by chaos/profile.py, whose
``python -m chaos.profile`` prints the JSON Schema."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from config.base import NonNegative, Positive, Rate, Strict, ThinkTime
from config.service import Service
from config.target import Target


class Backoff(Strict):
    """Mirrors redis.backoff: the strategy redis-py sleeps by between retries."""

    kind: Literal[
        "none",
        "constant",
        "exponential",
        "exponential_jitter",
        "full_jitter",
        "equal_jitter",
        "decorrelated_jitter",
    ] = "exponential_jitter"
    base_s: NonNegative = 0.01
    cap_s: NonNegative = 1.0


def _yaml_switch(value: Any) -> Any:
    """YAML reads an unquoted ``on`` / ``off`` as a boolean: take it as the word written."""
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


class ClientOptions(Strict):
    """The redis-py knobs whose resilience users test. Defaults are redis-py 8's own."""

    retries: int = Field(10, ge=-1, description="Retries after a connection or timeout error; -1 retries forever.")
    backoff: Backoff = Backoff()
    retry_on_timeout: bool = Field(True, description="Also retry on TimeoutError (redis-py 8 does by default).")
    socket_timeout_s: Positive | None = 5.0
    socket_connect_timeout_s: Positive | None = 5.0
    socket_keepalive: bool = True
    health_check_interval_s: NonNegative = 0
    max_connections: int | None = Field(
        None, ge=1, description="Pool size per user; null is redis-py's default (unbounded; 50 for a blocking pool)."
    )
    pool: Literal["default", "blocking"] = Field(
        "default",
        description="default: redis.ConnectionPool (a command past max_connections raises at once); blocking: "
        "redis.BlockingConnectionPool (it waits up to pool_timeout_s for a free connection). redis:// and "
        "rediss:// targets only.",
    )
    pool_timeout_s: Positive = Field(20.0, description="How long a blocking pool waits for a free connection.")
    connection: Literal["pooled", "dedicated"] = Field(
        "pooled",
        description="pooled: each user checks a connection out of its own redis.ConnectionPool per command, as "
        "a service does; dedicated: each user's redis.Redis holds one connection for its life "
        "(redis-py's single_connection_client=True), as a worker with a connection per thread does. Both "
        "are stock redis-py: they retry and reconnect as redis-py does.",
    )
    maint_notifications: Annotated[Literal["auto", "on", "off"], BeforeValidator(_yaml_switch)] = Field(
        "auto",
        description="Maintenance notifications (redis-py's maint_notifications_config): auto (redis-py 8's "
        "default: asked for on each new connection, a server that refuses is fine), on (a server that refuses "
        "is an error), off (not asked for: the client ignores MOVING, MIGRATING, FAILING_OVER).",
    )
    parser: Literal["hiredis", "python"] = Field(
        "hiredis",
        description="The reply parser: hiredis (C; what redis-py picks when hiredis is installed) or python "
        "(redis-py's own). They fail differently when a connection is closed under a command in flight: "
        "hiredis raises a ConnectionError that redis-py retries, the python parser an error it does not.",
    )


Weight = Annotated[int, Field(ge=0, description="Relative number of users running this workload; 0: none.")]
Skew = Annotated[
    float, Field(ge=0, description="Hot-key skew: 0 spreads keys uniformly; larger values favour a few hot keys.")
]


class WorkloadSettings(Strict):
    """Settings every workload has: its weight in the mix. A workload's module subclasses this with
    its own keys (units in the names) and registers it with its user class (scenarios/registry.py)."""

    weight: Weight = 0


class WorkloadMix(Strict):
    """``workload.mix``: one key per registered workload. The profile model the pack loads has a
    field per workload of the registry (chaos/profile.py); this base has none."""


class Workload(Strict):
    key_prefix: str = Field(
        "rr", pattern=r"^[A-Za-z0-9_.-]+$", description="Every key lives under '<prefix>:<run id>:'."
    )
    think_time: ThinkTime = ThinkTime()
    mix: WorkloadMix = WorkloadMix()

    @property
    def total_weight(self) -> int:
        """The Redis workloads' weights together (0: no Redis users)."""
        return sum(getattr(self.mix, name).weight for name in type(self.mix).model_fields)


class FaultSpec(Strict):
    """Fields common to every fault entry of a profile, decoded before the fault's own. Each fault's
    module subclasses this with its typed params (chaos/faults/); the profile model the pack loads
    tells the entries apart by ``name`` (chaos/profile.py)."""

    name: str = Field(description="Which fault (a key of the fault registry).")
    weight: float = Field(1.0, ge=0, description="Relative chance of this fault at each tick of the schedule.")

    def own_timeout_s(self) -> float | None:
        """How long this entry lets one call of its fault (inject, revert) run by its own params (``timeout_s``),
        or None: ``chaos.fault_timeout_s`` must leave it that long (checked at load)."""
        return None


class Chaos(Strict):
    enabled: bool = True
    start_after_s: NonNegative = 5
    every_s: Positive = 5
    jitter_s: NonNegative = 0
    count: int | None = Field(None, ge=1, description="How many faults at most; null: until the test stops.")
    seed: int | None = Field(None, description="Seed of the fault choice and jitter; null: random.")
    order: Literal["weighted", "cycle"] = Field(
        "weighted",
        description="weighted: a random fault by weight at each tick; cycle: the list in order, again and again.",
    )
    fault_timeout_s: Positive = Field(
        60,
        description="A fault's inject (or revert) that has not returned after this fails: recorded, schedule goes on.",
    )
    allow_remote: bool = Field(
        False,
        description="Allow chaos against a target that is not on loopback (127.0.0.0/8, ::1, localhost); "
        "also --allow-remote-chaos. Without it such a run stops before any user spawns (a --no-chaos run may go).",
    )
    faults: list[FaultSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _runnable(self) -> Chaos:
        if self.enabled:
            if not self.faults:
                raise ValueError("chaos is enabled but chaos.faults is empty: list a fault or set enabled: false")
            if sum(f.weight for f in self.faults) <= 0:
                raise ValueError("the weights of chaos.faults sum to 0: give at least one fault a weight > 0")
        if self.jitter_s >= self.every_s:
            raise ValueError(f"jitter_s ({self.jitter_s}) must be smaller than every_s ({self.every_s})")
        for index, fault in enumerate(self.faults):
            own = fault.own_timeout_s()
            if own is not None and own > self.fault_timeout_s:
                raise ValueError(
                    f"faults[{index}] ({fault.name}): timeout_s ({own:g}) exceeds fault_timeout_s "
                    f"({self.fault_timeout_s:g}), which would cut the call off first: lower timeout_s or raise "
                    "fault_timeout_s"
                )
        return self


class Witness(Strict):
    """The witness: a raw connection per data node, timed in a process of its own (targets/witness.py)."""

    enabled: bool = Field(True, description="Measure each fault's server-side outage (outage_s, client_excess_s).")
    period_ms: Annotated[float, Field(ge=0.5, le=1000)] = Field(2.0, description="How often the witness PINGs.")
    late_ms: Annotated[float, Field(ge=1, le=10000)] = Field(
        10.0, description="A reply later than this (or none) is the server unavailable."
    )


class Recovery(Strict):
    max_window_s: Positive = Field(10, description="A fault window closes at the next fault or after this.")
    degraded_latency_ms: Positive | Literal["auto"] = Field(
        "auto", description="A request slower than this is degraded; auto: from the pre-fault baseline p99."
    )
    baseline_p99_factor: Annotated[float, Field(ge=1)] = 5.0
    degraded_latency_floor_ms: Positive = 50
    min_baseline_requests: int = Field(100, ge=1, description="Below this, auto uses the floor alone.")
    witness: Witness = Witness()


class Slo(Strict):
    """Limits the verdict checks; null skips a check. The profile model the pack loads adds one
    ``max_<figure>`` limit per integrity figure a registered workload gates on (chaos/profile.py)."""

    max_recovery_p95_s: NonNegative | None = 2.0
    max_client_excess_p95_s: NonNegative | None = Field(
        None, description="What the clients add beyond the server's own outage (recovery_s - outage end), p95."
    )
    max_error_rate_in_windows: Rate | None = 0.05
    max_error_rate_outside_windows: Rate | None = 0.001
    max_lost_writes: int | None = Field(0, ge=0)
    max_duplicated_writes: int | None = Field(None, ge=0)
    max_failed_faults: int | None = Field(0, ge=0)
    max_user_errors: int | None = Field(
        0,
        ge=0,
        description="Unexpected exceptions in user code (Locust's error report); a crashed workload is no pass.",
    )
    max_missing_workers: int | None = Field(
        0, ge=0, description="Workers that stopped reporting mid-run (distributed runs): their figures are missing."
    )
    min_requests: int | None = Field(1, ge=0, description="A run that made fewer requests proves nothing.")
    service_recovered_at_end: bool | None = Field(
        True,
        description="The service's health endpoint (service.health) must say healthy again at the end of the run; "
        "null or false: not checked. Without service.health, nothing to check.",
    )


class Profile(Strict):
    """A whole profile: what to load, how the client is built, which faults, and the SLOs."""

    target: Target = Target()
    client: ClientOptions = ClientOptions()
    workload: Workload = Workload()
    service: Service | None = Field(
        None, description="HTTP users against a Redis-backed service whose Redis is the target (docs/service.md)."
    )
    chaos: Chaos = Chaos(enabled=False)
    recovery: Recovery = Recovery()
    slo: Slo = Slo()

    @model_validator(mode="after")
    def _some_users(self) -> Profile:
        if type(self.workload.mix).model_fields and self.workload.total_weight == 0:
            if self.service is None:
                raise ValueError("the weights of workload.mix sum to 0: give at least one workload a weight > 0")
            if self.service.weight == 0:
                raise ValueError("workload.mix and service.weight are all 0: give the Redis or the HTTP users a weight")
        return self

    @model_validator(mode="after")
    def _cluster_retries(self) -> Profile:
        cluster = self.target.url == "embedded-cluster" or self.target.url.startswith("cluster://")
        if cluster and self.client.retries < 0:
            raise ValueError("client.retries: -1 (retry forever) does not work with redis-py's cluster client")
        return self
