"""Safety rails: chaos off loopback needs an opt-in, ``client_kill`` ``scope: all`` needs its own,
and a full run writes and deletes nothing outside its key prefix.

No test sends anything off this machine. A non-loopback target is TEST-NET (192.0.2.1), refused
before any connection; to show that the opt-in goes on to connect, the target is a host name that
``/etc/hosts`` maps to 127.0.0.1 (the machine's own name, say): the pack resolves no name, so it
counts as remote, while every packet stays on the loopback.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from chaos.faults.client_kill import ClientKillParams
from chaos.profile import load_profile, parse_profile
from config.hosts import is_loopback_host
from config.loader import ProfileError
from targets.embedded import EmbeddedRedis
from targets.safety import remote_chaos_refusal

from .helpers import ROOT, finish, headless_args, locust, shipped_profiles, web_locust, write_profile

LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d ")  # Locust's own log lines


def loopback_alias() -> str | None:
    """A name other than localhost that this machine's /etc/hosts maps to 127.0.0.1 (only)."""
    try:
        lines = Path("/etc/hosts").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or fields[0] != "127.0.0.1":
            continue
        for name in fields[1:]:
            if is_loopback_host(name):
                continue  # localhost: local by the rule
            try:
                addresses = {info[4][0] for info in socket.getaddrinfo(name, 6379, proto=socket.IPPROTO_TCP)}
            except OSError:
                continue
            if addresses == {"127.0.0.1"}:
                return name
    return None


@pytest.fixture
def server() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis().start()
    try:
        yield server
    finally:
        server.stop()


# ---- the chaos rail's refusal (config/hosts.py's rule: tests/test_hosts.py) -------------------------


def test_the_refusal_is_one_line_naming_the_host_and_both_opt_ins() -> None:
    assert remote_chaos_refusal("embedded-cluster") is None  # the pack starts it on 127.0.0.1
    assert remote_chaos_refusal("redis://127.0.0.1:6379/0") is None
    assert remote_chaos_refusal("cluster://127.0.0.1:7000,[::1]:7001") is None
    message = remote_chaos_refusal("redis://:s3cret@192.0.2.1:6379/0")
    assert message is not None and "\n" not in message and "s3cret" not in message
    assert "192.0.2.1 is not a loopback address" in message
    assert "chaos.allow_remote: true" in message and "--allow-remote-chaos" in message and "--no-chaos" in message
    message = remote_chaos_refusal("sentinel://127.0.0.1:26379,192.0.2.1:26379,example.com:26379/m")
    assert message is not None and "192.0.2.1, example.com are not loopback addresses" in message


# ---- chaos off loopback: refused before connecting, unless opted in ------------------------------


def refused_before_connecting(server: EmbeddedRedis, cases: dict[str, tuple[list[str], str]]) -> None:
    """Each case (locust arguments, what the refusal names) stops at set-up with one line, exit 2,
    no connect timeout waited for, and ``server`` sees no connection at all."""
    admin = redis.Redis.from_url(server.url, client_name="safety-check")
    connections_before = admin.info("stats")["total_connections_received"]
    started = time.monotonic()
    procs = {name: locust(["-u", "2", "-t", "5s", *args]) for name, (args, _) in cases.items()}
    for name, proc in procs.items():
        out = finish(proc, timeout=60)
        assert proc.returncode == 2, (name, out)
        assert "Traceback" not in out and "s3cret" not in out, (name, out)
        ours = [line for line in out.splitlines() if not LOG_LINE.match(line)]
        assert len(ours) == 1 and ours[0].startswith("redis-resilience: chaos against "), (name, out)
        assert cases[name][1] in ours[0] and "--allow-remote-chaos" in ours[0], (name, ours[0])
    assert time.monotonic() - started < 30  # no connect timeout was waited for
    assert admin.info("stats")["total_connections_received"] == connections_before
    assert [c["name"] for c in admin.client_list()] == ["safety-check"] and admin.dbsize() == 0
    admin.close()


