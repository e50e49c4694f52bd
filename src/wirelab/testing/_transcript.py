"""Per-connection transcripts and hexdumps, shared by every test double in this package.

A :class:`Transcript` records what crossed one connection, in order, with the time offset
from the connection's start. ``str(transcript)`` is the failure report: one block per
record with a hexdump, so a mismatch can be read byte by byte.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Direction", "Record", "Transcript", "first_mismatch", "hexdump"]

Direction = Literal["recv", "send", "event"]


def hexdump(data: bytes, *, start: int = 0, width: int = 16, limit: int = 4096) -> str:
    """Classic ``offset  hex bytes  |ascii|`` lines; at most ``limit`` bytes are shown."""
    lines = []
    shown = data[:limit]
    for off in range(0, len(shown), width):
        row = shown[off : off + width]
        hexes = " ".join(f"{b:02x}" for b in row).ljust(width * 3 - 1)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{start + off:08x}  {hexes}  |{text}|")
    if len(data) > limit:
        lines.append(f"... {len(data) - limit} more bytes")
    return "\n".join(lines)


def first_mismatch(expected: bytes, actual: bytes) -> int | None:
    """Offset of the first differing byte (or of the shorter end), None if equal."""
    for i, (a, b) in enumerate(zip(expected, actual, strict=False)):
        if a != b:
            return i
    if len(expected) != len(actual):
        return min(len(expected), len(actual))
    return None


@dataclass(frozen=True, slots=True)
class Record:
    """One thing that happened on a connection: bytes received/sent, or an event note."""

    direction: Direction
    offset: float  # seconds since the connection started
    data: bytes = b""
    note: str = ""


@dataclass
class Transcript:
    """Thread-safe, append-only log of one connection."""

    name: str = "connection"
    started: float = field(default_factory=time.monotonic)
    records: list[Record] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, direction: Direction, data: bytes = b"", note: str = "") -> None:
        with self._lock:
            self.records.append(Record(direction, time.monotonic() - self.started, data, note))

    @property
    def received(self) -> bytes:
        with self._lock:
            return b"".join(r.data for r in self.records if r.direction == "recv")

    @property
    def sent(self) -> bytes:
        with self._lock:
            return b"".join(r.data for r in self.records if r.direction == "send")

    def __str__(self) -> str:
        with self._lock:
            records = list(self.records)
        out = [f"transcript of {self.name} ({len(records)} records):"]
        for r in records:
            if r.direction == "event":
                out.append(f"  +{r.offset:.3f}s  {r.note}")
                continue
            arrow = "<- client sent" if r.direction == "recv" else "-> server sent"
            out.append(f"  +{r.offset:.3f}s  {arrow} {len(r.data)} bytes {r.note}".rstrip())
            out.extend("    " + line for line in hexdump(r.data).splitlines())
        return "\n".join(out)
