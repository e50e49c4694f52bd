"""The frame codec contract shared by the framing codecs and the test doubles."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["FrameCodec"]


@runtime_checkable
class FrameCodec(Protocol):
    """A framing format: :class:`~wirelab.framing.LengthPrefixCodec`,
    :class:`~wirelab.framing.DelimiterCodec`, or anything with these two methods.

    ``encode(payload)`` returns the bytes of one frame. ``next_frame(buffer)`` looks at
    received bytes that start at a frame boundary: it returns ``(payload, used)`` when a
    whole frame is there (``used`` is its size on the wire, header or delimiter included),
    ``None`` when more bytes are needed, and raises :class:`~wirelab.ProtocolError` when
    the bytes can never be a valid frame.
    """

    def encode(self, payload: bytes) -> bytes: ...

    def next_frame(self, buffer: bytes) -> tuple[bytes, int] | None: ...