def test_chaos_against_a_remote_address_stops_before_any_connection(tmp_path: Path, server: EmbeddedRedis) -> None:
    refused_before_connecting(
        server,
        {
            "test-net": (
                ["--resilience-profile", "config/ci.yaml", "--redis-url", "redis://:s3cret@192.0.2.1:6379/0"],
                "192.0.2.1 is not a loopback address",
            ),
            "sentinel": (
                [
                    "--resilience-profile",
                    str(
                        write_profile(
                            tmp_path / "sentinel.yaml",
                            {"target": {"url": f"sentinel://127.0.0.1:{server.port},192.0.2.1:26379/mymaster"}},
                        )
                    ),
                ],
                "192.0.2.1 is not a loopback address",
            ),
        },
    )


def test_chaos_against_a_loopback_alias_stops_before_any_connection(tmp_path: Path, server: EmbeddedRedis) -> None:
    """A name that resolves to this server, yet counts as remote: the server must see no connection."""
    alias = loopback_alias()
    if alias is None:
        pytest.skip("no host name maps to 127.0.0.1 in /etc/hosts: nothing non-loopback stays on this machine")
    url = f"redis://{alias}:{server.port}/0"
    profile = write_profile(tmp_path / "alias.yaml", {"target": {"url": url}})
    refused_before_connecting(
        server,
        {
            "alias-url": (["--resilience-profile", "config/ci.yaml", "--redis-url", url], f"{alias} is not a loopback"),
            "alias-profile": (["--resilience-profile", str(profile)], f"{alias} is not a loopback"),
        },
    )


def test_each_opt_in_goes_on_to_the_target(tmp_path: Path, server: EmbeddedRedis) -> None:
    alias = loopback_alias()
    if alias is None:
        pytest.skip("no host name maps to 127.0.0.1 in /etc/hosts: nothing non-loopback stays on this machine")
    quick: dict[str, Any] = {
        "chaos": {"start_after_s": 1, "every_s": 1, "jitter_s": 0, "faults": [{"name": "client_kill"}]},
        "recovery": {"max_window_s": 1},
    }
    profile = write_profile(tmp_path / "quick.yaml", quick)
    opted = write_profile(tmp_path / "opted.yaml", {**quick, "chaos": {**quick["chaos"], "allow_remote": True}})
    url = f"redis://{alias}:{server.port}/0"
    cases = {
        "cli": (["--resilience-profile", str(profile), "--allow-remote-chaos"], {}, True),
        "env": (["--resilience-profile", str(profile)], {"RESILIENCE_ALLOW_REMOTE_CHAOS": "true"}, True),
        "profile": (["--resilience-profile", str(opted)], {}, True),
        "no-chaos": (["--resilience-profile", str(profile), "--no-chaos"], {}, False),
    }
    procs = {}
    for name, (args, env, _) in cases.items():
        report = tmp_path / f"{name}.json"
        procs[name] = (
            report,
            locust(
                headless_args(2, "4s", "--redis-url", url, "--resilience-report", str(report), *args),
                env={**os.environ, **env},
            ),
        )
    for name, (report_path, proc) in procs.items():
        out = finish(proc, timeout=60)
        assert proc.returncode in (0, 3), (name, out[-3000:])
        report = json.loads(report_path.read_text())
        assert alias in report["target"] and report["summary"]["requests"] > 0
        faults = report["faults"]
        assert (len(faults) >= 1 and all(f["ok"] for f in faults)) if cases[name][2] else faults == [], (name, faults)
    admin = redis.Redis.from_url(server.url)
    assert admin.dbsize() == 0  # every run removed its keys
    admin.close()


