"""Delimiter (line) framing, sans-IO: ``payload | delimiter``, e.g. lines ending in ``\\r\\n``.

:class:`DelimiterCodec` is an immutable description of the format; its
:meth:`~DelimiterCodec.decoder` returns a fresh :class:`DelimiterDecoder` for one byte
stream. Nothing here does I/O.
"""

from __future__ import annotations

from typing import Final, NoReturn

from .._exceptions import ProtocolError, UsageError
from ._frame_decoder import FrameDecoderBase
from ._frames import check_limit

__all__ = ["DEFAULT_MAX_LINE", "DelimiterCodec", "DelimiterDecoder"]

DEFAULT_MAX_LINE: Final = 65536
"""Largest frame (without its delimiter) accepted when no ``max_frame`` is given."""


class DelimiterCodec:
    """Frames that end with a fixed, non-empty ``delimiter`` (``b"\\n"`` by default).

    Payloads are returned without the delimiter and may not contain it. ``max_frame`` is the
    largest payload in bytes, delimiter excluded (default :data:`DEFAULT_MAX_LINE`); a
    decoder raises :class:`ProtocolError` as soon as the buffered bytes show that the frame
    being received will exceed it, so memory stays bounded. A codec holds no stream state.
    """

    __slots__ = ("delimiter", "max_frame")

    def __init__(self, delimiter: bytes = b"\n", *, max_frame: int = DEFAULT_MAX_LINE) -> None:
        if not isinstance(delimiter, bytes | bytearray) or not delimiter:
            raise UsageError(f"delimiter must be non-empty bytes, got {delimiter!r}")
        self.delimiter: Final = bytes(delimiter)
        self.max_frame: Final = check_limit("max_frame", max_frame)

    def __repr__(self) -> str:
        return f"DelimiterCodec({self.delimiter!r}, max_frame={self.max_frame})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DelimiterCodec):
            return NotImplemented
        return (self.delimiter, self.max_frame) == (other.delimiter, other.max_frame)

    def __hash__(self) -> int:
        return hash((DelimiterCodec, self.delimiter, self.max_frame))

    def encode(self, payload: bytes | bytearray | memoryview) -> bytes:
        """Return *payload* followed by the delimiter.

        :class:`UsageError` if the payload contains the delimiter (the frame would not
        survive a round trip) or exceeds ``max_frame``.
        """
        payload = bytes(payload)
        if len(payload) > self.max_frame:
            raise UsageError(
                f"payload of {len(payload)} bytes exceeds max_frame of {self.max_frame}"
            )
        # Also refuses a payload whose end and the delimiter's start form an early delimiter
        # (payload b"ab" with delimiter b"aba": b"ababa" would decode as b"").
        if (payload + self.delimiter).find(self.delimiter) != len(payload):
            raise UsageError(f"payload contains the delimiter {self.delimiter!r}")
        return payload + self.delimiter

    def next_frame(self, buffer: bytes | bytearray | memoryview) -> tuple[bytes, int] | None:
        """Cut one frame from the start of ``buffer`` (stateless).

        Returns ``(payload, used)``, ``used`` including the delimiter, or None if no
        delimiter has come yet. Raises :class:`ProtocolError` once the frame is known to
        exceed ``max_frame``. Scans ``buffer`` from its start on every call: for a stream,
        a :meth:`decoder` is faster.
        """
        data = bytes(buffer)
        end = data.find(self.delimiter)
        if end < 0:
            if len(data) - len(self.delimiter) + 1 > self.max_frame:
                raise ProtocolError(
                    f"frame exceeds max_frame of {self.max_frame} bytes without the "
                    f"delimiter {self.delimiter!r}"
                )
            return None
        if end > self.max_frame:
            raise ProtocolError(f"frame of {end} bytes exceeds max_frame of {self.max_frame}")
        return data[:end], end + len(self.delimiter)

    def decoder(self) -> DelimiterDecoder:
        """Return a new decoder for one byte stream in this format."""
        return DelimiterDecoder(self)


class DelimiterDecoder(FrameDecoderBase[DelimiterCodec]):
    """Splits one byte stream at a :class:`DelimiterCodec`'s delimiter.

    Same contract as :class:`~wirelab.framing.LengthPrefixDecoder`: :meth:`feed` (or
    :meth:`append` plus :meth:`next_frame`) returns payloads without the delimiter;
    :meth:`close` raises :class:`TruncatedError` if bytes follow the last delimiter; an
    oversize frame raises :class:`ProtocolError` (``at byte N:`` the frame's stream offset);
    after an error every call raises :class:`ProtocolError`.
    """

    __slots__ = ("_scan",)

    def __init__(self, codec: DelimiterCodec | None = None) -> None:
        super().__init__(codec if codec is not None else DelimiterCodec())
        self._scan = 0  # where the search for the delimiter resumes

    def next_frame(self) -> bytes | None:
        """Return the next complete payload, or None if more bytes are needed."""
        self._check_usable("next_frame()")
        delimiter = self._codec.delimiter
        limit = self._codec.max_frame
        end = self._buffer.find(delimiter, self._scan)
        if end < 0:
            # Up to len(delimiter) - 1 trailing bytes may be the start of a delimiter.
            self._scan = max(self._pos, len(self._buffer) - len(delimiter) + 1)
            if self._scan - self._pos > limit:
                self._oversize()
            return None
        if end - self._pos > limit:
            self._oversize()
        payload = bytes(self._buffer[self._pos : end])
        self._consume(end + len(delimiter) - self._pos)
        self._scan = self._pos
        return payload

    def _truncation_detail(self, left: int) -> str:
        return f"{left} bytes without the delimiter {self._codec.delimiter!r}"

    def _oversize(self) -> NoReturn:
        self._fail(
            ProtocolError(
                f"at byte {self._offset}: frame exceeds max_frame of {self._codec.max_frame} "
                f"bytes without the delimiter {self._codec.delimiter!r}"
            )
        )
