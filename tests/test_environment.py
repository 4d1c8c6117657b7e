"""What a report says ran (its ``environment``): each data node's server as its INFO says, on real servers."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess

import redis

from config.schema import ClientOptions
from recovery.environment import RunEnvironment, versions_line
from targets.embedded import EmbeddedRedis, free_port
from targets.server_version import ServerVersion, server_versions


def test_each_node_says_its_server_and_one_that_cannot_be_asked_says_why(redis_server: EmbeddedRedis) -> None:
    printed = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=10, check=True)
    match = re.search(r"\bv=(\S+)", printed.stdout)
    assert match, printed.stdout
    version = match.group(1)
    admin = redis.Redis(host="127.0.0.1", port=redis_server.port)
    admin.acl_setuser("noinfo", enabled=True, passwords=["+secret"], keys=["*"], commands=["+@all", "-info"])
    refused = redis.Redis(host="127.0.0.1", port=redis_server.port, username="noinfo", password="secret")
    gone_port = free_port()
    gone = redis.Redis(host="127.0.0.1", port=gone_port, socket_connect_timeout=1, retry_on_error=None, retry=None)
    clients = [admin, admin, refused, gone]
    try:
        found = server_versions(clients)
    finally:
        for client in clients:
            client.close()
    node = f"127.0.0.1:{redis_server.port}"
    assert found[:2] == (ServerVersion(node, "redis", version), ServerVersion(node, "redis", version))
    assert found[2].node == node and found[2].version is None and found[2].server is None
    assert found[2].error and "NoPermissionError" in found[2].error and "secret" not in found[2].error, found[2]
    assert found[3].node == f"127.0.0.1:{gone_port}" and found[3].version is None
    assert found[3].error and "ConnectionError" in found[3].error, found[3]
    environment = RunEnvironment(ClientOptions(), found).as_report()
    assert environment["servers"][0] == {"node": node, "server": "redis", "version": version}
    assert environment["servers"][2]["error"] == found[2].error
    client = f"redis-py {importlib.metadata.version('redis')} + hiredis {importlib.metadata.version('hiredis')}"
    assert versions_line(environment) == (
        f"{client} → redis {version}, server unknown ({node}: {found[2].error}), "
        f"server unknown (127.0.0.1:{gone_port}: {found[3].error})"
    )  # one version named once, each node that could not be asked with why
    minor = ".".join(version.split(".")[:2])
    assert versions_line({**environment, "servers": environment["servers"][:2]}, major_minor=True) == (
        f"{client} → redis {minor}"
    )