# ---- client_kill scope: all ----------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["all", "others"])
def test_client_kill_scope_all_needs_its_own_opt_in(scope: str) -> None:
    entry = {"name": "client_kill", "scope": scope}
    with pytest.raises(ProfileError) as caught:
        parse_profile({"chaos": {"faults": [{"name": "pool_reset"}, entry]}}, "p.yaml")
    message = str(caught.value)
    assert message.startswith(f"p.yaml: chaos.faults[1]: scope: {scope} closes connections that are not this run's")
    assert "set allow_scope_all: true on this fault" in message and "\n" not in message
    profile = parse_profile({"chaos": {"faults": [{**entry, "allow_scope_all": True}]}}, "p.yaml")
    fault = profile.chaos.faults[0]
    assert isinstance(fault, ClientKillParams) and fault.scope == scope
    with pytest.raises(ProfileError, match="scope: service needs a selector"):
        parse_profile({"chaos": {"faults": [{"name": "client_kill", "scope": "service"}]}}, "p.yaml")
    for shipped in shipped_profiles():  # every shipped profile loads, none kills beyond its own
        faults = load_profile(shipped).chaos.faults  # (or beyond the service's connections it names)
        assert all(getattr(f, "scope", "own") in ("own", "service") for f in faults), shipped


# ---- a full run touches nothing outside its prefix ------------------------------------------------


def seed(client: redis.Redis) -> None:
    """Another application's keys: several types, some with a TTL, some with names close to the pack's."""
    client.set("app:string", b"\x00\xffbinary value")
    client.set("app:string:ttl", "expires", ex=3600)
    client.hset("app:hash", mapping={"f1": "v1", "f2": b"\x00"})
    client.pexpire("app:hash", 7_200_000)
    client.rpush("app:list", "a", "b", "c")
    client.sadd("app:set", "x", "y")
    client.zadd("app:zset", {"m1": 1.5, "m2": 2})
    client.expire("app:zset", 5000)
    client.xadd("app:stream", {"k": "v"})
    client.xgroup_create("app:stream", "app-group", id="0")
    client.pfadd("app:hll", "a", "b")
    client.set(b"app:\xff\x00binary-name", "v")
    client.set("rr", "the bare prefix")
    client.set("rr:deadbeef:cache:1", "another run's key", ex=3600)
    client.set("rrx:1", "a neighbour of the prefix")


def snapshot(client: redis.Redis) -> dict[bytes, tuple[bytes | None, int]]:
    return {key: (client.dump(key), client.pttl(key)) for key in client.scan_iter(count=1000)}


