"""The built-in fault proxy's RESP-aware mode: it reads the Redis protocol on each connection it carries,
so that it can speak to the client itself, as Redis Cloud and Redis Software do before maintenance.

Per connection a :class:`RespWire` sees both directions in whole frames (RESP2 and RESP3):

- **client -> server**: a ``CLIENT MAINT_NOTIFICATIONS ...`` is answered ``+OK`` by the proxy and not
  passed on (the server behind it, Redis Open Source or Valkey, does not know the command). Clients
  pipeline their handshake, so the ``+OK`` takes its place among the replies: after the replies to the
  commands sent before it (counted as they pass), never before;
- **server -> client**: only whole frames are passed on, so a frame of the proxy's own (a reply, or a
  RESP3 push such as ``MOVING``) is written between two frames of the server's, never inside one. The
  client's socket is written through :class:`ClientWriter`, which knows where the frames end.

Commands whose RESP3 answer is a push (``SUBSCRIBE`` and its kin) are not counted as awaiting a reply.
The frame scan reads lengths and line ends only (no values are decoded), and only in this mode: the
proxy's plain mode passes bytes as they come.
"""

from __future__ import annotations

import socket
from collections import deque
from typing import Final

import gevent
import gevent.event
import gevent.lock

_AGGREGATES: Final = {ord("*"): 1, ord("~"): 1, ord(">"): 1, ord("%"): 2, ord("|"): 2}  # elements per count
_BULKS: Final = frozenset(b"$!=")
_PUSH: Final = ord(">")
_PUSH_REPLIED: Final = frozenset(
    {b"SUBSCRIBE", b"PSUBSCRIBE", b"SSUBSCRIBE", b"UNSUBSCRIBE", b"PUNSUBSCRIBE", b"SUNSUBSCRIBE"}
)
OK: Final = b"+OK\r\n"
BOUNDARY_WAIT_S: Final = 5.0  # a frame of the proxy's own waits this long at most for its turn


class FrameError(Exception):
    """Bytes that are not RESP: the connection is closed (as a server closes on a protocol error)."""


def frame_end(buf: bytes | bytearray, pos: int = 0) -> int | None:
    """Where the frame that starts at ``pos`` ends (the index after it); None while it is incomplete.
    An inline command (a line without a type byte) is one frame."""
    todo = 1
    size = len(buf)
    while todo:
        if pos >= size:
            return None
        line = buf.find(b"\r\n", pos)
        if line < 0:
            return None
        kind = buf[pos]
        todo -= 1
        try:
            if kind in _BULKS:
                length = int(buf[pos + 1 : line])
                pos = line + 2 + (length + 2 if length >= 0 else 0)
                if pos > size:
                    return None
            elif kind in _AGGREGATES:
                count = int(buf[pos + 1 : line])
                pos = line + 2
                todo += max(count, 0) * _AGGREGATES[kind]
                if kind == ord("|"):  # an attribute: the value it describes follows
                    todo += 1
            else:  # a simple type, or an inline command
                pos = line + 2
        except ValueError:
            raise FrameError(f"not a RESP length: {bytes(buf[pos : min(line, pos + 20)])!r}") from None
    return pos


def take_frames(buf: bytearray, data: bytes) -> list[bytes]:
    """Add ``data`` to ``buf`` and take the whole frames out of it (an incomplete one stays)."""
    buf += data
    frames: list[bytes] = []
    pos = 0
    while (end := frame_end(buf, pos)) is not None:
        frames.append(bytes(buf[pos:end]))
        pos = end
    del buf[:pos]
    return frames


def command_words(frame: bytes, count: int = 2) -> list[bytes]:
    """The first ``count`` words of a client's command frame (an array of bulk strings), upper-cased."""
    words: list[bytes] = []
    if not frame.startswith(b"*"):
        return [w.upper() for w in frame.split()[:count]]  # inline
    pos = frame.find(b"\r\n") + 2
    while len(words) < count and pos < len(frame) and frame[pos] == ord("$"):
        line = frame.find(b"\r\n", pos)
        length = int(frame[pos + 1 : line])
        words.append(frame[line + 2 : line + 2 + length].upper())
        pos = line + 2 + length + 2
    return words


