"""Sentinel double-failover count (by hand, not a test): how often does a kill_primary failover on
the embedded sentinel topology set off a second, spurious failover?

Starts one embedded-sentinel topology, then --failovers times: the failover fault with
``method: kill_primary`` (the old primary restarts right after the promotion), then a bounded wait
(90 s) for the topology to settle. A failover counts as double when the sentinels log more than one
``+switch-master`` each for it. With ``down-after-milliseconds 1000`` Redis 7.0's Sentinel could
call the new primary down before it had reconnected to it (see the README); prints the promotion
times and the double count:

    .venv/bin/python bench/sentinel_race.py                          # 50 failovers, the pack's 3000 ms
    .venv/bin/python bench/sentinel_race.py --down-after-ms 1000
"""

from __future__ import annotations

import argparse
import statistics
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import targets.topology
from chaos.faults import FaultTarget, build_fault
from chaos.faults.failover import FailoverParams
from scenarios.run import PoolResetResult
from targets.clients import pool_from_url
from targets.topology import SentinelTopology


def no_pools() -> PoolResetResult:
    return PoolResetResult(pools=0, connections=0, in_use=0)


def switches(topology: SentinelTopology) -> int:
    return sum(
        (s.dir / "redis.log").read_text(errors="replace").count("+switch-master")
        for s in topology.sentinels
        if s.dir is not None
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--failovers", type=int, default=50)
    parser.add_argument("--down-after-ms", type=int, default=targets.topology.DOWN_AFTER_MS)
    args = parser.parse_args()
    targets.topology.DOWN_AFTER_MS = args.down_after_ms  # read when the sentinels' config is written
    topology = SentinelTopology().start()
    promoted: list[float] = []
    doubles = 0
    try:
        for i in range(args.failovers):
            pool = pool_from_url(topology.url, client_name="rradmin-b", socket_timeout=2, retry=Retry(NoBackoff(), 0))
            target = FaultTarget(redis.Redis.from_pool(pool), "rr-b-", no_pools, servers=topology)
            before = switches(topology)
            fault = build_fault(FailoverParams(name="failover", method="kill_primary", down_s=0.1), target)
            details = fault.inject()
            fault.revert()
            promoted.append(details["promoted_after_s"])
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not topology.settled():
                time.sleep(0.1)
            switched = switches(topology) - before
            doubles += switched > len(topology.sentinels)
            print(f"{i}: promoted after {details['promoted_after_s']} s, +switch-master x{switched}", flush=True)
            target.admin.close()
    finally:
        topology.stop()
    print(
        f"down-after {args.down_after_ms} ms: {len(promoted)} failovers, {doubles} double; promotion "
        f"median {statistics.median(promoted):.2f} s, max {max(promoted):.2f} s"
    )


if __name__ == "__main__":
    main()
