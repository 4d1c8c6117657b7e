"""Property-based profile tests: whatever the input, loading a profile gives a Profile or a
ProfileError whose message is one line naming the file, the key path and what was expected.
Nothing else ever escapes load_profile / parse_profile.

Then one real ``locust`` process per error family: exit code 2, one line, no traceback, and
nothing reaches the target (a real redis-server: no connection, no key)."""

from __future__ import annotations

import copy
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
import redis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from chaos.faults import FAULTS
from chaos.profile import profile_model
from config import loader
from config.loader import ProfileError
from targets.embedded import EmbeddedRedis

from .helpers import finish, locust

SOURCE = "fuzz.yaml"
MODEL = profile_model()  # built once and handed to the loader for every example, as chaos.profile hands it one
FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# What a fault's params model cannot say itself: a valid value for a field that has no default, or that a
# model check needs (http: url or path), by field name. Every other field of a fault's entry is derived from its
# params: its name, a required Literal (network's toxic: its first kind), the defaults. A fault of yours whose
# params need a value of another name adds it here (test_every_registered_fault_has_an_entry_that_loads says so).
VALUES: dict[str, Any] = {"command": ["true"], "url": "http://127.0.0.1:9/reset"}


def _union(annotation: Any) -> list[Any]:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return list(get_args(annotation)) if get_origin(annotation) in (Union, types.UnionType) else []


def fault_entry(name: str) -> dict[str, Any]:
    """A chaos.faults entry of a registered fault, from its params model (the first kind of a union)."""
    params = FAULTS[name].params
    model: type[BaseModel] = (_union(params) or [params])[0]
    entry: dict[str, Any] = {}
    for field_name, field in model.model_fields.items():
        if field_name in VALUES:
            entry[field_name] = VALUES[field_name]
        elif field.is_required() and get_origin(field.annotation) is Literal:
            entry[field_name] = get_args(field.annotation)[0]
    return entry


# A valid profile that reaches every model of the schema: every workload, every fault, the proxy.
FAULT_ENTRIES = [fault_entry(name) for name in FAULTS]


def _every_workload() -> dict[str, Any]:
    """Every workload of the profile's ``workload.mix``, with its defaults."""
    mix = MODEL.model_fields["workload"].annotation.model_fields["mix"].annotation  # type: ignore[union-attr]
    return {name: {} for name in mix.model_fields}


BASE: dict[str, Any] = {
    "target": {"url": "embedded", "proxy": {"driver": "builtin"}},
    "client": {"backoff": {}},
    "workload": {"think_time": {}, "mix": _every_workload()},
    "chaos": {"enabled": True, "faults": FAULT_ENTRIES},
    "recovery": {},
    "slo": {},
}
STRICT = ConfigDict(strict=True, allow_inf_nan=False)
PLAIN = re.compile(r"^[A-Za-z0-9_-]+$")


