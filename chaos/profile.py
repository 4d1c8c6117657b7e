"""The profile model, built from the fault and workload registries, and its loading.

config/ holds the profile's generic models and the YAML loader (it imports nothing of ours). What
only the registries know is added here, so a fault or workload of yours is a profile key as soon
as it is registered:

- ``chaos.faults[]``: a union of every registered fault's params, told apart by ``name``;
- ``workload.mix``: one key per registered workload, its settings model (an unknown name is an error);
- ``slo.max_<figure>``: one limit per integrity figure a registered workload gates on.

``python -m chaos.profile`` prints the JSON Schema (config/profile.schema.json is its output).
"""

from __future__ import annotations

import locust  # noqa: F401  (first: it patches the standard library with gevent; the workloads import it)

import json
from pathlib import Path
from typing import Any

from pydantic import Field, create_model

import chaos.faults
import scenarios.workloads  # noqa: F401  (registers the pack's workloads)
from config import loader
from config.schema import Chaos, Profile, Slo, Workload, WorkloadMix
from scenarios.registry import WORKLOADS, gates


def profile_model() -> type[Profile]:
    """The profile model of the registries as they stand now: every registered fault and workload.

    Each call builds a new model (a fault or workload registered since is in it); nothing is kept. Where many
    profiles are read, build it once and hand it to ``config.loader``'s ``parse_profile``/``load_profile``.
    Two profiles of two builds are of two classes, so compare them by their ``model_dump()``.
    """
    mix = create_model(  # type: ignore[call-overload]
        "WorkloadMix",
        __base__=WorkloadMix,
        __doc__="Weights and settings of each workload (0: not run).",
        **{name: (user.Settings, user.Settings()) for name, user in WORKLOADS.items()},
    )
    workload = create_model("Workload", __base__=Workload, mix=(mix, mix()))
    entries: Any = list[chaos.faults.spec_type()]  # type: ignore[misc]
    chaos_model = create_model("Chaos", __base__=Chaos, faults=(entries, Field(default_factory=list)))
    slo = create_model(  # type: ignore[call-overload]
        "Slo",
        __base__=Slo,
        **{
            gate.slo: (int | None, Field(gate.default_limit, ge=0, description=gate.description)) for _, gate in gates()
        },
    )
    model: type[Profile] = create_model(
        "Profile",
        __base__=Profile,
        workload=(workload, workload()),
        chaos=(chaos_model, chaos_model(enabled=False)),
        slo=(slo, slo()),
    )
    return model


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile file; :class:`config.loader.ProfileError` with a one-line message."""
    return loader.load_profile(path, profile_model())


def parse_profile(data: Any, source: str, base_dir: str | Path | None = None) -> Profile:
    """Validate already-parsed data (the master's profile, a test's dict) into a profile."""
    return loader.parse_profile(data, source, profile_model(), base_dir)


def json_schema() -> str:
    schema = profile_model().model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "redis-resilience profile"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(json_schema(), end="")
