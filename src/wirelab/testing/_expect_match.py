"""Matchers and frame codecs for :mod:`wirelab.testing._expect` (no I/O, no threads).

A :class:`Matcher` decides how many bytes an expectation consumes and whether they are
right. A :class:`FrameCodec` cuts frames out of a byte buffer and formats them: the codecs
of :mod:`wirelab.framing` (``LengthPrefixCodec``, ``DelimiterCodec``) are FrameCodecs, and
the default is pytest-tcpclient's 4-byte big-endian unsigned length prefix.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .._exceptions import ProtocolError, UsageError
from ..framing import FrameCodec, LengthPrefixCodec
from ._transcript import first_mismatch, hexdump

__all__ = [
    "DEFAULT_CODEC",
    "FrameCodec",
    "Matcher",
    "check_codec",
    "describe_bytes",
    "make_matcher",
    "plural",
    "split_frame",
]


DEFAULT_CODEC: FrameCodec = LengthPrefixCodec(4, "big", max_frame=0xFFFFFFFF)
"""pytest-tcpclient's framing: a 4-byte big-endian unsigned length, then the payload (no
size limit but the width's, as there)."""

Kind = Literal["exact", "prefix", "regex", "predicate"]


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def describe_bytes(data: bytes, limit: int = 200) -> str:
    """``repr(data)``, shortened in the middle beyond ``limit`` bytes (for labels only)."""
    if len(data) <= limit:
        return repr(data)
    half = limit // 2
    return f"{data[:half]!r}...({len(data) - limit} bytes)...{data[-half:]!r}"


@dataclass(frozen=True, slots=True)
class Matcher:
    """What an ``expect_bytes``/``expect_frame`` step wants.

    For raw bytes the extent of a read is fixed (``size``: ``len(expected)``, the prefix
    length or the given ``size``), except for a regex without ``size``, which is matched
    anchored at the current position (like :func:`re.match`) against what has arrived and
    consumes what it matched. For frames the extent is one frame.
    """

    kind: Kind
    expected: bytes | None = None
    pattern: re.Pattern[bytes] | None = None
    predicate: Callable[[bytes], bool] | None = None
    size: int | None = None

    def describe(self, *, framed: bool) -> str:
        """Text used in messages: ``b'abc'`` for exact, ``bytes starting with b'ab'`` etc."""
        if self.kind == "exact":
            assert self.expected is not None
            return repr(self.expected)
        count = "" if framed or self.size is None else f"{self.size} "
        noun = "" if framed else "bytes "
        if self.kind == "prefix":
            return f"{count}{noun}starting with {self.expected!r}"
        if self.kind == "regex":
            assert self.pattern is not None
            return f"{count}{noun}matching regex {self.pattern.pattern!r}"
        return f"{count}{noun}accepted by {self.predicate_name}"

    @property
    def predicate_name(self) -> str:
        fn = self.predicate
        return str(getattr(fn, "__qualname__", None) or repr(fn))

    def label(self, method: str) -> str:
        """The call as written, for messages: ``expect_bytes(b'Hello')``."""
        if self.kind == "exact":
            assert self.expected is not None
            args = describe_bytes(self.expected)
        elif self.kind == "prefix":
            assert self.expected is not None
            args = f"prefix={describe_bytes(self.expected)}"
        elif self.kind == "regex":
            assert self.pattern is not None
            args = f"regex={self.pattern.pattern!r}"
        else:
            args = f"predicate={self.predicate_name}"
        if self.size is not None and self.kind != "exact":
            args += f", size={self.size}"
        return f"{method}({args})"

    def extent(self) -> int | None:
        """Bytes a raw read consumes, or ``None`` for a streaming regex."""
        if self.kind == "exact":
            assert self.expected is not None
            return len(self.expected)
        if self.size is not None:
            return self.size
        if self.kind == "prefix":
            assert self.expected is not None
            return len(self.expected)
        return None

    def stream_match(self, buffer: bytes) -> int | None:
        """Streaming regex: bytes to consume once the pattern matches, else ``None``."""
        assert self.pattern is not None
        m = self.pattern.match(buffer)
        return None if m is None else m.end()

    def accepts(self, data: bytes) -> bool:
        """Whether a whole read (or frame payload) satisfies the matcher."""
        if self.kind == "exact":
            return data == self.expected
        if self.kind == "prefix":
            assert self.expected is not None
            return data.startswith(self.expected)
        if self.kind == "regex":
            assert self.pattern is not None
            return self.pattern.fullmatch(data) is not None
        assert self.predicate is not None
        return bool(self.predicate(data))

    def mismatch(self, data: bytes) -> int | None:
        """Offset of the first wrong byte in ``data`` (exact and prefix only)."""
        if self.kind == "exact":
            assert self.expected is not None
            return first_mismatch(self.expected, data)
        if self.kind == "prefix":
            assert self.expected is not None
            return first_mismatch(self.expected, data[: len(self.expected)])
        return None

    def explain(self, actual: bytes, *, start: int, framed: bool) -> tuple[str, int | None]:
        """Hexdumps of expected and actual bytes and the first mismatch, for ``details``.

        ``start`` is the stream offset of ``actual[0]`` for a raw read, and of the frame's
        first byte for a frame (where the payload sits in it is the codec's business).
        Returns the text and the mismatch offset within ``actual``.
        """
        what = "frame payload" if framed else "read"
        lines = []
        if self.kind in ("exact", "prefix"):
            assert self.expected is not None
            noun = "expected" if self.kind == "exact" else "expected prefix"
            lines.append(f"{noun} ({plural(len(self.expected), 'byte')}):")
            lines.extend("  " + line for line in hexdump(self.expected).splitlines())
        else:
            lines.append(f"expected: {self.describe(framed=framed)}")
        where = f"frame at stream offset {start}" if framed else f"at stream offset {start}"
        lines.append(f"actual {what} ({plural(len(actual), 'byte')}, {where}):")
        lines.extend("  " + line for line in (hexdump(actual) or "(nothing)").splitlines())
        offset = self.mismatch(actual)
        if offset is not None:
            assert self.expected is not None
            want = (
                f"0x{self.expected[offset]:02x}" if offset < len(self.expected) else "end of data"
            )
            got = f"0x{actual[offset]:02x}" if offset < len(actual) else "end of data"
            position = "" if framed else f" (stream offset {start + offset})"
            lines.append(
                f"first mismatching byte: offset {offset} of the {what}{position}: "
                f"expected {want}, got {got}"
            )
        return "\n".join(lines), offset