def _model(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds (``X``, ``X | None``), else None."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) != 1:
            return None
        annotation = members[0]
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _walk() -> tuple[list[tuple[tuple[Any, ...], type[BaseModel]]], list[tuple[tuple[Any, ...], Any, str]]]:
    """Every mapping of BASE with its model, and every leaf field (path, field info, name) under them."""
    mappings: list[tuple[tuple[Any, ...], type[BaseModel]]] = []
    leaves: list[tuple[tuple[Any, ...], Any, str]] = []

    def visit(path: tuple[Any, ...], model: type[BaseModel], data: dict[str, Any]) -> None:
        mappings.append((path, model))
        for name, field in model.model_fields.items():
            sub = _model(field.annotation)
            if sub is not None:
                if isinstance(data.get(name), dict):
                    visit((*path, name), sub, data[name])
            elif name == "faults" and model.__name__ == "Chaos":
                for i, entry in enumerate(data["faults"]):
                    params = FAULTS[entry["name"]].params
                    toxics = _union(params)  # network: one model per toxic
                    if toxics:
                        toxic = entry.get("toxic")
                        params = next(m for m in toxics if toxic in get_args(m.model_fields["toxic"].annotation))
                    visit((*path, "faults", i), params, entry)
            elif name not in ("name", "toxic") or name not in data:  # a fault's name (a toxic) picks its params
                leaves.append(((*path, name), field, name))

    visit((), MODEL, BASE)
    return mappings, leaves


MAPPINGS, LEAVES = _walk()
DURATIONS = [leaf for leaf in LEAVES if leaf[2].endswith(("_s", "_ms"))]


def path_text(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def copy_of_base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def with_value(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A deep copy of BASE with ``value`` at ``path``."""
    data = copy_of_base()
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return data


def problem(data: Any, source: str = SOURCE) -> str | None:
    """parse_profile's one-line message, or None when the profile loads. Anything else fails the test."""
    try:
        loader.parse_profile(data, source, MODEL)
    except ProfileError as exc:
        return one_line(str(exc), source)
    return None


def one_line(message: str, source: str) -> str:
    assert len(message.splitlines()) == 1 and message == message.strip(), repr(message)
    assert message.startswith(f"{source}: ") or message.startswith(f"{source!r}: "), message
    return message


def assert_at_or_around(message: str, path: tuple[Any, ...]) -> None:
    """The message names ``path``, a key under it, or a mapping that holds it."""
    around = ["(top level)", *(path_text(path[:i]) for i in range(1, len(path) + 1))]
    assert any(message.startswith(f"{SOURCE}: {text}") for text in around), message


def field_rejects(field: Any, value: Any) -> list[str] | None:
    """The error types a field alone gives ``value`` (its constraints, strict), or None if it takes it."""
    try:
        TypeAdapter(field.rebuild_annotation(), config=STRICT).validate_python(value)
    except ValidationError as exc:
        return [e["type"] for e in exc.errors()]
    except Exception:
        return ["custom"]
    return None


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.binary(max_size=6),
    st.dates(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


# ---- the property: only ProfileError, one line, file first -------------------------------------


@FUZZ
@given(data=values)
def test_any_document_loads_or_gives_one_line(data: Any) -> None:
    problem(data)


@FUZZ
@given(where=st.sampled_from([path for path, _ in MAPPINGS if path]), value=values)
def test_any_subtree_anywhere_loads_or_gives_one_line(where: tuple[Any, ...], value: Any) -> None:
    message = problem(with_value(where, value))
    if message is not None:  # the problem is in that subtree, or (a model's own check) in a model holding it
        assert_at_or_around(message, where)


@FUZZ
@given(leaf=st.sampled_from(LEAVES), value=values)
def test_a_wrong_value_names_its_key_and_what_was_expected(leaf: tuple[Any, ...], value: Any) -> None:
    path, field, _ = leaf
    message = problem(with_value(path, value))
    rejected = field_rejects(field, value)
    if rejected is None:  # the field takes it; a model's own check may still refuse the whole
        if message is not None:
            assert_at_or_around(message, path)
        return
    assert message is not None, f"{path_text(path)} took {value!r}"
    assert re.match(rf"^{re.escape(SOURCE)}: {re.escape(path_text(path))}($|[:.\[])", message), message
    if not {"value_error", "custom"} & set(rejected):
        assert ": expected " in message, message


@FUZZ
@given(
    leaf=st.sampled_from(DURATIONS),
    value=st.one_of(
        st.just(0),
        st.just(0.0),
        st.just(-0.0),
        st.integers(max_value=-1),
        st.floats(max_value=-1e-9, allow_infinity=False),
    ),
)
def test_zero_or_negative_durations(leaf: tuple[Any, ...], value: float) -> None:
    path, field, _ = leaf
    message = problem(with_value(path, value))
    if field_rejects(field, value) is None:  # a duration that may be 0 (jitter_s, start_after_s...)
        assert value == 0
        return
    assert message is not None
    assert message.startswith(f"{SOURCE}: {path_text(path)}: expected "), message
    assert "greater than" in message or "a valid integer" in message, message  # -0.5 for an int field


@FUZZ
@given(where=st.sampled_from(MAPPINGS), key=st.text(max_size=12), value=values)
def test_an_unknown_key_at_any_level_is_named(where: tuple[Any, ...], key: str, value: Any) -> None:
    path, model = where
    if key in model.model_fields:
        return
    data = copy_of_base()
    node = data
    for part in path:
        node = node[part]
    node[key] = value
    message = problem(data)
    assert message is not None
    where_text = path_text(path)
    if PLAIN.match(key):
        assert f"{SOURCE}: {where_text + '.' if where_text else ''}{key}: unknown key: expected one of " in message
    else:  # quoted: chaos['a b'], ['']
        assert message.startswith(f"{SOURCE}: {where_text}["), message
        assert ": unknown key: expected one of " in message, message
    assert ", ".join(model.model_fields) in message


@FUZZ
@given(
    faults=st.lists(st.sampled_from(FAULT_ENTRIES), max_size=4),
    zero=st.sampled_from([0, 0.0]),
)
def test_chaos_on_needs_a_fault_that_can_be_chosen(faults: list[dict[str, Any]], zero: float) -> None:
    data = with_value(("chaos", "faults"), [{**f, "weight": zero} for f in faults])
    message = problem(data)
    expected = "chaos is enabled but chaos.faults is empty" if not faults else "the weights of chaos.faults sum to 0"
    assert message is not None and message.startswith(f"{SOURCE}: chaos: {expected}"), message
    data["chaos"]["enabled"] = False  # chaos off: the list is not used
    assert problem(data) is None


def test_every_registered_fault_has_an_entry_that_loads() -> None:
    """Each fault's entry, derived from its params, is valid: else VALUES lacks a value that its params need."""
    for entry in FAULT_ENTRIES:
        message = problem(with_value(("chaos", "faults"), [entry]))
        assert message is None, f"{entry['name']}: {message}: add the field's value to VALUES (by field name)"


# ---- files: YAML syntax, bytes, names ----------------------------------------------------------


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the module (hypothesis runs many examples in one test: no function-scoped tmp_path)."""
    return tmp_path_factory.mktemp("profile-fuzz")


def load_text(path: Path, content: str | bytes) -> str | None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    try:
        loader.load_profile(path, MODEL)
    except ProfileError as exc:
        return one_line(str(exc), str(path))
    return None


BREAKERS = [
    "{",
    "[",
    "]",
    "}",
    ": :",
    "'",
    '"',
    '"\\q"',
    "*nowhere",
    "&a &b",
    "!!int x",
    "!!float y",
    "!!timestamp z",
    "2020-13-45",
    "\t",
    "- ",
    "? ",
    "%YAML 9.9",
    "---",
    "...",
    "|\n bad",
    ">-",
    "!!python/object:os.system {}",
    "\x07",
    "\x00",
    "\ufeff",
    "@",
    "`",
    "<<: 5",
    "key: value: x",
]
BASE_TEXT = yaml.safe_dump(BASE, sort_keys=False)


@FUZZ
@given(
    line=st.integers(min_value=0, max_value=BASE_TEXT.count("\n")),
    column=st.integers(min_value=0, max_value=30),
    breaker=st.sampled_from(BREAKERS),
)
def test_yaml_syntax_errors_give_line_and_column(scratch: Path, line: int, column: int, breaker: str) -> None:
    lines = BASE_TEXT.split("\n")
    text = lines[line]
    lines[line] = text[:column] + breaker + text[column:]
    broken = "\n".join(lines)
    message = load_text(scratch / "broken.yaml", broken)
    try:
        yaml.safe_load(broken)
    except yaml.MarkedYAMLError as exc:
        assert message is not None and "YAML syntax error at line " in message, message
        mark = exc.problem_mark
        if mark is not None and "twice" not in message:
            assert f"line {mark.line + 1}, column {mark.column + 1}:" in message, message
    except yaml.YAMLError:
        assert message is not None and "YAML syntax error at line " in message, message
    except Exception:  # PyYAML's own ValueError (2020-13-45): ours names the line
        assert message is not None and "YAML syntax error at line " in message, message


@FUZZ
@given(content=st.text(max_size=200) | st.binary(max_size=200))
def test_any_file_content_loads_or_gives_one_line(scratch: Path, content: str | bytes) -> None:
    load_text(scratch / "any.yaml", content)


@FUZZ
@given(name=st.text(min_size=1, max_size=30).filter(lambda n: "/" not in n))
def test_a_file_that_does_not_exist(scratch: Path, name: str) -> None:
    path = scratch / "missing" / name
    with pytest.raises(ProfileError) as caught:
        loader.load_profile(path, MODEL)
    message = one_line(str(caught.value), str(path))
    assert "no such profile file" in message or "cannot read profile" in message, message


def test_what_the_fuzzing_found_stays_fixed(scratch: Path) -> None:
    """Each of these escaped as another exception or gave a multi-line message before."""
    cases: dict[str | bytes, str] = {
        "a: 2020-13-01\n": "YAML syntax error at line 1, column 4: cannot read the value '2020-13-01'",
        "chaos: !!float abc\n": "YAML syntax error at line 1, column 8: cannot read the value 'abc'",
        "chaos: \x07\n": "YAML syntax error at line 1, column 8: unacceptable character #x0007",
        b"chaos: \xff\n": "cannot read profile: byte 7 is not UTF-8",
        '"a\\nb": 1\n': "['a\\nb']: unknown key: expected one of target, client",
        "chaos: {}\nchaos: {}\n": "YAML syntax error at line 2, column 1: found the key 'chaos' twice (first at",
        "chaos:\n  every_s: .inf\n": "chaos.every_s: expected a finite number, got inf",
        "recovery:\n  degraded_latency_ms: -3\n": "degraded_latency_ms: expected greater than 0 or 'auto', got -3",
        "chaos:\n  ~: 1\n": "chaos: expected keys that are strings, got the key None",
        "chaos:\n  faults: [{name: http, url: 'http://[::1'}]\n": "chaos.faults[0]: url: expected an http:// or https://",
    }
    for content, expected in cases.items():
        message = load_text(scratch / "found.yaml", content)
        assert message is not None and expected in message, (content, message)
    with pytest.raises(ProfileError, match="cannot read profile"):
        loader.load_profile(scratch / "nul\x00byte.yaml", MODEL)


# ---- one real locust process per error family --------------------------------------------------

FAMILIES: dict[str, tuple[str | bytes | None, str]] = {
    "wrong-type": ("client:\n  retries: many\n", "client.retries: expected a valid integer, got 'many'"),
    "unknown-key": ("workload:\n  mix:\n    cache: {wieght: 2}\n", "workload.mix.cache.wieght: unknown key"),
    "zero-duration": ("chaos:\n  every_s: 0\n", "chaos.every_s: expected greater than 0, got 0"),
    "no-faults": ("chaos:\n  faults: []\n", "chaos: chaos is enabled but chaos.faults is empty"),
    "zero-weights": ("chaos:\n  faults: [{name: pool_reset, weight: 0}]\n", "the weights of chaos.faults sum to 0"),
    "yaml-syntax": ("chaos: {every_s: 5\n", "YAML syntax error at line 2, column 1"),
    "not-utf8": (b"chaos: \xff\n", "is not UTF-8"),
    "scope-all": ("chaos:\n  faults: [{name: client_kill, scope: all}]\n", "set allow_scope_all: true"),
    "missing-file": (None, "no such profile file"),
}


def test_locust_exits_2_with_one_line_for_every_error_family(tmp_path: Path) -> None:
    server = EmbeddedRedis().start()
    try:
        admin = redis.Redis.from_url(server.url, client_name="fuzz-check")
        connections_before = admin.info("stats")["total_connections_received"]
        procs = {}
        for family, (content, _) in FAMILIES.items():
            path = tmp_path / f"{family}.yaml"
            if isinstance(content, bytes):
                path.write_bytes(content)
            elif content is not None:
                path.write_text(content)
            procs[family] = (
                path,
                locust(["-u", "2", "-t", "5s", "--resilience-profile", str(path), "--redis-url", server.url]),
            )
        for family, (path, proc) in procs.items():
            out = finish(proc, timeout=60)  # stdout and stderr
            expected = FAMILIES[family][1]
            assert proc.returncode == 2, (family, out)
            assert "Traceback" not in out, (family, out)
            ours = [line for line in out.splitlines() if not re.match(r"^\[\d{4}-\d\d-\d\d ", line)]
            assert len(ours) == 1 and ours[0].startswith(f"redis-resilience: {path}: "), (family, out)
            assert expected in ours[0], (family, ours[0])
        # nothing reached the target: no key, no connection but ours
        assert admin.dbsize() == 0
        assert admin.info("stats")["total_connections_received"] == connections_before
        assert [c["name"] for c in admin.client_list()] == ["fuzz-check"]
        admin.close()
    finally:
        server.stop()
