"""Delimiter (line) framing, sans-IO: ``payload | delimiter``, e.g. lines ending in ``\\r\\n``.

:class:`DelimiterCodec` is an immutable description of the format; its
:meth:`~DelimiterCodec.decoder` returns a fresh :class:`DelimiterDecoder` for one byte
stream. Nothing here does I/O.
"""

from __future__ import annotations

from typing import Final, NoReturn

from .._exceptions import ProtocolError, TruncatedError, UsageError

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
        if isinstance(max_frame, bool) or not isinstance(max_frame, int) or max_frame < 0:
            raise UsageError(f"max_frame must be a non-negative integer, got {max_frame!r}")
        self.delimiter: Final = bytes(delimiter)
        self.max_frame: Final = max_frame

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


class DelimiterDecoder:
    """Splits one byte stream at a :class:`DelimiterCodec`'s delimiter.

    Same contract as :class:`~wirelab.framing.LengthPrefixDecoder`: :meth:`feed` (or
    :meth:`append` plus :meth:`next_frame`) returns payloads without the delimiter;
    :meth:`close` raises :class:`TruncatedError` if bytes follow the last delimiter; an
    oversize frame raises :class:`ProtocolError` (``at byte N:`` the frame's stream offset);
    after an error every call raises :class:`ProtocolError`.
    """

    __slots__ = ("_buffer", "_closed", "_codec", "_failure", "_offset", "_pos", "_scan")

    def __init__(self, codec: DelimiterCodec | None = None) -> None:
        self._codec = codec if codec is not None else DelimiterCodec()
        self._buffer = bytearray()
        self._pos = 0  # start of the current frame in _buffer
        self._scan = 0  # where the search for the delimiter resumes
        self._offset = 0  # stream offset of _buffer[_pos]
        self._failure: str | None = None
        self._closed = False

    @property
    def codec(self) -> DelimiterCodec:
        """The format this decoder reads."""
        return self._codec

    @property
    def buffered(self) -> bytes:
        """Bytes received but not yet returned as part of a frame (a partial frame)."""
        return bytes(self._buffer[self._pos :])

    @property
    def bytes_consumed(self) -> int:
        """Stream bytes that belong to frames already returned (delimiters included)."""
        return self._offset

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes without decoding them (see :meth:`next_frame`)."""
        self._check_usable("append()")
        self._buffer += data

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
        consumed = end + len(delimiter) - self._pos
        self._pos += consumed
        self._offset += consumed
        self._scan = self._pos
        if self._pos > 65536 and self._pos * 2 > len(self._buffer):
            del self._buffer[: self._pos]
            self._scan -= self._pos
            self._pos = 0
        return payload

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add received bytes and return the payloads of every frame they complete."""
        self.append(data)
        frames = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames

    def close(self) -> None:
        """Signal the end of the stream; :class:`TruncatedError` if a frame is incomplete."""
        self._check_usable("close()")
        self._closed = True
        left = len(self._buffer) - self._pos
        if left:
            self._fail(
                TruncatedError(
                    f"at byte {self._offset}: stream ended inside a frame ({left} bytes "
                    f"without the delimiter {self._codec.delimiter!r})"
                )
            )

    def _oversize(self) -> NoReturn:
        self._fail(
            ProtocolError(
                f"at byte {self._offset}: frame exceeds max_frame of {self._codec.max_frame} "
                f"bytes without the delimiter {self._codec.delimiter!r}"
            )
        )

    def _check_usable(self, call: str) -> None:
        if self._failure is not None:
            raise ProtocolError(f"decoder already failed: {self._failure}")
        if self._closed:
            raise UsageError(f"{call} called after close()")

    def _fail(self, exc: ProtocolError) -> NoReturn:
        self._failure = str(exc)
        raise exc
