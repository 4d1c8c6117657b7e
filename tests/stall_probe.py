"""An independent probe for the tests: how long a Redis server really stopped answering.

It is not the pack's witness (targets/witness_probe.py) and shares no code with it: the tests check
the pack's figures, and the faults' durations, against it. Run as a process of its own::

    python tests/stall_probe.py HOST PORT [--command PING|SET|MAXMEMORY] [--threshold-ms 5]

Every 1 ms it sends one command over a plain blocking socket and waits for the reply (it never
pipelines, so it cannot end a pause early by waking the server). It prints, on ``time.monotonic()``:

- ``READY``: connected;
- ``STALL <start> <end>``: a reply later than the threshold, or none: from the send of the first such
  command to the first timely reply (``PING``: the server paused or down; ``SET``: writes held);
- ``SPAN <start> <end>`` (``MAXMEMORY``): ``maxmemory`` was not what it was at the start, from the
  first read that saw it changed to the first that saw it back;
- ``ROUND``: after a byte came on stdin, once the round begun after it has ended (a reply or a failure):
  it has seen the server as it is since that byte was written.

It exits when its stdin closes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import socket
import sys
import time

COMMANDS = {
    "PING": b"*1\r\n$4\r\nPING\r\n",
    "SET": b"*3\r\n$3\r\nSET\r\n$14\r\nrr-stall-probe\r\n$1\r\n1\r\n",
    "MAXMEMORY": b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$9\r\nmaxmemory\r\n",
}


def stdin_byte() -> bytes | None:
    """A byte that came on stdin (``b""`` once it has closed), or None when none is waiting."""
    readable, _, _ = select.select([sys.stdin], [], [], 0)
    return os.read(sys.stdin.fileno(), 1) if readable else None


def reply(sock: socket.socket, request: bytes) -> bytes:
    """One whole reply to ``request`` (simple, or CONFIG GET's two-element array)."""
    sock.sendall(request)
    data = b""
    lines_needed = 5 if request == COMMANDS["MAXMEMORY"] else 1
    while data.count(b"\r\n") < lines_needed:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--command", choices=sorted(COMMANDS), default="PING")
    parser.add_argument("--threshold-ms", type=float, default=5.0)
    args = parser.parse_args()
    with contextlib.suppress(OSError):  # best effort (needs root): a probe woken late would mismeasure
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    request, threshold = COMMANDS[args.command], args.threshold_ms / 1000
    sock: socket.socket | None = None
    since: float | None = None  # the first late or failed send of a stall (or the first changed read)
    baseline: bytes | None = None
    while (asked := stdin_byte()) != b"":
        sent = time.monotonic()
        try:
            if sock is None:
                sock = socket.create_connection((args.host, args.port), timeout=1)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(None)
            answer = reply(sock, request)
        except OSError:
            if sock is not None:
                sock.close()
            sock = None
            since = sent if since is None else since
            if asked is not None:
                print("ROUND", flush=True)
            time.sleep(0.001)
            continue
        got = time.monotonic()
        if baseline is None:
            baseline = answer
            print("READY", flush=True)
        elif args.command == "MAXMEMORY":
            if answer != baseline and since is None:
                since = sent
            elif answer == baseline and since is not None:
                print(f"SPAN {since:.6f} {sent:.6f}", flush=True)
                since = None
        elif since is not None or got - sent > threshold:
            print(f"STALL {sent if since is None else since:.6f} {got:.6f}", flush=True)
            since = None
        if asked is not None:
            print("ROUND", flush=True)
        time.sleep(max(0.0, sent + 0.001 - time.monotonic()))


if __name__ == "__main__":
    main()
