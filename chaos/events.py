"""The pack's custom events, documented like Locust's own and reachable as ``environment.events.<name>``."""

from __future__ import annotations

from locust.event import EventHook, Events

from recovery.tracker import WindowSummary


class ResilienceEvents:
    fault_started: EventHook
    """
    Fired on the node that injects a fault, as its injection call begins: the fault's window opens
    here (a request that completes while the call runs, such as a reset endpoint's own 503, is the
    fault's), and its ``recovery_s`` and the witness's ``outage_started_s`` count from here.

    Event arguments:

    :param fault_id: Sequence number of the fault in this run (1, 2, ...)
    :param name: Fault name, a key of the fault registry (e.g. ``client_kill``)
    :param params: The fault's parameters from the profile (a dict, secrets masked)
    :param time: Wall-clock time the call began (seconds since the epoch)
    :param monotonic: The same on this node's monotonic clock (the window's start)
    """

    fault_injected: EventHook
    """
    Fired on the node that injected a fault, right after its injection returned (``t0``; the call
    took ``inject_ms``, reported beside the fault).

    Event arguments:

    :param fault_id: Sequence number of the fault in this run (1, 2, ...)
    :param name: Fault name, a key of the fault registry (e.g. ``client_kill``)
    :param params: The fault's parameters from the profile (a dict)
    :param time: Wall-clock time of ``t0`` (seconds since the epoch)
    :param monotonic: ``t0`` on this node's monotonic clock
    :param details: What the injection did (e.g. ``{"connections_killed": 50}``)
    """

    fault_reverted: EventHook
    """
    Fired when a fault's ``revert()`` has run: at the end of a sustained fault, and right after
    injection for an instantaneous one (such as a connection reset).

    Event arguments:

    :param fault_id: Sequence number of the fault
    :param name: Fault name
    :param params: The fault's parameters
    :param time: Wall-clock time of the revert (seconds since the epoch)
    :param duration_s: How long the fault lasted (0 for an instantaneous fault)
    :param error: Why the revert failed, or None
    """

    fault_failed: EventHook
    """
    Fired when a fault's injection raised. The run goes on; the fault is in the report with its error,
    and its window (opened at ``fault_started``) with what the attempt did to the clients.

    Event arguments:

    :param fault_id: Sequence number of the fault
    :param name: Fault name
    :param params: The fault's parameters
    :param error: The error message
    """

    fault_recovered: EventHook
    """
    Fired when a fault window closes recovered (``recovery_s`` is final only when the window
    closes: a later degraded request would move it), once per request type the node makes.

    Event arguments:

    :param fault_id: Sequence number of the fault
    :param name: Fault name
    :param recovery_s: Seconds from the injection's start to the first healthy request after the last degraded one
    :param failures: Failed requests in the window
    :param hidden_retries: Retries redis-py made out of sight in the window
    :param request_type: Whose requests: ``REDIS`` (the pack's redis-py users), ``HTTP`` (a service's), or a type
        a user class declares (its ``request_types``)
    """

    def __init__(self) -> None:
        for name in self.__annotations__:
            setattr(self, name, EventHook())


def install_events(events: Events) -> ResilienceEvents:
    """Create the pack's events and expose each one on Locust's ``events`` object, once."""
    existing = getattr(events, "_redis_resilience", None)
    if isinstance(existing, ResilienceEvents):
        return existing
    ours = ResilienceEvents()
    for name in ResilienceEvents.__annotations__:
        setattr(events, name, getattr(ours, name))
    events._redis_resilience = ours  # type: ignore[attr-defined]
    return ours


def fire_recovered(events: ResilienceEvents, window: WindowSummary) -> None:
    """``fault_recovered`` for a window that closed recovered, on the node that measured it."""
    if window.recovered:
        events.fault_recovered.fire(
            fault_id=window.fault_id,
            name=window.name,
            recovery_s=window.recovery_s,
            failures=window.failures,
            hidden_retries=window.hidden_retries,
            request_type=window.request_type,
        )
