"""What the built-in fault proxy's slicer toxic does to a large reply, run by hand:

    .venv/bin/python bench/slicer.py [--value-bytes 262144] [--average 1000] [--variation 200]

An embedded redis-server behind the built-in proxy; a raw socket GETs one value through a slicer of
each ``delay`` in turn and reports the reads it took, their sizes, the time, and the time per read:
how close each slice's delay comes to what was asked (gevent's timers have about a millisecond's
resolution, so a shorter delay lasts about that long).
"""

from __future__ import annotations

import locust  # noqa: F401  (first: it patches the standard library with gevent)

import argparse
import socket
import statistics
import time

from targets.builtin_proxy import BuiltinProxy
from targets.embedded import EmbeddedRedis


def get_sliced(proxy: BuiltinProxy, size: int) -> list[int]:
    """GET the value through the proxy; the size of each read."""
    want = len(f"${size}\r\n") + size + 2
    sizes: list[int] = []
    with socket.create_connection((proxy.host, proxy.port), timeout=60) as sock:
        sock.sendall(b"GET big\r\n")
        while sum(sizes) < want:
            data = sock.recv(1 << 20)
            if not data:
                raise SystemExit("the proxy closed the connection")
            sizes.append(len(data))
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--value-bytes", type=int, default=262_144)
    parser.add_argument("--average", type=int, default=1000)
    parser.add_argument("--variation", type=int, default=200)
    parser.add_argument("--delays-us", type=int, nargs="+", default=[0, 100, 500, 1000, 2000, 5000])
    args = parser.parse_args()
    server = EmbeddedRedis().start()
    proxy = BuiltinProxy(server.host, server.port)
    try:
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            value = b"x" * args.value_bytes
            sock.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n%s\r\n" % (len(value), value))
            assert sock.recv(64) == b"+OK\r\n"
        print(f"GET of {args.value_bytes} bytes, slicer average {args.average} +/- {args.variation}")
        print(f"{'delay_us':>9} {'reads':>6} {'min':>5} {'median':>7} {'max':>5} {'total_s':>8} {'per_read_us':>12}")
        for delay_us in args.delays_us:
            attributes = {"average_size": args.average, "size_variation": args.variation, "delay": delay_us}
            proxy.add_toxic("slicer", "slicer", attributes, "downstream")
            begin = time.monotonic()
            sizes = get_sliced(proxy, args.value_bytes)
            total_s = time.monotonic() - begin
            proxy.remove_toxic("slicer")
            print(
                f"{delay_us:>9} {len(sizes):>6} {min(sizes):>5} {statistics.median(sizes):>7.0f} {max(sizes):>5}"
                f" {total_s:>8.3f} {total_s / len(sizes) * 1e6:>12.0f}"
            )
    finally:
        proxy.close()
        server.stop()


if __name__ == "__main__":
    main()
