"""The client under test is stock redis-py (DESIGN.md rule 10): the pack's code imports no private
redis-py module but the one named exception, and none of its classes built on redis-py's overrides a
method whose name starts with ``_``. What the traffic runs on is redis-py's own pool and client."""

from __future__ import annotations

import ast
import inspect
import time
from pathlib import Path

import pytest
import redis

from chaos.profile import parse_profile
from chaos.run_setup import check_connection_mode
from chaos.settings import SetupError
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
                        found.append(
                            (str(path.relative_to(ROOT)), node.module if isinstance(node, ast.ImportFrom) else name)
                        )
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
    assert {c.__name__ for c in classes} >= {
        "InstrumentedRedis",
        "InstrumentedPipeline",
        "InstrumentedCluster",
        "InstrumentedClusterPipeline",
        "CountingBackoff",
    }
    overrides = []
    for cls in classes:
        ours = [
            name
            for name, value in vars(cls).items()
            if name.startswith("_") and not name.startswith("__") and inspect.isfunction(value)
        ]
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


def test_a_blocking_pool_is_redis_pys_own_and_waits_for_a_free_connection(redis_server: EmbeddedRedis) -> None:
    options = ClientOptions(pool="blocking", max_connections=1, pool_timeout_s=0.2)
    pool = make_pool(redis_server.url, options, "rr-stock-1", ConnectionProbe())
    assert type(pool) is redis.BlockingConnectionPool
    held = pool.get_connection()
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError, match="No connection available"):
        pool.get_connection()  # the one connection is held: it waits pool_timeout_s, then gives up
    assert 0.15 < time.monotonic() - started < 2.0
    pool.release(held)
    pool.disconnect()


def test_a_blocking_pool_is_refused_where_redis_py_has_none() -> None:
    profile = parse_profile({"client": {"pool": "blocking"}}, "p.yaml")
    check_connection_mode(profile, "redis://127.0.0.1:1/0", "p.yaml")
    for url in ("sentinel://127.0.0.1:26379/rr", "cluster://127.0.0.1:7000"):
        with pytest.raises(SetupError, match=r"p.yaml: client.pool: blocking is for redis:// and rediss://"):
            check_connection_mode(profile, url, "p.yaml")
