"""Pure HTTP helpers of the relay: file-name sanitizing, ``Content-Disposition``, ``Range``.

No I/O here; everything is a function of its arguments (unit-tested in isolation).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

from .._filenames import FALLBACK_NAME, FILENAME_MAX_BYTES, sanitize_filename
from .._validate import InvalidField, parse_int

__all__ = [
    "FALLBACK_NAME",
    "FILENAME_MAX_BYTES",
    "ByteRange",
    "RangeNotSatisfiable",
    "content_disposition",
    "parse_range",
    "range_answer",
    "sanitize_filename",
]


def _ascii_fallback(name: str) -> str:
    """An ASCII approximation of ``name`` for the plain ``filename=`` parameter."""
    decomposed = unicodedata.normalize("NFKD", name)
    ascii_only = "".join(
        c if 0x20 <= ord(c) < 0x7F and c not in '"\\%' else "_"
        for c in decomposed
        if not unicodedata.combining(c)
    )
    return ascii_only.strip() or FALLBACK_NAME


def content_disposition(name: str, disposition: str = "attachment") -> str:
    """The ``Content-Disposition`` value for ``name`` (RFC 6266, RFC 8187 ``filename*``).

    ``filename=`` carries a quoted ASCII fallback for old clients; ``filename*=`` carries
    the exact UTF-8 name, percent-encoded.
    """
    return (
        f'{disposition}; filename="{_ascii_fallback(name)}"; '
        f"filename*=UTF-8''{quote(name, safe='')}"
    )


@dataclass(frozen=True, slots=True)
class ByteRange:
    """The bytes ``[start, end)`` of a representation of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def content_range(self) -> str:
        """The ``Content-Range`` value of a 206 response (inclusive last byte)."""
        return f"bytes {self.start}-{self.end - 1}/{self.size}"


class RangeNotSatisfiable(Exception):
    """The ``Range`` header selects no byte of the representation (416); ``reason`` says
    why, for the JSON body of the answer."""

    def __init__(self, size: int, reason: str | None = None) -> None:
        self.size = size
        self.reason = reason or f"the range selects no byte of the {size} bytes"
        super().__init__(f"Range: {self.reason}")

    @property
    def content_range(self) -> str:
        """The ``Content-Range`` value of the 416 response."""
        return f"bytes */{self.size}"


# ASCII digits only: ``\d`` would also match other scripts' digits.
_RANGE_RE = re.compile(r"bytes=([0-9]*)-([0-9]*)")


def _position(digits: str, size: int) -> int:
    """A byte position or suffix length of a ``Range`` header (strict 64-bit integer)."""
    try:
        return parse_int(digits, ("header", "Range"))
    except InvalidField as exc:
        raise RangeNotSatisfiable(size, f"byte positions {exc.message}") from None


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """Resolve a ``Range`` header against a representation of ``size`` bytes (RFC 9110).

    Returns ``None`` when the whole representation should be sent: no header, a header
    that is not a single ``bytes`` range (syntax errors and multiple ranges are ignored, as
    RFC 9110 allows). Raises :class:`RangeNotSatisfiable` when the range starts at or past
    the end, or is a zero-length suffix (``bytes=-0``), or the representation is empty,
    or a number is past 64 bits (no representation is that large; refused before any
    conversion, so a 5,000-digit position costs nothing).
    ``bytes=A-B`` is clamped to the end; ``bytes=-N`` is the last ``N`` bytes.
    """
    if header is None:
        return None
    match = _RANGE_RE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = _position(last, size)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(max(0, size - suffix), size, size)
    start = _position(first, size)
    stop = _position(last, size) if last else None
    if stop is not None and stop < start:
        return None  # invalid: ignore the header
    if start >= size:
        raise RangeNotSatisfiable(size)
    end = size if stop is None else min(stop + 1, size)
    return ByteRange(start, end, size)


def range_answer(
    range_header: str | None, if_range: str | None, size: int, etag: str
) -> tuple[int, ByteRange | None, dict[str, str]]:
    """How to answer a download of ``size`` bytes whose ``ETag`` is ``etag``: the status
    (200, 206 or 416), the selected range (206 only) and the ``Content-Range`` /
    ``Content-Length`` headers. An ``If-Range`` other than ``etag`` means the whole file."""
    headers: dict[str, str] = {}
    try:
        selected = None
        if if_range is None or if_range.strip() == etag:
            selected = parse_range(range_header, size)
    except RangeNotSatisfiable as exc:
        headers["Content-Range"] = exc.content_range
        headers["Content-Length"] = "0"
        return 416, None, headers
    if selected is None:
        headers["Content-Length"] = str(size)
        return 200, None, headers
    headers["Content-Range"] = selected.content_range
    headers["Content-Length"] = str(selected.length)
    return 206, selected, headers
