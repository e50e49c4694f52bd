"""Frame-level constants and encoders of the wirelab stream format (no grammar, no state).

A frame is ``type (1 byte) | length (4 bytes, unsigned big-endian) | payload``; see
``docs/protocol/stream.md``. These helpers only format bytes: they check that the type fits
in a byte and the length in four, but not the grammar, which is :class:`StreamEncoder`'s job.
"""

from __future__ import annotations

import enum
import json
import struct
from collections.abc import Mapping
from typing import Any, Final

from .._exceptions import UsageError

__all__ = [
    "HEADER",
    "HEADER_SIZE",
    "MAX_DATA_PAYLOAD",
    "MAX_FRAME_LENGTH",
    "MAX_JSON_PAYLOAD",
    "PREAMBLE",
    "FrameType",
    "check_limit",
    "encode_frame",
    "encode_frame_header",
    "encode_json_frame",
    "frame_name",
    "is_ancillary",
]

PREAMBLE: Final = b"\x89WLS\r\n\x1a\n"
"""The 8 bytes every stream starts with (built like PNG's signature)."""

MAX_JSON_PAYLOAD: Final = 65536
"""Largest payload of a JSON frame (``S``, ``F``, ``E``, ``Z``, ``X``), in bytes."""

MAX_DATA_PAYLOAD: Final = 1048576
"""Largest payload of a ``D`` frame, in bytes."""

MAX_FRAME_LENGTH: Final = 0xFFFFFFFF
"""Largest length the 4-byte length field can carry."""

HEADER: Final = struct.Struct(">BI")
"""Type byte and big-endian unsigned 32-bit length; precompiled because it is on the hot path."""

HEADER_SIZE: Final = HEADER.size


class FrameType(enum.IntEnum):
    """The frame types of version 1; the value is the type byte (an ASCII letter)."""

    STREAM = 0x53  # 'S'
    FILE = 0x46  # 'F'
    DATA = 0x44  # 'D'
    END_FILE = 0x45  # 'E'
    END = 0x5A  # 'Z'
    ABORT = 0x58  # 'X'


def check_limit(name: str, value: object) -> int:
    """Return *value* if it is a non-negative ``int`` (not a bool), else raise
    :class:`UsageError` naming the argument *name* (for payload and frame size limits)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def is_ancillary(frame_type: int) -> bool:
    """Whether *frame_type* marks an ancillary frame (``a``-``z``), which decoders may skip."""
    return 0x61 <= frame_type <= 0x7A


def frame_name(frame_type: int) -> str:
    """A short human-readable name of a type byte for error messages, e.g. ``F`` or ``0x00``."""
    if 0x21 <= frame_type <= 0x7E:
        return chr(frame_type)
    return f"0x{frame_type:02x}"


def encode_frame_header(frame_type: int, length: int) -> bytes:
    """Return the 5-byte header of a frame of *frame_type* carrying *length* payload bytes.

    Lets a sender write a large payload without copying it into a new ``bytes`` object.
    Raises :class:`UsageError` if *frame_type* is not in 0..255 or *length* not in
    0..2**32-1. Type-specific limits (:data:`MAX_DATA_PAYLOAD`...) are not checked here.
    """
    if not 0 <= frame_type <= 0xFF:
        raise UsageError(f"frame type must be in 0..255, got {frame_type}")
    if not 0 <= length <= MAX_FRAME_LENGTH:
        raise UsageError(f"frame length must be in 0..{MAX_FRAME_LENGTH}, got {length}")
    return HEADER.pack(frame_type, length)


def encode_frame(frame_type: int, payload: bytes) -> bytes:
    """Return a whole frame: the 5-byte header followed by *payload*.

    Formats any type byte, including ancillary and unknown ones (useful in tests); see
    :func:`encode_frame_header` for what is checked.
    """
    return encode_frame_header(frame_type, len(payload)) + payload


def encode_json_frame(frame_type: int, obj: Mapping[str, Any]) -> bytes:
    """Return a frame whose payload is *obj* as compact UTF-8 JSON.

    The encoding is deterministic: ``separators=(",", ":")``, ``ensure_ascii=False``, members
    in the mapping's order. Raises :class:`UsageError` if *obj* is not JSON-serialisable
    (including NaN and infinities, which JSON cannot carry, and lone surrogates, which UTF-8
    cannot) or if the payload would exceed :data:`MAX_JSON_PAYLOAD`.
    """
    try:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        payload = text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        # UnicodeEncodeError is a ValueError; RecursionError comes from deep nesting.
        raise UsageError(
            f"{frame_name(frame_type)} frame payload is not valid JSON: {exc}"
        ) from exc
    if len(payload) > MAX_JSON_PAYLOAD:
        raise UsageError(
            f"{frame_name(frame_type)} frame payload of {len(payload)} bytes exceeds "
            f"the limit of {MAX_JSON_PAYLOAD}"
        )
    return encode_frame_header(frame_type, len(payload)) + payload
