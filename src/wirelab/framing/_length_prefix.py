"""Length-prefix framing, sans-IO: ``length (1, 2, 4 or 8 bytes) | payload``.

:class:`LengthPrefixCodec` is an immutable description of the format (width, byte order,
largest frame). Its :meth:`~LengthPrefixCodec.encode` formats one frame; its
:meth:`~LengthPrefixCodec.decoder` returns a fresh :class:`LengthPrefixDecoder`, the stateful
reader of one byte stream. Nothing here does I/O.
"""

from __future__ import annotations

from typing import Final, Literal, NoReturn

from .._exceptions import ProtocolError, TruncatedError, UsageError

__all__ = ["DEFAULT_MAX_FRAME", "LengthPrefixCodec", "LengthPrefixDecoder"]

DEFAULT_MAX_FRAME: Final = 16 * 1024 * 1024
"""Largest frame accepted when no ``max_frame`` is given (capped by the prefix width)."""

_WIDTHS: Final = (1, 2, 4, 8)


def _check_limit(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{name} must be a non-negative integer, got {value!r}")
    return value


class LengthPrefixCodec:
    """Frames carried as an unsigned length of ``width`` bytes followed by that many bytes.

    ``width`` is 1, 2, 4 or 8 and ``byteorder`` ``"big"`` (network order, the default) or
    ``"little"``. The length counts the payload only, not the prefix. ``max_frame`` is the
    largest payload in bytes, both for :meth:`encode` and for decoders; it defaults to
    :data:`DEFAULT_MAX_FRAME` or to the largest length the width can express, whichever is
    smaller, and may not exceed the latter. A codec holds no stream state: one codec can be
    shared by any number of connections.
    """

    __slots__ = ("_max_frame", "byteorder", "width")

    def __init__(
        self,
        width: Literal[1, 2, 4, 8] = 4,
        byteorder: Literal["big", "little"] = "big",
        *,
        max_frame: int | None = None,
    ) -> None:
        if width not in _WIDTHS or isinstance(width, bool):
            raise UsageError(f"width must be one of 1, 2, 4 or 8, got {width!r}")
        if byteorder not in ("big", "little"):
            raise UsageError(f"byteorder must be 'big' or 'little', got {byteorder!r}")
        largest = (1 << (8 * width)) - 1
        if max_frame is None:
            max_frame = min(DEFAULT_MAX_FRAME, largest)
        elif _check_limit("max_frame", max_frame) > largest:
            raise UsageError(
                f"max_frame {max_frame} does not fit a {width}-byte length (at most {largest})"
            )
        self.width: Final = width
        self.byteorder: Final = byteorder
        self._max_frame = max_frame

    @property
    def max_frame(self) -> int:
        """Largest payload, in bytes, that this codec encodes or decodes."""
        return self._max_frame

    def __repr__(self) -> str:
        return (
            f"LengthPrefixCodec(width={self.width}, byteorder={self.byteorder!r}, "
            f"max_frame={self._max_frame})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LengthPrefixCodec):
            return NotImplemented
        return (self.width, self.byteorder, self._max_frame) == (
            other.width,
            other.byteorder,
            other._max_frame,
        )

    def __hash__(self) -> int:
        return hash((LengthPrefixCodec, self.width, self.byteorder, self._max_frame))

    def encode(self, payload: bytes | bytearray | memoryview) -> bytes:
        """Return one frame carrying *payload*; :class:`UsageError` if it exceeds ``max_frame``."""
        payload = bytes(payload)
        if len(payload) > self._max_frame:
            raise UsageError(
                f"payload of {len(payload)} bytes exceeds max_frame of {self._max_frame}"
            )
        return len(payload).to_bytes(self.width, self.byteorder) + payload

    def next_frame(self, buffer: bytes | bytearray | memoryview) -> tuple[bytes, int] | None:
        """Cut one frame from the start of ``buffer`` (stateless).

        Returns ``(payload, used)``, ``used`` being the frame's size on the wire, or None if
        ``buffer`` holds only part of a frame. Raises :class:`ProtocolError` as soon as the
        length prefix exceeds ``max_frame``.
        """
        width = self.width
        if len(buffer) < width:
            return None
        length = int.from_bytes(buffer[:width], self.byteorder)
        if length > self._max_frame:
            raise ProtocolError(f"frame length {length} exceeds max_frame of {self._max_frame}")
        if len(buffer) < width + length:
            return None
        return bytes(buffer[width : width + length]), width + length

    def decoder(self) -> LengthPrefixDecoder:
        """Return a new decoder for one byte stream in this format."""
        return LengthPrefixDecoder(self)


class LengthPrefixDecoder:
    """Splits one byte stream into the payloads of :class:`LengthPrefixCodec` frames.

    Feed bytes split anywhere with :meth:`feed` (or :meth:`append` plus :meth:`next_frame`
    to take one frame at a time), then call :meth:`close` at the end of the stream. A length
    above ``max_frame`` raises :class:`ProtocolError` as soon as the prefix is complete,
    before any of the payload is buffered; :meth:`close` raises :class:`TruncatedError` if a
    frame was cut short. Messages start with ``at byte N:``, N being the stream offset of the
    frame at fault. After an error every call raises :class:`ProtocolError`.
    """

    __slots__ = ("_buffer", "_closed", "_codec", "_failure", "_offset", "_pos")

    def __init__(self, codec: LengthPrefixCodec | None = None) -> None:
        self._codec = codec if codec is not None else LengthPrefixCodec()
        self._buffer = bytearray()
        self._pos = 0  # start of the unconsumed bytes in _buffer
        self._offset = 0  # stream offset of _buffer[_pos]
        self._failure: str | None = None
        self._closed = False

    @property
    def codec(self) -> LengthPrefixCodec:
        """The format this decoder reads."""
        return self._codec

    @property
    def buffered(self) -> bytes:
        """Bytes received but not yet returned as part of a frame (a partial frame)."""
        return bytes(self._buffer[self._pos :])

    @property
    def bytes_consumed(self) -> int:
        """Stream bytes that belong to frames already returned."""
        return self._offset

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes without decoding them (see :meth:`next_frame`)."""
        self._check_usable("append()")
        self._buffer += data

    def next_frame(self) -> bytes | None:
        """Return the next complete payload, or None if more bytes are needed."""
        self._check_usable("next_frame()")
        view = memoryview(self._buffer)[self._pos :]  # no copy of what is buffered
        try:
            found = self._codec.next_frame(view)
        except ProtocolError as exc:
            self._fail(ProtocolError(f"at byte {self._offset}: {exc}"))
        finally:
            view.release()  # so that the buffer can be compacted
        if found is None:
            return None
        payload, used = found
        self._pos += used
        self._offset += used
        if self._pos > 65536 and self._pos * 2 > len(self._buffer):
            del self._buffer[: self._pos]
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
            width = self._codec.width
            if left < width:
                detail = f"{left} of {width} length bytes"
            else:
                length = int.from_bytes(
                    self._buffer[self._pos : self._pos + width], self._codec.byteorder
                )
                detail = f"{left - width} of {length} payload bytes"
            self._fail(
                TruncatedError(f"at byte {self._offset}: stream ended inside a frame ({detail})")
            )

    def _check_usable(self, call: str) -> None:
        if self._failure is not None:
            raise ProtocolError(f"decoder already failed: {self._failure}")
        if self._closed:
            raise UsageError(f"{call} called after close()")

    def _fail(self, exc: ProtocolError) -> NoReturn:
        self._failure = str(exc)
        raise exc
