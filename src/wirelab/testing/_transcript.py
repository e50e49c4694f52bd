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

__all__ = [
    "Direction",
    "Record",
    "Transcript",
    "describe_mismatch",
    "first_mismatch",
    "hexdump",
]

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


def describe_mismatch(
    expected: bytes, actual: bytes, *, base: int = 0, context: int = 32, partial: bool = False
) -> str:
    """Explain how ``actual`` differs from ``expected``: the offset of the first differing
    byte, both values' ``repr`` and hexdumps of the rows around that offset.

    ``base`` is the stream offset of both values' first byte (also shown when non-zero);
    ``partial=True`` says that ``actual`` may still grow (the rest had not arrived).
    Returns ``"no mismatch"`` if the two are equal.
    """
    off = first_mismatch(expected, actual)
    if off is None:
        return "no mismatch"
    where = f"offset {off}" + (f" (stream offset {base + off})" if base else "")
    if off >= len(actual):
        head = f"the actual bytes end at {where}"
    elif off >= len(expected):
        head = f"the actual bytes go on past the expected ones at {where}"
    else:
        head = (
            f"first mismatching byte at {where}: "
            f"expected 0x{expected[off]:02x}, got 0x{actual[off]:02x}"
        )
    so_far = " so far" if partial else ""
    start = max(0, off - context) // 16 * 16
    stop = off + context
    lines = [
        head,
        f"  expected ({len(expected)} bytes): {_clip(expected, off)}",
        f"  actual   ({len(actual)} bytes{so_far}): {_clip(actual, off)}",
        "  expected:",
        *("    " + line for line in hexdump(expected[start:stop], start=start).splitlines()),
        "  actual:",
        *("    " + line for line in hexdump(actual[start:stop], start=start).splitlines()),
    ]
    return "\n".join(lines)


def _clip(data: bytes, around: int, width: int = 60) -> str:
    """``repr`` of at most ``width`` bytes of ``data``, centred near ``around``."""
    if len(data) <= width:
        return repr(data)
    lo = max(0, min(around - width // 3, len(data) - width))
    text = repr(data[lo : lo + width])
    return ("..." if lo else "") + text + ("..." if lo + width < len(data) else "")


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
        return self.format()

    def format(self, *, last: int | None = None, limit: int = 4096) -> str:
        """The report ``str()`` gives; ``last`` keeps only the last records (the rest are
        counted, not shown) and each hexdump shows at most ``limit`` bytes."""
        with self._lock:
            records = list(self.records)
        shown = records if last is None else records[len(records) - min(last, len(records)) :]
        out = [f"transcript of {self.name} ({len(records)} records):"]
        if len(shown) < len(records):
            out.append(f"  ... {len(records) - len(shown)} earlier records not shown")
        for r in shown:
            if r.direction == "event":
                out.append(f"  +{r.offset:.3f}s  {r.note}")
                continue
            arrow = "<- client sent" if r.direction == "recv" else "-> server sent"
            out.append(f"  +{r.offset:.3f}s  {arrow} {len(r.data)} bytes {r.note}".rstrip())
            out.extend("    " + line for line in hexdump(r.data, limit=limit).splitlines())
        return "\n".join(out)
