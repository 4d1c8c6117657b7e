"""The profile model, built from the fault and workload registries, and its loading.

config/ holds the profile's generic models and the YAML loader (it imports nothing of ours);
this module adds what only the registries know (each fault's params, each workload's settings)
and is what the rest of the pack loads profiles through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from config import loader
from config.schema import Profile


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile file; :class:`config.loader.ProfileError` with a one-line message."""
    return loader.load_profile(path)


def parse_profile(data: Any, source: str, base_dir: str | Path | None = None) -> Profile:
    """Validate already-parsed data (the master's profile, a test's dict) into a profile."""
    return loader.parse_profile(data, source, base_dir)
