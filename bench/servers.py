"""Redis beside Valkey, run by hand: where the two embedded servers differ, measured on both.

    .venv/bin/python bench/servers.py [--rounds 5]

For each server (redis-server from apt, valkey-server from the valkey extra), on an embedded server of
its own (nothing else running, no load):

1. start-up: the fastest of ``--rounds`` restarts, from the gate's opening to the first answer
   (``EmbeddedRedis.startup_s``: what ``server_restart`` starts the server early by);
2. ``CLIENT PAUSE 1000 ALL`` sent as is (not through the pack's fault, which raises ``hz`` for the pause)
   at ``hz`` 10 (the default), 100 and 500, ``--rounds`` times each: the stall an independent probe saw
   (tests/stall_probe.py: a PING every 1 ms), min, median and max;
3. ``client_kill`` ``scope: all``: three redis-py connections that connected and sent nothing, no name
   set: what ``CLIENT LIST`` says their last command was, and how many of them the pack's fault killed.

Failover timings, on the sentinel and cluster topologies, come from the server matrix of
docs/benchmarks.md and from tests/test_cluster.py (its run prints ``promoted after``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaos.faults import FaultTarget, build_fault
from chaos.faults.client_kill import ClientKillParams
from targets.embedded import EmbeddedRedis, server_binaries
from tests.helpers import StallProbe, no_pools


def startup(server: EmbeddedRedis, rounds: int) -> float:
    for _ in range(rounds):
        server.kill()
        server.restart()
    return server.startup_s


def pause_stalls(server: EmbeddedRedis, admin: redis.Redis, hz: int, rounds: int) -> list[float]:
    admin.config_set("hz", hz)
    stalls = []
    for _ in range(rounds):
        probe = StallProbe(server.host, server.port)
        admin.execute_command("CLIENT", "PAUSE", 1000, "ALL")
        time.sleep(1.3)
        spans = [end - start for start, end in probe.stop() if end - start > 0.5]
        stalls.extend(spans)
    admin.config_set("hz", 10)
    return stalls


def idle_kills(server: EmbeddedRedis, admin: redis.Redis) -> tuple[set[str], int]:
    idle = [redis.Redis(host=server.host, port=server.port) for _ in range(3)]
    for client in idle:
        client.connection_pool.get_connection().connect()  # connected (HELLO or not, SETINFO), nothing sent since
    seen = {str(c.get("cmd")) for c in admin.client_list() if not c.get("name")}
    fault = build_fault(
        ClientKillParams(name="client_kill", scope="all", allow_scope_all=True), FaultTarget(admin, "rr-b-", no_pools)
    )
    killed = int(fault.inject()["connections_killed"])
    for client in idle:
        client.close()
    return seen, killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for kind in ("redis", "valkey"):
        server = EmbeddedRedis(server=server_binaries(kind)).start()
        try:
            fastest = startup(server, args.rounds)
            admin = redis.Redis(host=server.host, port=server.port, client_name="rradmin-bench")
            version = admin.info("server")
            print(f"{kind} {version.get(f'{kind}_version', version['redis_version'])}")
            print(f"  start-up, fastest of {args.rounds}: {fastest * 1000:.1f} ms")
            for hz in (10, 100, 500):
                stalls = [s * 1000 for s in pause_stalls(server, admin, hz, args.rounds)]
                print(
                    f"  CLIENT PAUSE 1000 ALL at hz {hz}: stall {min(stalls):.1f} / {statistics.median(stalls):.1f} / "
                    f"{max(stalls):.1f} ms (min / median / max of {len(stalls)})"
                )
            seen, killed = idle_kills(server, admin)
            print(
                f"  idle unnamed connections: CLIENT LIST cmd {sorted(seen)}; "
                f"client_kill scope all killed {killed} of 3"
            )
            admin.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