def test_a_full_run_touches_nothing_outside_its_prefix(tmp_path: Path, server: EmbeddedRedis) -> None:
    admin = redis.Redis.from_url(server.url, client_name="safety-check")
    seed(admin)
    other_db = redis.Redis.from_url(server.url.rsplit("/", 1)[0] + "/1")
    other_db.set("app:db1", "in another database", ex=3600)
    before, before_db1 = snapshot(admin), snapshot(other_db)
    config_before = admin.config_get("maxmemory*")
    # another application's connections: a plain one and a subscriber
    bystander = redis.Connection(
        host="127.0.0.1", port=server.port, client_name="app-bystander", retry=Retry(NoBackoff(), 0)
    )
    bystander.connect()
    bystander.send_command("CLIENT", "ID")
    bystander_id = bystander.read_response()
    subscriber = redis.Redis.from_url(server.url, client_name="app-subscriber").pubsub()
    subscriber.subscribe("app:events")
    subscriber.get_message(timeout=1)

    workloads = yaml.safe_load((ROOT / "config" / "workloads.yaml").read_text())["workload"]
    profile = write_profile(
        tmp_path / "everything.yaml",
        {
            "workload": workloads,
            "chaos": {
                "start_after_s": 2,
                "every_s": 2.5,
                "jitter_s": 0,
                "order": "cycle",
                "faults": [
                    {"name": "client_kill", "scope": "own"},
                    {"name": "pool_reset"},
                    {"name": "client_pause", "mode": "ALL", "pause_ms": 600},
                    {"name": "client_pause", "mode": "WRITE", "pause_ms": 600},
                    {"name": "oom", "duration_s": 1},
                ],
            },
            "recovery": {"max_window_s": 2},
            "slo": {
                "max_recovery_p95_s": None,
                "max_error_rate_in_windows": None,
                "max_error_rate_outside_windows": None,
                "max_lost_writes": None,
                "max_failed_faults": 0,
            },
        },
    )
    report_path = tmp_path / "report.json"
    started = time.monotonic()
    proc = locust(
        headless_args(
            12,  # one user of each workload of config/workloads.yaml, two of cache
            "16s",
            "--resilience-profile",
            str(profile),
            "--redis-url",
            server.url,
            "--resilience-report",
            str(report_path),
        )
    )
    out = finish(proc, timeout=120)
    elapsed_ms = (time.monotonic() - started) * 1000
    assert "Traceback" not in out, out[-4000:]
    report = json.loads(report_path.read_text())
    faults = report["faults"]
    assert all(f["ok"] for f in faults), faults
    assert {(f["name"], f["params"].get("mode")) for f in faults} == {
        ("client_kill", None),
        ("pool_reset", None),
        ("client_pause", "ALL"),
        ("client_pause", "WRITE"),
        ("oom", None),
    }
    assert {"ledger", "queue", "stream", "lock", "pubsub", "ratelimit", "pipeline", "transaction"} <= set(
        report["integrity"]
    )

    # the other application's keys: byte for byte, their TTLs running down as before, nothing added
    after = snapshot(admin)
    assert set(after) == set(before), set(after) ^ set(before)
    for key, (dump, pttl) in before.items():
        dump_after, pttl_after = after[key]
        assert dump_after == dump, key
        if pttl < 0:
            assert pttl_after == pttl, key
        else:
            assert pttl - elapsed_ms - 5000 <= pttl_after <= pttl, (key, pttl, pttl_after)
    assert snapshot(other_db).keys() == before_db1.keys()
    assert not list(admin.scan_iter(match=f"rr:{report['run_id']}:*"))
    # the server as it was: its memory settings, its other clients (never killed, never left paused)
    assert admin.config_get("maxmemory*") == config_before
    bystander.send_command("PING")
    assert bystander.read_response() in (b"PONG", "PONG")
    clients = {c["name"]: c["id"] for c in admin.client_list()}
    assert clients.get("app-bystander") == str(bystander_id) and "app-subscriber" in clients
    assert not [name for name in clients if name.startswith(("rr-", "rradmin-"))], clients
    bystander.disconnect()
    subscriber.close()
    other_db.close()
    admin.close()


def test_no_chaos_on_a_remote_target_resets_only_its_own_pools_on_demand(tmp_path: Path, server: EmbeddedRedis) -> None:
    alias = loopback_alias()
    if alias is None:
        pytest.skip("no host name maps to 127.0.0.1 in /etc/hosts: nothing non-loopback stays on this machine")
    args = [
        "-u",
        "5",
        "-r",
        "5",
        "--no-chaos",
        "--resilience-profile",
        "config/ci.yaml",
        "--redis-url",
        f"redis://{alias}:{server.port}/0",
    ]
    with web_locust(args, tmp_path / "report.json") as run:
        # the 5 users' pools exist (their connections come and go with the traffic: not counted here)
        run.status_when(
            lambda st: bool(st["running"] and (st["connections"]["pools"] or {}).get("pools", 0) >= 5),
            30,
            "5 users' pools",
        )
        for fault in ("client_kill", "client_pause", "oom"):  # they act on the server: refused
            code, body = run.call("/chaos/redis-reset", {"force": True, "fault": fault})
            assert code == 400 and f"{alias} is not a loopback address" in body["error"], (fault, body)
        code, reset = run.call("/chaos/redis-reset", {"force": True})  # pool_reset: the pack's own pools
        assert code == 200 and reset["name"] == "pool_reset" and reset["ok"], reset
        report = run.stop()
    assert [f["name"] for f in report["faults"]] == ["pool_reset"]
