"""Frame-level helpers, the public API surface, and the example in the format document."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import blake3
import pytest

import wirelab.framing
from wirelab import UsageError
from wirelab.framing import (
    MAX_DATA_PAYLOAD,
    MAX_JSON_PAYLOAD,
    PREAMBLE,
    FileData,
    FileEnded,
    FileStarted,
    FrameType,
    StreamAborted,
    StreamDecoder,
    StreamEncoder,
    StreamEnded,
    StreamStarted,
    encode_frame,
    encode_frame_header,
    encode_json_frame,
)

SPEC = Path(__file__).resolve().parents[2] / "docs" / "protocol" / "stream.md"


def test_public_names() -> None:
    assert sorted(wirelab.framing.__all__) == sorted(
        [
            "PREAMBLE",
            "FrameType",
            "MAX_JSON_PAYLOAD",
            "MAX_DATA_PAYLOAD",
            "encode_frame",
            "encode_frame_header",
            "encode_json_frame",
            "StreamEncoder",
            "StreamDecoder",
            "Event",
            "StreamStarted",
            "FileStarted",
            "FileData",
            "FileEnded",
            "StreamEnded",
            "StreamAborted",
            "LengthPrefixCodec",
            "LengthPrefixDecoder",
            "DelimiterCodec",
            "DelimiterDecoder",
            "FrameCodec",
        ]
    )
    for name in wirelab.framing.__all__:
        assert getattr(wirelab.framing, name) is not None


def test_constants() -> None:
    assert bytes.fromhex("89 57 4c 53 0d 0a 1a 0a") == PREAMBLE
    assert (MAX_JSON_PAYLOAD, MAX_DATA_PAYLOAD) == (65536, 1048576)
    assert {t.name: bytes([t]) for t in FrameType} == {
        "STREAM": b"S",
        "FILE": b"F",
        "DATA": b"D",
        "END_FILE": b"E",
        "END": b"Z",
        "ABORT": b"X",
    }


def test_encode_frame_header_layout() -> None:
    assert encode_frame_header(FrameType.DATA, 0x01020304) == b"D\x01\x02\x03\x04"
    assert encode_frame_header(0x61, 0) == b"a\x00\x00\x00\x00"
    assert encode_frame_header(0xFF, 0xFFFFFFFF) == b"\xff\xff\xff\xff\xff"


@pytest.mark.parametrize(
    ("frame_type", "length", "fragment"),
    [(-1, 0, "frame type"), (256, 0, "frame type"), (0x44, -1, "length"), (0x44, 2**32, "length")],
)
def test_encode_frame_header_range(frame_type: int, length: int, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        encode_frame_header(frame_type, length)


def test_encode_frame() -> None:
    assert encode_frame(FrameType.DATA, b"abc") == b"D\x00\x00\x00\x03abc"
    assert encode_frame(ord("q"), b"") == b"q\x00\x00\x00\x00"


def test_encode_json_frame_is_compact_utf8_and_ordered() -> None:
    frame = encode_json_frame(FrameType.ABORT, {"z": 1, "a": [1, 2], "é": "ü"})
    payload = '{"z":1,"a":[1,2],"é":"ü"}'.encode()
    assert frame == b"X" + len(payload).to_bytes(4, "big") + payload


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        ({"x": float("nan")}, "not valid JSON"),
        ({"x": object()}, "not valid JSON"),
        ({"x": "\ud800"}, "not valid JSON"),  # a lone surrogate has no UTF-8 form
        ({"x": "a" * MAX_JSON_PAYLOAD}, "exceeds the limit of 65536"),
    ],
)
def test_encode_json_frame_refuses(obj: dict[str, object], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        encode_json_frame(FrameType.ABORT, obj)


def test_events_are_frozen_values() -> None:
    started = StreamStarted(version=1, seed=2, count=3, params={"a": 1})
    assert started == StreamStarted(1, 2, 3, {"a": 1})
    assert hash(started) == hash(StreamStarted(1, 2, 3, {"b": 2}))  # params not hashed
    with pytest.raises(AttributeError):
        started.seed = 5  # type: ignore[misc]
    assert repr(FileData(3, b"x" * 100_000)) == "FileData(index=3, data=<100000 bytes>)"
    for event in (
        started,
        FileStarted(0, "n", 0, "int8", "big", 0.0),
        FileEnded(0, "0" * 64),
        StreamEnded(0, 0),
        StreamAborted("e", "m"),
    ):
        assert not hasattr(event, "__dict__")  # slots


def _spec_section(title: str) -> str:
    text = SPEC.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_spec_example_matches_the_encoder() -> None:
    """The hexdump and JSON in the document are what the encoder produces."""
    example = _spec_section("Example")
    blocks = re.findall(r"```\n(.*?)```", example, flags=re.DOTALL)
    hexdump, payloads = blocks[0].splitlines(), blocks[1].splitlines()
    s_obj, f_obj, e_obj, z_obj = (bytes(line, "utf-8") for line in payloads)
    data = b"\x00\x00\x01\x00"
    assert f'"blake3":"{blake3.blake3(data).hexdigest()}"'.encode() in e_obj

    frames = _example_frames(3, "blake3", data)
    assert [frame[5:] for frame in frames[1:]] == [s_obj, f_obj, data, e_obj, z_obj]
    # "In version 2 the same stream differed only in the version member of S."
    v2 = _example_frames(2, "blake3", data)
    assert v2[1] == frames[1].replace(b'{"version":3,', b'{"version":2,') and v2[2:] == frames[2:]
    for line, frame in zip(hexdump, frames, strict=True):
        shown = bytes.fromhex(re.match(r"((?:[0-9a-f]{2} )+)", line + " ").group(1))  # type: ignore[union-attr]
        assert frame.startswith(shown), line
    decoder = StreamDecoder()
    assert decoder.feed(b"".join(frames))[-1] == StreamEnded(count=1, total_bytes=4)
    decoder.close()


def test_spec_version_1_example_matches_the_old_encoder_and_still_decodes() -> None:
    """Old captures: the version 1 payloads in the document are what the encoder wrote
    before version 2, and the current decoder verifies them."""
    blocks = re.findall(r"```\n(.*?)```", _spec_section("Example"), flags=re.DOTALL)
    s_obj, e_obj = (bytes(line, "utf-8") for line in blocks[2].splitlines())
    data = b"\x00\x00\x01\x00"
    frames = _example_frames(1, "sha256", data)
    assert (frames[1][5:], frames[4][5:]) == (s_obj, e_obj)
    events = StreamDecoder().feed(b"".join(frames))
    assert events[0] == StreamStarted(1, 1234, 1, events[0].params, digest="sha256")  # type: ignore[union-attr]
    assert FileEnded(0, hashlib.sha256(data).hexdigest(), "sha256") in events


def _example_frames(version: int, digest: str, data: bytes) -> list[bytes]:
    """The frames of the document's example stream, as the encoder writes ``version``."""
    encoder = StreamEncoder(version=version)
    params: dict[str, object] = {
        "count": 1,
        "min_size": 4,
        "max_size": 4,
        "min_interval": 0.0,
        "max_interval": 0.0,
        "dtype": "int16",
        "byteorder": "little",
        "content": "ramp",
        "speed": 1.0,
        "seed": 1234,
    }
    if version >= 2:
        params["digest"] = digest
    start = encoder.start(seed=1234, count=1, params=params, digest=digest)
    hasher = blake3.blake3 if digest == "blake3" else hashlib.sha256
    return [
        start[:8],
        start[8:],
        encoder.file_start(
            index=0, name="000000.int16", size=4, dtype="int16", byteorder="little", offset=0.0
        ),
        encoder.data(data),
        encoder.file_end(hasher(data).hexdigest()),
        encoder.end(),
    ]
