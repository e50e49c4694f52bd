"""LengthPrefixCodec / LengthPrefixDecoder: round trips, limits, truncation, bad arguments."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wirelab import ProtocolError, TruncatedError, UsageError
from wirelab.framing import LengthPrefixCodec, LengthPrefixDecoder
from wirelab.framing._length_prefix import DEFAULT_MAX_FRAME

WIDTHS: list[Literal[1, 2, 4, 8]] = [1, 2, 4, 8]


def test_default_is_four_bytes_big_endian() -> None:
    codec = LengthPrefixCodec()
    assert codec.encode(b"abc") == b"\x00\x00\x00\x03abc"
    assert codec.max_frame == DEFAULT_MAX_FRAME
    assert codec == LengthPrefixCodec(4, "big")
    assert hash(codec) == hash(LengthPrefixCodec(4, "big"))
    assert "width=4" in repr(codec)


@pytest.mark.parametrize(
    ("width", "byteorder", "header"),
    [
        (1, "big", b"\x05"),
        (2, "big", b"\x00\x05"),
        (2, "little", b"\x05\x00"),
        (4, "little", b"\x05\x00\x00\x00"),
        (8, "big", b"\x00" * 7 + b"\x05"),
        (8, "little", b"\x05" + b"\x00" * 7),
    ],
)
def test_header_layout(
    width: Literal[1, 2, 4, 8], byteorder: Literal["big", "little"], header: bytes
) -> None:
    codec = LengthPrefixCodec(width, byteorder)
    frame = codec.encode(b"hello")
    assert frame == header + b"hello"
    assert codec.decoder().feed(frame) == [b"hello"]
    assert codec.next_frame(frame + b"rest") == (b"hello", len(frame))


@given(
    width=st.sampled_from(WIDTHS),
    little=st.booleans(),
    payloads=st.lists(st.binary(max_size=255), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=10),
)
def test_round_trip_split_anywhere(
    width: Literal[1, 2, 4, 8], little: bool, payloads: list[bytes], cuts: list[int]
) -> None:
    codec = LengthPrefixCodec(width, "little" if little else "big")
    stream = b"".join(codec.encode(p) for p in payloads)
    decoder = codec.decoder()
    out: list[bytes] = []
    start = 0
    for cut in [*sorted({min(c, len(stream)) for c in cuts}), len(stream)]:
        out += decoder.feed(stream[start:cut])
        start = cut
    decoder.close()
    assert out == payloads
    assert decoder.bytes_consumed == len(stream)
    assert decoder.buffered == b""


def test_empty_payload() -> None:
    codec = LengthPrefixCodec(2)
    assert codec.encode(b"") == b"\x00\x00"
    assert codec.decoder().feed(b"\x00\x00\x00\x00") == [b"", b""]


def test_encode_refuses_oversize() -> None:
    with pytest.raises(UsageError, match="exceeds max_frame of 3"):
        LengthPrefixCodec(max_frame=3).encode(b"abcd")
    with pytest.raises(UsageError, match="exceeds max_frame of 255"):
        LengthPrefixCodec(1).encode(b"x" * 256)


def test_decoder_rejects_oversize_from_the_header_alone() -> None:
    decoder = LengthPrefixCodec(max_frame=10).decoder()
    assert decoder.feed(LengthPrefixCodec().encode(b"0123456789")) == [b"0123456789"]
    with pytest.raises(ProtocolError, match=r"at byte 14: frame length 11 exceeds max_frame of 10"):
        decoder.feed(b"\x00\x00\x00\x0b")  # no payload byte needed to know
    with pytest.raises(ProtocolError, match="already failed"):
        decoder.feed(b"")
    with pytest.raises(ProtocolError, match="already failed"):
        decoder.close()


def test_stateless_next_frame() -> None:
    codec = LengthPrefixCodec(max_frame=4)
    assert codec.next_frame(b"\x00\x00") is None
    assert codec.next_frame(b"\x00\x00\x00\x02a") is None
    assert codec.next_frame(bytearray(b"\x00\x00\x00\x02abc")) == (b"ab", 6)
    with pytest.raises(ProtocolError, match="exceeds max_frame of 4"):
        codec.next_frame(b"\x00\x00\x00\x05")


@pytest.mark.parametrize(
    ("tail", "detail"),
    [(b"\x00\x00", "2 of 4 length bytes"), (b"\x00\x00\x00\x05ab", "2 of 5 payload bytes")],
)
def test_close_inside_a_frame_is_truncation(tail: bytes, detail: str) -> None:
    decoder = LengthPrefixDecoder()
    assert decoder.feed(b"\x00\x00\x00\x01x" + tail) == [b"x"]
    assert decoder.buffered == tail
    with pytest.raises(TruncatedError, match=f"at byte 5: stream ended inside a frame \\({detail}"):
        decoder.close()


def test_calls_after_close_are_usage_errors() -> None:
    decoder = LengthPrefixDecoder()
    decoder.close()
    with pytest.raises(UsageError, match="after close"):
        decoder.feed(b"")


def test_append_and_next_frame_take_one_at_a_time() -> None:
    codec = LengthPrefixCodec(1)
    decoder = codec.decoder()
    decoder.append(codec.encode(b"a") + codec.encode(b"bc") + b"\x05")
    assert decoder.next_frame() == b"a"
    assert decoder.bytes_consumed == 2
    assert decoder.next_frame() == b"bc"
    assert decoder.next_frame() is None
    assert decoder.buffered == b"\x05"
    assert decoder.codec is codec


def test_large_stream_is_linear_and_compacts() -> None:
    codec = LengthPrefixCodec(2)
    frame = codec.encode(b"x" * 1000)
    decoder = codec.decoder()
    total = 0
    for _ in range(500):
        total += len(decoder.feed(frame))
    assert total == 500
    assert decoder.buffered == b""


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 3}, "width must be one of"),
        ({"width": True}, "width must be one of"),
        ({"byteorder": "middle"}, "byteorder"),
        ({"max_frame": -1}, "max_frame must be a non-negative integer"),
        ({"width": 1, "max_frame": 256}, "does not fit a 1-byte length"),
        ({"max_frame": 1.5}, "max_frame must be"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        LengthPrefixCodec(**kwargs)  # type: ignore[arg-type]


def test_width_caps_default_max_frame() -> None:
    assert LengthPrefixCodec(1).max_frame == 255
    assert LengthPrefixCodec(2).max_frame == 65535
    assert LengthPrefixCodec(8).max_frame == DEFAULT_MAX_FRAME
