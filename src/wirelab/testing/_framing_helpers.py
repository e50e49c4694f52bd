"""pytest-tcpclient's framing helpers, for tests that import them: a frame is a 4-byte
big-endian length followed by that many bytes (what ``send_frame``/``expect_frame`` use by
default)."""

from __future__ import annotations

import asyncio
import struct

__all__ = ["read_frame", "write_frame"]

_HEADER = struct.Struct(">I")


def write_frame(writer: asyncio.StreamWriter, payload: bytes) -> None:
    """Write one frame (not drained: ``await writer.drain()`` as for any write)."""
    writer.write(_HEADER.pack(len(payload)) + payload)


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """Read one frame and return its payload; ``b""`` if the stream ended cleanly before
    a frame began. A stream that ends inside a frame raises
    :class:`asyncio.IncompleteReadError`."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return b""
    (size,) = _HEADER.unpack(header)
    return await reader.readexactly(size)
