"""ffmpeg ``-progress`` output, sans-IO: key=value lines to a monotonic percentage."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ProgressParser"]


@dataclass
class ProgressParser:
    """Feed ``-progress`` bytes; :attr:`seconds` is the output time reached so far.

    ffmpeg writes blocks of ``key=value`` lines, each ending with ``progress=continue``
    (or ``progress=end``). ``out_time_us`` is the output's position in microseconds; it
    can be ``N/A`` or briefly negative at the start, and a later block may report less
    than an earlier one (audio and video interleave): :attr:`seconds` never decreases.
    """

    seconds: float = 0.0
    ended: bool = False
    _buffer: bytes = field(default=b"", repr=False)

    def feed(self, data: bytes) -> bool:
        """Consume ``data``; return whether :attr:`seconds` advanced."""
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        before = self.seconds
        for raw in lines:
            key, sep, value = raw.decode("ascii", "replace").strip().partition("=")
            if not sep:
                continue
            if key in ("out_time_us", "out_time_ms"):  # both are microseconds in ffmpeg
                try:
                    reached = int(value) / 1e6
                except ValueError:
                    continue
                self.seconds = max(self.seconds, reached)
            elif key == "progress" and value == "end":
                self.ended = True
        return self.seconds > before