def make_matcher(
    expected: bytes | bytearray | memoryview | None,
    *,
    prefix: bytes | None,
    regex: bytes | re.Pattern[bytes] | None,
    predicate: Callable[[bytes], bool] | None,
    size: int | None,
    framed: bool,
) -> Matcher:
    """Validate the arguments of ``expect_bytes``/``expect_frame`` and build the matcher.

    Exactly one of ``expected``, ``prefix``, ``regex`` and ``predicate`` must be given.
    ``size`` is only for raw bytes (``expect_frame`` has none: a frame's size is the
    frame's): required with a predicate, optional with a prefix (at least the prefix's
    length) or a regex (the ``size`` bytes must then match as a whole). Wrong arguments raise
    :class:`~wirelab.UsageError` at once, in the test, not later in the server.
    """
    given = [
        name
        for name, value in (
            ("expected", expected),
            ("prefix", prefix),
            ("regex", regex),
            ("predicate", predicate),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise UsageError(
            "give exactly one of the expected bytes, prefix=, regex= or predicate= "
            f"(got {', '.join(given) or 'none'})"
        )
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise UsageError(f"size must be an int >= 0, not {size!r}")
        if expected is not None:
            raise UsageError("size= cannot be combined with exact bytes (their length is it)")
    if expected is not None:
        if not isinstance(expected, bytes | bytearray | memoryview):
            raise UsageError(f"expected bytes, not {type(expected).__name__}")
        return Matcher("exact", expected=bytes(expected))
    if prefix is not None:
        if not isinstance(prefix, bytes | bytearray | memoryview):
            raise UsageError(f"prefix must be bytes, not {type(prefix).__name__}")
        prefix = bytes(prefix)
        if size is not None and size < len(prefix):
            raise UsageError(f"size={size} is shorter than the prefix ({len(prefix)} bytes)")
        return Matcher("prefix", expected=prefix, size=size)
    if regex is not None:
        if isinstance(regex, bytes | bytearray):
            pattern = re.compile(bytes(regex))
        elif isinstance(regex, re.Pattern) and isinstance(regex.pattern, bytes):
            pattern = regex
        else:
            raise UsageError("regex must be a bytes pattern (rb'...' or re.compile(rb'...'))")
        return Matcher("regex", pattern=pattern, size=size)
    assert predicate is not None
    if not callable(predicate):
        raise UsageError(f"predicate must be callable, not {type(predicate).__name__}")
    if size is None and not framed:
        raise UsageError("expect_bytes(predicate=...) needs size= (how many bytes to read)")
    return Matcher("predicate", predicate=predicate, size=size)


def check_codec(codec: object) -> FrameCodec:
    """Return ``codec`` if it implements :class:`FrameCodec`, else raise UsageError."""
    if not isinstance(codec, FrameCodec):
        raise UsageError(
            f"codec must have encode(payload) and next_frame(buffer) methods, not {codec!r}"
        )
    return codec


def split_frame(codec: FrameCodec, buffer: bytes) -> tuple[bytes, int] | None:
    """``codec.next_frame`` with its errors turned into :class:`~wirelab.ProtocolError`."""
    try:
        return codec.next_frame(buffer)
    except ProtocolError:
        raise
    except Exception as exc:  # a third-party codec's own error type
        raise ProtocolError(f"{type(exc).__name__}: {exc}") from exc
