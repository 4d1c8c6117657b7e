"""Load a YAML profile into a :class:`Profile`, or fail with one line naming file, key and expectation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from chaos.faults import REGISTRY
from config.redact import redact_url
from config.schema import Profile

CONFIG_DIR = Path(__file__).resolve().parent
DEFAULT_PROFILE = CONFIG_DIR / "default.yaml"


class ProfileError(Exception):
    """A profile that cannot be used. ``str()`` is the whole one-line message."""


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "(top level)"


def _describe(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return f"unknown fault {error['ctx']['tag']!r}: expected one of {', '.join(sorted(REGISTRY))}"
    if kind == "union_tag_not_found":
        return f"each fault needs a name: one of {', '.join(sorted(REGISTRY))}"
    if kind == "string_pattern_mismatch" and error["loc"] == ("target", "url"):
        return (
            "expected 'embedded' or a redis://, rediss://, sentinel:// or cluster:// URL (or 'embedded-sentinel', "
            f"'embedded-cluster'), got {redact_url(str(error['input']))!r}"
        )
    msg = str(error["msg"])
    msg = msg.removeprefix("Value error, ")
    if kind != "value_error":
        msg = f"expected {msg[0].lower()}{msg[1:]}" if msg.startswith("Input should") else msg
        msg = msg.replace("expected input should be", "expected")
        msg += f", got {redact_url(repr(error['input']))}"
    return msg


def format_validation_error(source: str, exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    # pydantic puts the fault's tag (e.g. 'client_kill') in the location of a tagged-union member.
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p in REGISTRY))
    line = f"{source}: {_key_path(loc)}: {_describe(first)}"
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return line


def parse_profile(data: Any, source: str) -> Profile:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: (top level): expected a mapping of keys, got {type(data).__name__}")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(format_validation_error(source, exc)) from None


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile file. Raises :class:`ProfileError` with a one-line message."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"{source}: no such profile file") from None
    except OSError as exc:
        raise ProfileError(f"{source}: cannot read profile: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise ProfileError(f"{source}: YAML syntax error at {where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"{source}: YAML error: {exc}") from None
    return parse_profile(data, source)