def push_frame(*elements: str | int) -> bytes:
    """A RESP3 push (``>``) of simple strings and integers, e.g. ``push_frame("MIGRATING", 1, 10)``."""
    parts = [f">{len(elements)}\r\n".encode()]
    for element in elements:
        parts.append(f":{element}\r\n".encode() if isinstance(element, int) else f"+{element}\r\n".encode())
    return b"".join(parts)


class ClientWriter:
    """Writes to the client's socket, knowing where the frames it was handed end: a frame of the proxy's
    own is written only between two of the server's (the pump may write a frame in pieces: a slicer
    toxic, a partial send), and an answer of its own only once every reply before it is written."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._lock = gevent.lock.Semaphore()
        self._handed = 0  # bytes of whole frames handed to the pump to write
        self._sent = 0  # bytes written of them
        self._ends: deque[int] = deque()  # where the frames handed end (in handed bytes), not yet written past
        self._between = gevent.event.Event()  # the bytes written end a frame
        self._drained = gevent.event.Event()  # every frame handed is written
        self._between.set()
        self._drained.set()

    def handed(self, lengths: list[int]) -> None:
        """Frames of these lengths are on their way (their bytes follow through :meth:`sendall`)."""
        for length in lengths:
            self._handed += length
            self._ends.append(self._handed)
        if lengths:
            self._between.clear()
            self._drained.clear()

    def sendall(self, data: bytes | memoryview) -> None:
        """The pump's write of (part of) the frames handed."""
        with self._lock:
            self.sock.sendall(data)
            self._sent += len(data)
            between = False
            while self._ends and self._ends[0] <= self._sent:
                between = self._ends.popleft() == self._sent
            if between or self._sent == self._handed:
                self._between.set()
            if self._sent == self._handed:
                self._drained.set()

    def send_own(self, frame: bytes, drained: bool = False) -> bool:
        """Write a frame of the proxy's own between two of the server's (``drained``: once all of theirs
        handed so far are written); False when that did not come within :data:`BOUNDARY_WAIT_S`."""
        ready = self._drained if drained else self._between
        with gevent.Timeout(BOUNDARY_WAIT_S, False):
            while True:
                ready.wait()
                with self._lock:
                    if ready.is_set():
                        self.sock.sendall(frame)
                        return True
        return False


class RespWire:
    """One connection's RESP traffic, as the pumps pass it (see the module docstring)."""

    def __init__(self, client: socket.socket) -> None:
        self.writer = ClientWriter(client)
        self.notifications_on = False  # the client asked for maintenance notifications (answered +OK)
        self._up = bytearray()
        self._down = bytearray()
        self._passed = 0  # commands passed on to the server that await a reply
        self._replied = 0  # replies passed back
        self._own: deque[tuple[int, bytes]] = deque()  # (after this many replies, answer): answers of ours

    def upstream(self, data: bytes) -> bytes:
        """What of the client's ``data`` goes on to the server: its whole commands, but those the proxy
        answers itself."""
        out: list[bytes] = []
        for frame in take_frames(self._up, data):
            words = command_words(frame)
            if words == [b"CLIENT", b"MAINT_NOTIFICATIONS"]:
                self.notifications_on = True
                self._own.append((self._passed, OK))  # after the replies to the commands before it
                continue
            out.append(frame)
            if not words or words[0] not in _PUSH_REPLIED:
                self._passed += 1
        self._answer_due()
        return b"".join(out)

    def _answer_due(self) -> None:
        """Our answers whose turn has come with no reply of the server's left to follow (else the
        downstream puts them in their place)."""
        while self._own and self._own[0][0] <= self._replied:
            self.writer.send_own(self._own.popleft()[1], drained=True)

    def downstream(self, data: bytes) -> bytes:
        """What of the server's ``data`` goes on to the client now: its whole frames, with an answer of
        the proxy's own put in its place among the replies."""
        out: list[bytes] = []
        for frame in take_frames(self._down, data):
            out.append(frame)
            if frame[0] != _PUSH:
                self._replied += 1
                while self._own and self._own[0][0] <= self._replied:
                    out.append(self._own.popleft()[1])
        self.writer.handed([len(f) for f in out])
        return b"".join(out)

    def push(self, frame: bytes) -> bool:
        """Write a push of the proxy's own to the client, between two of the server's frames."""
        return self.writer.send_own(frame)
