"""Load a YAML profile into a :class:`Profile`, or fail with one line naming file, key and expectation.

Whatever the input (any YAML, any file, any bytes), nothing but :class:`ProfileError` escapes
:func:`load_profile` and :func:`parse_profile` (``tests/test_profile_fuzz.py`` checks it).

Both take the profile model to validate against: the pack's is built from its fault and workload
registries (chaos/profile.py); this module knows only the generic :class:`config.schema.Profile`.
"""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, cast, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from config.redact import is_secret_key, redact_url
from config.schema import Profile

CONFIG_DIR = Path(__file__).resolve().parent
DEFAULT_PROFILE = CONFIG_DIR / "default.yaml"

P = TypeVar("P", bound=Profile)

MAX_SHOWN_CHARS = 80  # a value quoted in a message is cut to this
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class ProfileError(Exception):
    """A profile that cannot be used. ``str()`` is the whole one-line message."""

    def __init__(self, message: str) -> None:
        # Every part of a message is rendered on one line already; this is the last guard.
        super().__init__(" ".join(message.splitlines()))


def _shown(value: Any) -> str:
    """A value as a message quotes it: repr (one line), passwords masked, long ones cut."""
    text = redact_url(repr(value))
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def _source(path: str) -> str:
    return path if path.isprintable() else repr(path)


def _key_path(loc: tuple[Any, ...]) -> str:
    """``chaos.faults[0].scope``; a key that is not a plain word is quoted: ``headers['a.b']``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and _PLAIN_KEY.match(part):
            path += f".{part}" if path else part
        else:
            path += f"[{_shown(part)}]"
    return path or "(top level)"


def _union_members(tp: Any) -> list[Any] | None:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (Union, types.UnionType):
        return [arg for arg in get_args(tp) if arg is not type(None)]
    return None


def _member_named(member: Any, tag: Any) -> bool:
    """Is ``member`` what a discriminated union names ``tag``: a model with a literal field holding it
    (a fault's ``name: client_kill``, a toxic's ``toxic: latency``), or a nested union holding one?"""
    members = _union_members(member)
    if members is not None:
        return any(_member_named(m, tag) for m in members)
    if not (isinstance(member, type) and issubclass(member, BaseModel)):
        return False
    return any(
        get_origin(field.annotation) is Literal and tag in get_args(field.annotation)
        for field in member.model_fields.values()
    )


def _profile_loc(
    loc: tuple[Any, ...], model: type[BaseModel]
) -> tuple[tuple[Any, ...], type[BaseModel] | None, bool, Any]:
    """pydantic's error location as the profile's key path, walking the schema along it.

    pydantic adds the member it tried to the location of an error inside a union
    (``degraded_latency_ms.constrained-float``, ``faults[0].client_kill``): those are no keys of the
    profile and are dropped. Also returns the model the last key belongs to (its keys are what an
    unknown key should have been), and whether a plain union's member was dropped (its errors are
    alternatives, not separate problems).
    """
    node: Any = model
    path: list[Any] = []
    parent: type[BaseModel] | None = None
    union = False
    for part in loc:
        members = _union_members(node)
        while members is not None and len(members) == 1:  # X | None: pydantic names no member
            node = members[0]
            members = _union_members(node)
        if members is not None:  # this part names a union member, not a key
            node = next((m for m in members if _member_named(m, part)), None)
            union = union or node is None
            continue
        while get_origin(node) is Annotated:
            node = get_args(node)[0]
        path.append(part)
        if isinstance(node, type) and issubclass(node, BaseModel):
            parent = node
            field = node.model_fields.get(part) if isinstance(part, str) else None
            node = field.annotation if field is not None else None
        elif get_origin(node) is list and isinstance(part, int):
            node = get_args(node)[0]
        elif get_origin(node) is dict:
            node = get_args(node)[1]
        else:
            node = None
    return tuple(path), parent, union, node


def _expectation(error: Any) -> str | None:
    """What pydantic says the input should have been (``greater than 0``), or None."""
    kind, msg = error["type"], str(error["msg"])
    if kind == "string_pattern_mismatch":
        return f"a string matching {error['ctx']['pattern']!r}"
    match = re.match(r"^(?:Input|String|List|Dictionary|Tuple|Set|Value) should (?:be |have )?(.+)$", msg)
    if match is None:
        return None
    text = match[1].removesuffix(" [type=union_tag_invalid]")
    # "a valid dictionary or instance of Chaos" / "... or object to extract fields from": a mapping
    return re.sub(r"a valid dictionary( or (instance of \w+|object to extract fields from))?", "a mapping", text)


def _discriminator(error: Any) -> str:
    return str(error["ctx"]["discriminator"]).strip("'")


def _tags(error: Any) -> str:
    """The tags the discriminated union at the error takes, sorted: pydantic lists them for an
    unknown tag; for a missing one they come from the union itself (``_profile_loc``'s last node)."""
    expected = error["ctx"].get("expected_tags")
    if expected is not None:
        tags = {tag.strip().strip("'") for tag in str(expected).split(",") if tag.strip()}
    else:
        tags = _literal_tags(error.get("node"), _discriminator(error))
    return ", ".join(sorted(tags))


def _literal_tags(node: Any, field: str) -> set[str]:
    """The values of the literal ``field`` across a union's members (nested unions included)."""
    members = _union_members(node)
    if members is not None:
        return set().union(*(_literal_tags(member, field) for member in members))
    if isinstance(node, type) and issubclass(node, BaseModel) and field in node.model_fields:
        return {str(tag) for tag in get_args(node.model_fields[field].annotation)}
    return set()


def _describe(error: Any, parent: type[BaseModel] | None) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        if parent is None:
            return "unknown key"
        return f"unknown key: expected one of {', '.join(parent.model_fields)}"
    if kind == "missing":
        return "required key is missing"
    if kind == "invalid_key":
        return f"expected keys that are strings, got the key {_shown(error['input'])}"
    if kind == "union_tag_invalid":
        what = "fault" if _discriminator(error) == "name" else _discriminator(error)
        return f"unknown {what} {_shown(error['ctx']['tag'])}: expected one of {_tags(error)}"
    if kind == "union_tag_not_found":
        if _discriminator(error) == "name":
            return f"each fault needs a name: one of {_tags(error)}"
        return f"needs the key {_discriminator(error)}: one of {_tags(error)}"
    if kind == "string_pattern_mismatch" and tuple(error["loc"]) == ("target", "url"):
        return (
            "expected 'embedded' or a redis://, rediss://, sentinel:// or cluster:// URL (or 'embedded-sentinel', "
            f"'embedded-cluster'), got {_shown(str(error['input']))}"
        )
    msg = str(error["msg"])
    if kind == "value_error":  # the schema's own validators: their message says what is expected
        return msg.removeprefix("Value error, ")
    expected = _expectation(error)
    last = error["loc"][-1] if error["loc"] else ""
    got = "" if isinstance(last, str) and is_secret_key(last) else f", got {_shown(error['input'])}"  # no secret
    return f"expected {expected}{got}" if expected else f"{msg}{got}"


def format_validation_error(source: str, exc: ValidationError, model: type[BaseModel] = Profile) -> str:
    """One line: the first problem (file, key path, expectation), and how many more there are."""
    groups: dict[tuple[Any, ...], list[tuple[Any, type[BaseModel] | None, bool]]] = {}
    for error in exc.errors():
        loc = tuple(error["loc"])
        if error["type"] == "invalid_key":  # pydantic puts the offending key itself last
            loc = loc[:-1]
        path, parent, union, node = _profile_loc(loc, model)
        if error["type"] == "union_tag_not_found":  # its tags come from the union itself
            error = cast(Any, {**error, "node": node})
        groups.setdefault(path, []).append((error, parent, union))
    (path, group), *others = groups.items()
    error, parent, union = group[0]
    alternatives = [_expectation(e) for e, _, _ in group]
    if union and len(group) > 1 and all(alternatives):
        # a plain union (e.g. a number or 'auto'): every member's expectation is an alternative
        distinct = list(dict.fromkeys(a for a in alternatives if a))
        problem = f"expected {' or '.join(distinct)}, got {_shown(error['input'])}"
    else:
        problem = _describe(error, parent)
    line = f"{_source(source)}: {_key_path(path)}: {problem}"
    if others:
        line += f" (and {len(others)} more problem{'s' if len(others) > 1 else ''})"
    return line


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, but a scalar it cannot build (``2020-13-01``, ``!!int abc``) is a
    syntax error with its line and column instead of a bare ValueError from deep inside PyYAML,
    and a key given twice in one mapping is an error (PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], yaml.Mark] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            first = seen.setdefault((key_node.tag, key_node.value), key_node.start_mark)
            if first is not key_node.start_mark:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found the key {_shown(key_node.value)} twice (first at line {first.line + 1}): keep one",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # PyYAML's scalar constructors raise ValueError, TypeError, ...
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read the value {_shown(node.value)}: {exc}", node.start_mark
            ) from None


