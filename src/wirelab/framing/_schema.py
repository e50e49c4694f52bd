"""The JSON payloads of the stream format: decoding and member validation.

Shared by the decoder (which reports a violation as a protocol error with the stream offset)
and the encoder (which reports it as a usage error), so that the encoder can never produce a
payload the decoder rejects. Messages here carry the frame type but no offset; callers add
the context they know.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final, NoReturn

from .._exceptions import ProtocolError
from ._events import FileEnded, FileStarted, StreamAborted, StreamEnded, StreamStarted

__all__ = [
    "BYTEORDERS",
    "DTYPE_WIDTHS",
    "STREAM_VERSION",
    "SUPPORTED_VERSIONS",
    "decode_json_object",
    "parse_file_end",
    "parse_file_header",
    "parse_stream_abort",
    "parse_stream_end",
    "parse_stream_header",
]

from ._digests import DIGEST_ALGORITHMS

#: The version wirelab writes; decoders read every version in SUPPORTED_VERSIONS.
STREAM_VERSION: Final = 3
SUPPORTED_VERSIONS: Final = (1, 2, 3)
DTYPE_WIDTHS: Final[Mapping[str, int]] = {"int8": 1, "int16": 2, "int32": 4, "float32": 4}
BYTEORDERS: Final = ("little", "big")

# Both algorithms give 32-byte digests.
_DIGEST_HEX: Final = re.compile(r"[0-9a-f]{64}")
# Characters that would let a file name escape the directory a client writes into.
_UNSAFE_NAME_CHARS: Final = ("/", "\\", "\x00")
_SHOWN_VALUE_CHARS: Final = 40
_JSON_KINDS: Final[Mapping[type, str]] = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _show(value: object) -> str:
    """A short rendering of an offending value (members can be long strings)."""
    text = repr(value)
    if len(text) > _SHOWN_VALUE_CHARS:
        text = text[: _SHOWN_VALUE_CHARS - 1] + "…"
    return text


def _reject_constant(name: str) -> NoReturn:
    # Python's json accepts NaN, Infinity and -Infinity; RFC 8259 does not.
    raise ValueError(f"{name} is not valid JSON")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 8259 leaves duplicate names undefined; refusing them avoids two readers
    # of the same stream disagreeing about its content.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate member {key!r}")
            seen.add(key)
    return obj


def decode_json_object(payload: bytes | bytearray | memoryview, frame: str) -> dict[str, Any]:
    """Decode the payload of a JSON frame; raise :class:`ProtocolError` unless it is an object.

    The payload must be UTF-8 without a byte order mark, and strict RFC 8259 JSON: no NaN or
    infinities, no duplicate member names (at any depth).
    """
    try:
        text = str(payload, "utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            f"{frame} frame: payload is not valid UTF-8 ({exc.reason} at payload byte {exc.start})"
        ) from None
    try:
        obj = json.loads(text, object_pairs_hook=_unique_members, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        # JSONDecodeError is a ValueError, as are the errors of the two hooks above.
        detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ProtocolError(f"{frame} frame: payload is not valid JSON ({detail})") from None
    if not isinstance(obj, dict):
        kind = _JSON_KINDS.get(type(obj), "value")
        raise ProtocolError(f"{frame} frame: payload is a JSON {kind}, not an object")
    return obj


def _member(obj: Mapping[str, Any], frame: str, key: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise ProtocolError(f"{frame} frame: missing member {key!r}") from None


def _ill_typed(frame: str, key: str, wanted: str, value: object) -> ProtocolError:
    return ProtocolError(f"{frame} frame: member {key!r} must be {wanted}, got {_show(value)}")


def _count(obj: Mapping[str, Any], frame: str, key: str) -> int:
    """A non-negative integer member. ``true``/``false`` are not integers, even in Python."""
    value = _member(obj, frame, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _ill_typed(frame, key, "a non-negative integer", value)
    return value


def _string(obj: Mapping[str, Any], frame: str, key: str) -> str:
    value = _member(obj, frame, key)
    if not isinstance(value, str):
        raise _ill_typed(frame, key, "a string", value)
    return value


def _choice(obj: Mapping[str, Any], frame: str, key: str, choices: tuple[str, ...]) -> str:
    value = _member(obj, frame, key)
    if value not in choices:
        raise _ill_typed(frame, key, "one of " + ", ".join(choices), value)
    return str(value)


def _seconds(obj: Mapping[str, Any], frame: str, key: str) -> float:
    """A finite, non-negative number (JSON integers are accepted and converted)."""
    value = _member(obj, frame, key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _ill_typed(frame, key, "a non-negative number", value)
    # A huge literal such as 1e999 parses to inf; the float() of a huge int overflows.
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not (math.isfinite(seconds) and seconds >= 0):
        raise _ill_typed(frame, key, "a non-negative number", value)
    return seconds


def _file_name(obj: Mapping[str, Any], frame: str) -> str:
    name = _string(obj, frame, "name")
    if name in ("", ".", "..") or any(char in name for char in _UNSAFE_NAME_CHARS):
        raise _ill_typed(frame, "name", "a plain file name (no '/', '\\' or NUL)", name)
    return name


def parse_stream_header(obj: Mapping[str, Any]) -> StreamStarted:
    """Validate an ``S`` payload; refuse a version not in :data:`SUPPORTED_VERSIONS`.

    Versions 2 and 3 name their digest algorithm (``digest``); version 1 always used
    SHA-256. Version 3 differs from 2 only in how the plan is drawn from the seed."""
    version = _count(obj, "S", "version")
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolError(
            f"S frame: unsupported stream version {version} (this decoder reads versions "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))})"
        )
    digest = _choice(obj, "S", "digest", DIGEST_ALGORITHMS) if version >= 2 else "sha256"
    seed = _count(obj, "S", "seed")
    count = _count(obj, "S", "count")
    params = _member(obj, "S", "params")
    if not isinstance(params, Mapping):
        raise _ill_typed("S", "params", "an object", params)
    return StreamStarted(
        version=version, seed=seed, count=count, params=dict(params), digest=digest
    )


def parse_file_header(obj: Mapping[str, Any]) -> FileStarted:
    """Validate an ``F`` payload, including that ``size`` is a multiple of the sample width."""
    index = _count(obj, "F", "index")
    name = _file_name(obj, "F")
    size = _count(obj, "F", "size")
    dtype = _choice(obj, "F", "dtype", tuple(DTYPE_WIDTHS))
    byteorder = _choice(obj, "F", "byteorder", BYTEORDERS)
    offset = _seconds(obj, "F", "offset")
    width = DTYPE_WIDTHS[dtype]
    if size % width:
        raise _ill_typed("F", "size", f"a multiple of {width} for {dtype}", size)
    return FileStarted(
        index=index, name=name, size=size, dtype=dtype, byteorder=byteorder, offset=offset
    )


def parse_file_end(obj: Mapping[str, Any], algorithm: str = "sha256") -> FileEnded:
    """Validate an ``E`` payload: an index and, in the member named after the stream's
    digest *algorithm*, a lowercase hex digest (64 digits)."""
    index = _count(obj, "E", "index")
    digest = _string(obj, "E", algorithm)
    if not _DIGEST_HEX.fullmatch(digest):
        raise _ill_typed("E", algorithm, "64 lowercase hex digits", digest)
    return FileEnded(index=index, digest=digest, algorithm=algorithm)


def parse_stream_end(obj: Mapping[str, Any]) -> StreamEnded:
    """Validate a ``Z`` payload (the figures are checked against the stream by the caller)."""
    return StreamEnded(count=_count(obj, "Z", "count"), total_bytes=_count(obj, "Z", "bytes"))


def parse_stream_abort(obj: Mapping[str, Any]) -> StreamAborted:
    """Validate an ``X`` payload: two strings, ``error`` and ``message``."""
    return StreamAborted(error=_string(obj, "X", "error"), message=_string(obj, "X", "message"))
