"""The client under test is stock redis-py (DESIGN.md rule 10): the pack's code imports no private
redis-py module but the one named exception, and none of its classes built on redis-py's overrides a
method whose name starts with ``_``. What the traffic runs on is redis-py's own pool and client."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import redis

from config.schema import ClientOptions
from scenarios import client as client_module
from scenarios import cluster as cluster_module
from scenarios.client import ConnectionProbe, make_pool
from targets.embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("scenarios", "targets", "chaos", "recovery", "config")
# redis-py has no public name for its Python parser: an application that asks for it imports it from there.
ALLOWED_PRIVATE = {("targets/parsers.py", "redis._parsers")}


def private_redis_imports() -> list[tuple[str, str]]:
    found = []
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
                for name in names:
                    parts = name.split(".")
                    if parts[0] == "redis" and any(part.startswith("_") for part in parts[1:]):
                        found.append((str(path.relative_to(ROOT)), node.module if isinstance(node, ast.ImportFrom)
                                      else name))  # fmt: skip
    return sorted(set(found))


def test_no_private_redis_module_is_imported_but_the_python_parsers() -> None:
    assert set(private_redis_imports()) <= ALLOWED_PRIVATE, private_redis_imports()


def test_the_python_parser_is_imported_only_when_a_profile_asks_for_it() -> None:
    """The default path (hiredis) never imports it: the import sits inside the function, after the hiredis case."""
    tree = ast.parse((ROOT / "targets/parsers.py").read_text())
    top_level = [node for node in tree.body if isinstance(node, ast.ImportFrom) and node.module == "redis._parsers"]
    assert top_level == []


def redis_subclasses() -> list[type]:
    classes = []
    for module in (client_module, cluster_module):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and any(b.__module__.startswith("redis") for b in cls.__mro__[1:]):
                classes.append(cls)
    return classes


def test_no_class_built_on_redis_py_overrides_a_private_method() -> None:
    classes = redis_subclasses()
    assert {c.__name__ for c in classes} >= {"InstrumentedRedis", "InstrumentedPipeline", "InstrumentedCluster",
                                             "InstrumentedClusterPipeline", "CountingBackoff"}  # fmt: skip
    overrides = []
    for cls in classes:
        ours = [name for name, value in vars(cls).items()
                if name.startswith("_") and not name.startswith("__") and inspect.isfunction(value)]  # fmt: skip
        theirs = {name for base in cls.__mro__ if base.__module__.startswith("redis") for name in vars(base)}
        overrides += [f"{cls.__name__}.{name}" for name in ours if name in theirs]
    assert overrides == []


def test_the_traffic_runs_on_redis_pys_own_pool_and_connections(redis_server: EmbeddedRedis) -> None:
    pool = make_pool(redis_server.url, ClientOptions(), "rr-stock-0", ConnectionProbe())
    assert type(pool) is redis.ConnectionPool
    connection = pool.get_connection()
    try:
        assert type(connection) is redis.Connection
    finally:
        pool.release(connection)
        pool.disconnect()
