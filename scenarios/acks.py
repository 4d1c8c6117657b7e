"""Acknowledged writes, remembered compactly: memory grows with failed writes, never with acknowledged ones."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from scenarios.client import RedisRequestFailed


class AckBook:
    """One writer's sequence numbers: every one below ``next_seq`` was acknowledged unless in ``unacked``.

    A write cut off before it could be recorded (the user stopped mid-command) leaves
    ``next_seq`` where it was: its sequence number is neither acknowledged nor unacknowledged.
    """

    def __init__(self, writer: str) -> None:
        self.writer = writer
        self.next_seq = 0
        self.unacked: set[int] = set()

    def item(self, seq: int) -> str:
        """The written item's identity, unique across the run: ``<writer>:<seq>``."""
        return f"{self.writer}:{seq}"

    @contextmanager
    def writing(self) -> Iterator[int]:
        """``with book.writing() as seq:`` write item ``seq``; acknowledged if the block returns."""
        seq = self.next_seq
        try:
            yield seq
        except RedisRequestFailed:
            self.record(seq, acknowledged=False)
            raise
        self.record(seq, acknowledged=True)

    def record(self, seq: int, acknowledged: bool) -> None:
        if not acknowledged:
            self.unacked.add(seq)
        self.next_seq = seq + 1

    @property
    def acknowledged(self) -> int:
        return self.next_seq - len(self.unacked)

    def acknowledged_seqs(self) -> Iterator[int]:
        return (seq for seq in range(self.next_seq) if seq not in self.unacked)


def split_item(item: bytes | str) -> tuple[str, int]:
    """``b"w1-3:17"`` -> ``("w1-3", 17)``."""
    text = item.decode() if isinstance(item, bytes) else item
    writer, _, seq = text.rpartition(":")
    return writer, int(seq)


def tally(books: Iterable[AckBook], counts: dict[str, int]) -> tuple[int, int, int, int]:
    """Acknowledged items against how often each item was found: (acknowledged, lost, duplicated, applied).

    ``counts`` maps items (``writer:seq``) to occurrences at the end (consumed, stored, ...).
    ``applied`` counts unacknowledged writes that took effect anyway.
    """
    acknowledged = lost = duplicated = applied = 0
    for book in books:
        acknowledged += book.acknowledged
        for seq in range(book.next_seq):
            n = counts.get(book.item(seq), 0)
            if seq in book.unacked:
                applied += 1 if n else 0
            elif n == 0:
                lost += 1
            if n > 1:
                duplicated += n - 1
    return acknowledged, lost, duplicated, applied
