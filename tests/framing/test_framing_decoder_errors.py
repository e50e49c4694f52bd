"""StreamDecoder: every error the format document lists, its class, message and offset.

Each malformed body is decoded twice, in one piece and one byte at a time: the error must be
the same (class and whole message) whatever the split.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from wirelab import IntegrityError, ProtocolError, TruncatedError, UsageError
from wirelab.framing import (
    MAX_DATA_PAYLOAD,
    PREAMBLE,
    FileEnded,
    FrameType,
    StreamDecoder,
    encode_frame,
    encode_frame_header,
)

DATA = b"\x00\x01\x02\x03"
SHA = hashlib.sha256(DATA).hexdigest()
S_OBJ = {"version": 1, "seed": 7, "count": 1, "params": {"speed": 1.0}}
F_OBJ = {
    "index": 0,
    "name": "000000.int16",
    "size": 4,
    "dtype": "int16",
    "byteorder": "little",
    "offset": 0.5,
}
E_OBJ = {"index": 0, "sha256": SHA}
Z_OBJ = {"count": 1, "bytes": 4}
X_OBJ = {"error": "shutdown", "message": "bye"}
OBJECTS: dict[str, dict[str, Any]] = {"S": S_OBJ, "F": F_OBJ, "E": E_OBJ, "Z": Z_OBJ, "X": X_OBJ}


def frame(kind: str, drop: tuple[str, ...] = (), **changes: Any) -> bytes:
    """A JSON frame of type *kind* built from the valid object, minus *drop*, plus *changes*."""
    obj = {key: value for key, value in OBJECTS[kind].items() if key not in drop}
    obj.update(changes)
    return encode_frame(ord(kind), json.dumps(obj).encode())


def data(chunk: bytes = DATA) -> bytes:
    return encode_frame(FrameType.DATA, chunk)


def raw(kind: str, payload: bytes) -> bytes:
    return encode_frame(ord(kind), payload)


# Prefixes of the valid one-file stream P S F D E Z, by what comes next.
BEFORE_S = [PREAMBLE]
BETWEEN = [PREAMBLE, frame("S")]
IN_FILE = [*BETWEEN, frame("F")]
AT_E = [*IN_FILE, data()]
AT_Z = [*AT_E, frame("E")]
COMPLETE = [*AT_Z, frame("Z")]
SECOND_FILE = [PREAMBLE, frame("S", count=2), frame("F"), data(), frame("E")]


@dataclass
class Case:
    before: list[bytes]  # valid frames; the error is at the offset where they end
    bad: bytes
    error: type[ProtocolError]
    fragment: str
    after: list[bytes] = field(default_factory=list)


def feed_all(decoder: StreamDecoder, pieces: list[bytes]) -> None:
    for piece in pieces:
        decoder.feed(piece)
    decoder.close()


def decode_error(body: bytes, step: int | None, **kwargs: Any) -> ProtocolError:
    """The error of decoding *body* in one piece (*step* None) or in pieces of *step* bytes."""
    pieces = [body] if step is None else [body[i : i + step] for i in range(0, len(body), step)]
    with pytest.raises(ProtocolError) as info:
        feed_all(StreamDecoder(**kwargs), pieces)
    return info.value


def check(case: Case, **kwargs: Any) -> str:
    body = b"".join([*case.before, case.bad, *case.after])
    whole = decode_error(body, None, **kwargs)
    bytewise = decode_error(body, 1, **kwargs)
    assert type(whole) is case.error
    assert (type(bytewise), str(bytewise)) == (type(whole), str(whole))
    message = str(whole)
    assert message.startswith(f"at byte {len(b''.join(case.before))}: ")
    assert case.fragment in message
    assert "\n" not in message
    return message


PROTOCOL_CASES = {
    # unknown types
    "unknown type Q": Case(BETWEEN, raw("Q", b"{}"), ProtocolError, "unknown frame type Q"),
    "unknown type 0x00": Case(BETWEEN, b"\x00" * 5, ProtocolError, "unknown frame type 0x00"),
    "unknown type in a file": Case(
        IN_FILE, encode_frame(0xFF, b""), ProtocolError, "unknown frame type 0xff"
    ),
    # oversize frames: the header alone must be enough (no payload follows)
    "oversize S": Case(
        BEFORE_S,
        encode_frame_header(FrameType.STREAM, 65537),
        ProtocolError,
        "S frame of 65537 bytes exceeds the limit of 65536",
    ),
    "oversize Z": Case(
        AT_Z, encode_frame_header(FrameType.END, 2**32 - 1), ProtocolError, "exceeds the limit"
    ),
    "oversize D": Case(
        IN_FILE,
        encode_frame_header(FrameType.DATA, MAX_DATA_PAYLOAD + 1),
        ProtocolError,
        "D frame of 1048577 bytes exceeds the limit of 1048576",
    ),
    # payloads that are not JSON objects
    "array": Case(BEFORE_S, raw("S", b"[]"), ProtocolError, "S frame: payload is a JSON array"),
    "string": Case(BEFORE_S, raw("S", b'"x"'), ProtocolError, "payload is a JSON string"),
    "empty payload": Case(BEFORE_S, raw("S", b""), ProtocolError, "S frame: payload is not valid"),
    "broken JSON": Case(BETWEEN, raw("F", b'{"index":'), ProtocolError, "F frame: payload is not"),
    "invalid UTF-8": Case(
        BETWEEN, raw("F", b'{"name":"\xff"}'), ProtocolError, "F frame: payload is not valid UTF-8"
    ),
    "UTF-16": Case(
        BEFORE_S, raw("S", json.dumps(S_OBJ).encode("utf-16")), ProtocolError, "not valid UTF-8"
    ),
    "byte order mark": Case(
        BEFORE_S, raw("S", b"\xef\xbb\xbf" + json.dumps(S_OBJ).encode()), ProtocolError, "JSON"
    ),
    "NaN": Case(
        BETWEEN,
        raw("F", json.dumps(F_OBJ).replace("0.5", "NaN").encode()),
        ProtocolError,
        "NaN is not valid JSON",
    ),
    "duplicate member": Case(
        AT_E, raw("E", b'{"index":0,"index":0,"sha256":"x"}'), ProtocolError, "duplicate member"
    ),
    "duplicate nested member": Case(
        BEFORE_S,
        raw("S", b'{"version":1,"seed":1,"count":0,"params":{"a":1,"a":2}}'),
        ProtocolError,
        "duplicate member 'a'",
    ),
    "deep nesting": Case(BEFORE_S, raw("S", b"[" * 60000), ProtocolError, "nested too deeply"),
    # grammar order
    "F first": Case(BEFORE_S, frame("F"), ProtocolError, "unexpected F frame before the stream"),
    "D first": Case(BEFORE_S, data(), ProtocolError, "unexpected D frame before the stream header"),
    "Z first": Case(BEFORE_S, frame("Z"), ProtocolError, "(expected S)"),
    "X first": Case(BEFORE_S, frame("X"), ProtocolError, "unexpected X frame"),
    "S twice": Case(BETWEEN, frame("S"), ProtocolError, "unexpected S frame between files"),
    "D between files": Case(BETWEEN, data(), ProtocolError, "(expected F, Z or X)"),
    "E between files": Case(AT_Z, frame("E"), ProtocolError, "unexpected E frame between files"),
    "F inside a file": Case(
        IN_FILE, frame("F", index=1), ProtocolError, "unexpected F frame inside file 0"
    ),
    "Z inside a file": Case(AT_E, frame("Z"), ProtocolError, "(expected D, E or X)"),
    "S inside a file": Case(AT_E, frame("S"), ProtocolError, "unexpected S frame inside file 0"),
    # sequence
    "first index 1": Case(
        BETWEEN, frame("F", index=1), ProtocolError, "F frame: file index 1, expected 0"
    ),
    "second index 0": Case(SECOND_FILE, frame("F"), ProtocolError, "file index 0, expected 1"),
    "second index 2": Case(
        SECOND_FILE, frame("F", index=2), ProtocolError, "file index 2, expected 1"
    ),
    "E index": Case(
        AT_E, frame("E", index=1), ProtocolError, "E frame: index 1 does not match file 0"
    ),
    "more files than count": Case(
        AT_Z, frame("F", index=1), ProtocolError, "file 1 is beyond the S frame's count of 1"
    ),
    # D bytes beyond the size: refused from the header
    "D over size": Case(
        IN_FILE,
        encode_frame_header(FrameType.DATA, 5),
        ProtocolError,
        "file 0: D frame of 5 bytes exceeds the file size (0 of 4 bytes already received)",
    ),
    "second D over size": Case(
        [*IN_FILE, data(b"ab")],
        data(b"cde"),
        ProtocolError,
        "(2 of 4 bytes already received)",
    ),
    # nothing after the final frame
    "byte after Z": Case(COMPLETE, b"\x00", ProtocolError, "data after the final frame"),
    "ancillary after Z": Case(COMPLETE, raw("a", b""), ProtocolError, "after the final frame"),
    "frame after X": Case(
        [*BETWEEN, frame("X")], frame("F"), ProtocolError, "data after the final frame"
    ),
    "unsupported version": Case(
        BEFORE_S, frame("S", version=4), ProtocolError, "unsupported stream version 4"
    ),
}

INTEGRITY_CASES = {
    "short file": Case(
        [*IN_FILE, data(b"ab")],
        frame("E"),
        IntegrityError,
        "file 0: short file (2 of 4 bytes at its E frame)",
    ),
    "sha256 mismatch": Case(
        AT_E,
        frame("E", sha256="0" * 64),
        IntegrityError,
        f"file 0: sha256 mismatch (expected 00000000…, got {SHA[:8]}…)",
    ),
    "Z count vs files": Case(
        AT_Z, frame("Z", count=2), IntegrityError, "Z frame: count is 2, files received: 1"
    ),
    "Z bytes": Case(AT_Z, frame("Z", bytes=5), IntegrityError, "bytes is 5, bytes received: 4"),
    "Z count vs S": Case(
        SECOND_FILE,
        frame("Z"),
        IntegrityError,
        "Z frame: count is 1, files announced by the S frame: 2",
    ),
}


@pytest.mark.parametrize("case", PROTOCOL_CASES.values(), ids=list(PROTOCOL_CASES))
def test_protocol_errors(case: Case) -> None:
    check(case)


@pytest.mark.parametrize("case", INTEGRITY_CASES.values(), ids=list(INTEGRITY_CASES))
def test_integrity_errors(case: Case) -> None:
    check(case)


PREFIX_FOR = {"S": BEFORE_S, "F": BETWEEN, "E": AT_E, "Z": AT_Z, "X": BETWEEN}
MISSING = [(kind, member) for kind, obj in OBJECTS.items() for member in obj]


@pytest.mark.parametrize(("kind", "member"), MISSING, ids=[f"{k}.{m}" for k, m in MISSING])
def test_missing_member(kind: str, member: str) -> None:
    case = Case(
        PREFIX_FOR[kind],
        frame(kind, drop=(member,)),
        ProtocolError,
        f"{kind} frame: missing member {member!r}",
    )
    check(case)


ILL_TYPED: list[tuple[str, dict[str, Any], str]] = [
    ("S", {"version": True}, "'version' must be a non-negative integer, got True"),
    ("S", {"version": 1.0}, "'version' must be a non-negative integer"),
    ("S", {"seed": -1}, "'seed' must be a non-negative integer, got -1"),
    ("S", {"count": "3"}, "'count' must be a non-negative integer, got '3'"),
    ("S", {"count": False}, "'count' must be a non-negative integer"),
    ("S", {"params": []}, "'params' must be an object"),
    ("F", {"index": True}, "'index' must be a non-negative integer, got True"),
    ("F", {"index": 0.0}, "'index' must be a non-negative integer"),
    ("F", {"size": -4}, "'size' must be a non-negative integer"),
    ("F", {"size": None}, "'size' must be a non-negative integer, got None"),
    ("F", {"size": 3}, "'size' must be a multiple of 2 for int16, got 3"),
    ("F", {"size": 6, "dtype": "float32"}, "'size' must be a multiple of 4 for float32"),
    ("F", {"name": 5}, "'name' must be a string"),
    ("F", {"name": ""}, "'name' must be a plain file name"),
    ("F", {"name": ".."}, "'name' must be a plain file name"),
    ("F", {"name": "../etc/passwd"}, "'name' must be a plain file name"),
    ("F", {"name": "a\\b"}, "'name' must be a plain file name"),
    ("F", {"name": "a\x00b"}, "'name' must be a plain file name"),
    ("F", {"dtype": "int64"}, "'dtype' must be one of int8, int16, int32, float32"),
    ("F", {"byteorder": "native"}, "'byteorder' must be one of little, big"),
    ("F", {"offset": "0.5"}, "'offset' must be a non-negative number"),
    ("F", {"offset": True}, "'offset' must be a non-negative number"),
    ("F", {"offset": -0.1}, "'offset' must be a non-negative number"),
    ("F", {"offset": 10**400}, "'offset' must be a non-negative number"),
    ("E", {"index": -1}, "'index' must be a non-negative integer"),
    ("E", {"sha256": SHA.upper()}, "'sha256' must be 64 lowercase hex digits"),
    ("E", {"sha256": SHA[:-1]}, "'sha256' must be 64 lowercase hex digits"),
    ("E", {"sha256": SHA + "\n"}, "'sha256' must be 64 lowercase hex digits"),
    ("E", {"sha256": 0}, "'sha256' must be a string"),
    ("Z", {"count": 1.5}, "'count' must be a non-negative integer"),
    ("Z", {"bytes": True}, "'bytes' must be a non-negative integer"),
    ("X", {"error": 5}, "'error' must be a string"),
    ("X", {"message": None}, "'message' must be a string"),
]


@pytest.mark.parametrize(("kind", "changes", "fragment"), ILL_TYPED)
def test_ill_typed_member(kind: str, changes: dict[str, Any], fragment: str) -> None:
    message = check(Case(PREFIX_FOR[kind], frame(kind, **changes), ProtocolError, fragment))
    assert f"{kind} frame: member" in message


def test_infinite_offset_literal() -> None:
    # 1e999 is valid JSON that Python parses to inf.
    payload = json.dumps(F_OBJ).replace("0.5", "1e999").encode()
    check(Case(BETWEEN, raw("F", payload), ProtocolError, "'offset' must be a non-negative"))


@pytest.mark.parametrize(
    ("prefix", "offset", "shown"),
    [
        (b'{"error": "bad request"}', 0, "7b"),
        (b"\x89WLS\n\x1a\n", 4, "89 57 4c 53 0a"),  # CR LF translated to LF
        (b"\x89WLS\r\n\x1a\x0d", 7, "89 57 4c 53 0d 0a 1a 0d"),
        (b"\x09WLS\r\n\x1a\n", 0, "09"),  # high bit stripped by a 7-bit transport
    ],
)
def test_wrong_preamble(prefix: bytes, offset: int, shown: str) -> None:
    for step in (None, 1):
        error = decode_error(prefix + b"".join(COMPLETE[1:]), step)
        assert type(error) is ProtocolError
        assert str(error) == (
            f"at byte {offset}: not a wirelab stream: the body starts with {shown}, "
            "expected the preamble 89 57 4c 53 0d 0a 1a 0a"
        )


def test_wrong_preamble_is_refused_at_the_first_wrong_byte() -> None:
    decoder = StreamDecoder()
    decoder.feed(b"\x89W")
    with pytest.raises(ProtocolError, match="at byte 2: not a wirelab stream"):
        decoder.feed(b"X")


def test_lower_limits() -> None:
    s_frame = frame("S")
    check(
        Case(BEFORE_S, s_frame, ProtocolError, f"S frame of {len(s_frame) - 5} bytes exceeds"),
        max_json_payload=10,
    )
    check(
        Case(IN_FILE, data(), ProtocolError, "D frame of 4 bytes exceeds the limit of 3"),
        max_data_payload=3,
    )


@pytest.mark.parametrize("limit", [-1, True, 1.5, "10"])
def test_invalid_limits(limit: Any) -> None:
    with pytest.raises(UsageError, match="max_json_payload must be a non-negative integer"):
        StreamDecoder(max_json_payload=limit)
    with pytest.raises(UsageError, match="max_data_payload must be a non-negative integer"):
        StreamDecoder(max_data_payload=limit)


@pytest.mark.parametrize("case", ["sha256 mismatch", "Z bytes"])
def test_poisoned_after_an_error(case: str) -> None:
    decoder = StreamDecoder()
    bad = INTEGRITY_CASES[case]
    with pytest.raises(IntegrityError) as info:
        decoder.feed(b"".join([*bad.before, bad.bad]))
        decoder.close()
    original = str(info.value)
    for call in (lambda: decoder.feed(b""), lambda: decoder.feed(b"x"), decoder.close):
        with pytest.raises(ProtocolError) as again:
            call()
        assert type(again.value) is ProtocolError
        assert str(again.value) == f"decoder already failed: {original}"


def test_poisoned_after_truncation() -> None:
    decoder = StreamDecoder()
    decoder.feed(PREAMBLE)
    with pytest.raises(TruncatedError) as info:
        decoder.close()
    for call in (lambda: decoder.feed(b"S"), decoder.close):
        with pytest.raises(
            ProtocolError, match=r"^decoder already failed: at byte 8: stream ended"
        ):
            call()
    assert str(info.value) == "at byte 8: stream ended before the stream header"


def test_events_before_an_error_are_delivered_first() -> None:
    # File 0 is complete: its FileEnded comes back, then the next call raises the error.
    decoder = StreamDecoder()
    bad = INTEGRITY_CASES["Z count vs files"]
    events = decoder.feed(b"".join([*bad.before, bad.bad]))
    assert FileEnded in {type(e) for e in events}
    assert decoder.files_completed == 1
    with pytest.raises(IntegrityError, match="count"):
        decoder.feed(b"")
    assert not decoder.finished
    with pytest.raises(ProtocolError, match="decoder already failed"):
        decoder.close()
