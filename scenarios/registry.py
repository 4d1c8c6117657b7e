"""The workload registry: a plain dict from a profile's workload name to its user class.

A workload registers itself with one decorator line on its user class (``@register_workload``);
scenarios/workloads.py imports the pack's own, and a locustfile or package of yours can register
more (docs/extending.md). From here come the profile's ``workload.mix`` keys (one per workload,
its settings model), and the integrity figures the report shows and the SLOs can limit: the
report and the verdict read figures by name and never import a workload.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from config.schema import WorkloadSettings


@dataclass(frozen=True)
class Gate:
    """A run-wide integrity figure the verdict can limit.

    :param figure: the figure's name among the workload's derived figures (``violations``)
    :param summary: its key in the report's summary and the SLO ``max_<summary>`` (``lock_violations``)
    :param default_limit: the SLO's default (None: reported, not gated)
    :param description: what the SLO limits, for the profile's JSON Schema
    """

    figure: str
    summary: str
    default_limit: int | None
    description: str

    @property
    def slo(self) -> str:
        return f"max_{self.summary}"


W = TypeVar("W", bound=type)

# name -> its user class: a RedisUser subclass with ``label``, ``Settings`` (a WorkloadSettings model),
# ``gates`` and ``derive_figures`` (scenarios/user.py)
WORKLOADS: dict[str, Any] = {}


def register_workload(user: W) -> W:
    """Class decorator on a workload's user class: registered under its ``label``, with its ``Settings``."""
    label = getattr(user, "label", None)
    settings = getattr(user, "Settings", None)
    if not isinstance(label, str) or not label.isidentifier():
        raise TypeError(f"workload {user.__name__}: label must be a name such as 'cache', got {label!r}")
    if not (isinstance(settings, type) and issubclass(settings, WorkloadSettings)):
        raise TypeError(f"workload {user.__name__}: Settings must subclass config.schema.WorkloadSettings")
    existing = WORKLOADS.get(label)
    if existing is not None and existing is not user:
        raise ValueError(f"workload {label!r} is registered already (by {existing.__module__}.{existing.__name__})")
    WORKLOADS[label] = user
    return user


def derived_figures(workload: str, figures: dict[str, float]) -> dict[str, float]:
    """A workload's run-wide figures, derived from its merged ones (none for an unregistered name)."""
    user = WORKLOADS.get(workload)
    derive: Callable[[dict[str, float]], dict[str, float]] | None = getattr(user, "derive_figures", None)
    return derive(figures) if derive is not None else {}


def gates() -> list[tuple[str, Gate]]:
    """Every gated integrity figure, with its workload, in registration order."""
    return [(name, gate) for name, user in WORKLOADS.items() for gate in user.gates]
