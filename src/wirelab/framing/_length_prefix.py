"""Length-prefix framing, sans-IO: ``length (1, 2, 4 or 8 bytes) | payload``.

:class:`LengthPrefixCodec` is an immutable description of the format (width, byte order,
largest frame). Its :meth:`~LengthPrefixCodec.encode` formats one frame; its
:meth:`~LengthPrefixCodec.decoder` returns a fresh :class:`LengthPrefixDecoder`, the stateful
reader of one byte stream. Nothing here does I/O.
"""

from __future__ import annotations

from typing import Final, Literal

from .._exceptions import ProtocolError, UsageError
from ._frame_decoder import FrameDecoderBase
from ._frames import check_limit

__all__ = ["DEFAULT_MAX_FRAME", "LengthPrefixCodec", "LengthPrefixDecoder"]

DEFAULT_MAX_FRAME: Final = 16 * 1024 * 1024
"""Largest frame accepted when no ``max_frame`` is given (capped by the prefix width)."""

_WIDTHS: Final = (1, 2, 4, 8)


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
        elif check_limit("max_frame", max_frame) > largest:
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


class LengthPrefixDecoder(FrameDecoderBase[LengthPrefixCodec]):
    """Splits one byte stream into the payloads of :class:`LengthPrefixCodec` frames.

    Feed bytes split anywhere with :meth:`feed` (or :meth:`append` plus :meth:`next_frame`
    to take one frame at a time), then call :meth:`close` at the end of the stream. A length
    above ``max_frame`` raises :class:`ProtocolError` as soon as the prefix is complete,
    before any of the payload is buffered; :meth:`close` raises :class:`TruncatedError` if a
    frame was cut short. Messages start with ``at byte N:``, N being the stream offset of the
    frame at fault. After an error every call raises :class:`ProtocolError`.
    """

    __slots__ = ()

    def __init__(self, codec: LengthPrefixCodec | None = None) -> None:
        super().__init__(codec if codec is not None else LengthPrefixCodec())

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
        self._consume(used)
        return payload

    def _truncation_detail(self, left: int) -> str:
        width = self._codec.width
        if left < width:
            return f"{left} of {width} length bytes"
        length = int.from_bytes(self._buffer[self._pos : self._pos + width], self._codec.byteorder)
        return f"{left - width} of {length} payload bytes"