def _yaml_error(source: str, text: str, exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = exc.problem or exc.context or "invalid YAML"
        return f"{source}: YAML syntax error at {where}: {problem}"
    if isinstance(exc, yaml.reader.ReaderError):
        before = text[: exc.position]
        line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        character = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        return (
            f"{source}: YAML syntax error at line {line}, column {column}: unacceptable character {character} "
            f"({exc.reason}): expected printable text"
        )
    return f"{source}: YAML error: {exc}"


def parse_profile(data: Any, source: str, model: type[P], base_dir: str | Path | None = None) -> P:
    """Validate already-parsed data (a mapping) into ``model``, or raise :class:`ProfileError`.

    ``base_dir``: where relative file names in the profile are found (the profile file's directory)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(f"{_source(source)}: (top level): expected a mapping of keys, got {type(data).__name__}")
    try:
        return model.model_validate(data, context={"base_dir": base_dir} if base_dir is not None else None)
    except ValidationError as exc:
        raise ProfileError(format_validation_error(source, exc, model)) from None
    except Exception as exc:  # a validator that failed other than by the book: still one line, no traceback
        problem = _shown(f"{type(exc).__name__}: {exc}")
        raise ProfileError(f"{_source(source)}: (top level): cannot validate this profile: {problem}") from None


def load_profile(path: str | Path, model: type[P]) -> P:
    """Read and validate a profile file. Raises :class:`ProfileError` with a one-line message."""
    source = _source(str(path))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"{source}: no such profile file") from None
    except OSError as exc:
        raise ProfileError(f"{source}: cannot read profile: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ProfileError(
            f"{source}: cannot read profile: byte {exc.start} is not UTF-8 ({exc.reason}): expected UTF-8 text"
        ) from None
    except ValueError as exc:  # e.g. a path with a NUL byte
        raise ProfileError(f"{source}: cannot read profile: {exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ProfileError(_yaml_error(source, text, exc)) from None
    except RecursionError:
        raise ProfileError(f"{source}: YAML error: nested too deeply") from None
    return parse_profile(data, source, model, base_dir=Path(path).parent)
