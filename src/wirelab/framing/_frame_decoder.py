"""What the sans-IO frame decoders share: the buffer, the stream offset and the error state.

:class:`~wirelab.framing.LengthPrefixDecoder` and :class:`~wirelab.framing.DelimiterDecoder`
differ only in how they find the end of a frame (:meth:`FrameDecoderBase.next_frame`) and in
how they describe a frame cut short (:meth:`FrameDecoderBase._truncation_detail`).
"""

from __future__ import annotations

from typing import Generic, NoReturn, TypeVar

from .._exceptions import ProtocolError, TruncatedError, UsageError

__all__ = ["FrameDecoderBase"]

_C = TypeVar("_C")

_COMPACT_AFTER = 65536
"""Consumed bytes are dropped from the buffer once there are more than this many and they
make up more than half of it."""


class FrameDecoderBase(Generic[_C]):
    """Reads one byte stream in the format of a codec of type ``_C``.

    Subclasses implement :meth:`next_frame` (calling :meth:`_consume` for each frame they
    return) and :meth:`_truncation_detail`.
    """

    __slots__ = ("_buffer", "_closed", "_codec", "_failure", "_offset", "_pos")

    def __init__(self, codec: _C) -> None:
        self._codec = codec
        self._buffer = bytearray()
        self._pos = 0  # start of the current frame (the unconsumed bytes) in _buffer
        self._offset = 0  # stream offset of _buffer[_pos]
        self._failure: str | None = None
        self._closed = False

    @property
    def codec(self) -> _C:
        """The format this decoder reads."""
        return self._codec

    @property
    def buffered(self) -> bytes:
        """Bytes received but not yet returned as part of a frame (a partial frame)."""
        return bytes(self._buffer[self._pos :])

    @property
    def bytes_consumed(self) -> int:
        """Stream bytes that belong to frames already returned (framing bytes included)."""
        return self._offset

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes without decoding them (see :meth:`next_frame`)."""
        self._check_usable("append()")
        self._buffer += data

    def next_frame(self) -> bytes | None:
        """Return the next complete payload, or None if more bytes are needed."""
        raise NotImplementedError

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
            detail = self._truncation_detail(left)
            self._fail(
                TruncatedError(f"at byte {self._offset}: stream ended inside a frame ({detail})")
            )

    def _truncation_detail(self, left: int) -> str:
        """What the ``left`` buffered bytes of an unfinished frame amount to."""
        raise NotImplementedError

    def _consume(self, used: int) -> None:
        """Mark the ``used`` bytes at the front as returned; compact the buffer now and then."""
        self._pos += used
        self._offset += used
        if self._pos > _COMPACT_AFTER and self._pos * 2 > len(self._buffer):
            del self._buffer[: self._pos]
            self._pos = 0

    def _check_usable(self, call: str) -> None:
        if self._failure is not None:
            raise ProtocolError(f"decoder already failed: {self._failure}")
        if self._closed:
            raise UsageError(f"{call} called after close()")

    def _fail(self, exc: ProtocolError) -> NoReturn:
        self._failure = str(exc)
        raise exc
