"""DelimiterCodec / DelimiterDecoder: lines and other delimiters, limits, truncation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wirelab import ProtocolError, TruncatedError, UsageError
from wirelab.framing import DelimiterCodec, DelimiterDecoder
from wirelab.framing._delimiter import DEFAULT_MAX_LINE


def test_default_is_newline() -> None:
    codec = DelimiterCodec()
    assert codec.delimiter == b"\n"
    assert codec.max_frame == DEFAULT_MAX_LINE
    assert codec.encode(b"hi") == b"hi\n"
    assert codec.decoder().feed(b"a\nbc\n\nd") == [b"a", b"bc", b""]
    assert codec == DelimiterCodec(b"\n")
    assert hash(codec) == hash(DelimiterCodec(b"\n"))
    assert repr(codec) == f"DelimiterCodec(b'\\n', max_frame={DEFAULT_MAX_LINE})"


def test_crlf_split_between_cr_and_lf() -> None:
    decoder = DelimiterCodec(b"\r\n").decoder()
    assert decoder.feed(b"GET / HTTP/1.1\r") == []
    assert decoder.feed(b"\nHost: x\r\n\r\n") == [b"GET / HTTP/1.1", b"Host: x", b""]
    decoder.close()


@given(
    delimiter=st.sampled_from([b"\n", b"\r\n", b"\x00", b"--END--"]),
    payloads=st.lists(st.binary(max_size=40), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_round_trip_split_anywhere(
    delimiter: bytes, payloads: list[bytes], cuts: list[int]
) -> None:
    codec = DelimiterCodec(delimiter)
    encodable = []
    for payload in payloads:
        try:
            codec.encode(payload)
        except UsageError:
            continue
        encodable.append(payload)
    stream = b"".join(codec.encode(p) for p in encodable)
    decoder = codec.decoder()
    out: list[bytes] = []
    start = 0
    for cut in [*sorted({min(c, len(stream)) for c in cuts}), len(stream)]:
        out += decoder.feed(stream[start:cut])
        start = cut
    decoder.close()
    assert out == encodable
    assert decoder.bytes_consumed == len(stream)


@pytest.mark.parametrize(
    ("delimiter", "payload"),
    [(b"\n", b"a\nb"), (b"\r\n", b"x\r\n"), (b"aba", b"ab")],
)
def test_encode_refuses_payloads_that_would_not_round_trip(
    delimiter: bytes, payload: bytes
) -> None:
    with pytest.raises(UsageError, match="contains the delimiter"):
        DelimiterCodec(delimiter).encode(payload)


def test_encode_accepts_a_partial_delimiter() -> None:
    assert DelimiterCodec(b"\r\n").encode(b"a\r") == b"a\r\r\n"
    assert DelimiterCodec(b"\r\n").decoder().feed(b"a\r\r\n") == [b"a\r"]


def test_encode_refuses_oversize() -> None:
    with pytest.raises(UsageError, match="exceeds max_frame of 2"):
        DelimiterCodec(max_frame=2).encode(b"abc")


def test_oversize_detected_before_the_delimiter_arrives() -> None:
    decoder = DelimiterCodec(b"\r\n", max_frame=4).decoder()
    assert decoder.feed(b"abcd\r") == []  # 4 bytes + what may be the delimiter's start
    with pytest.raises(ProtocolError, match="at byte 0: frame exceeds max_frame of 4"):
        decoder.feed(b"x")
    with pytest.raises(ProtocolError, match="already failed"):
        decoder.feed(b"\r\n")


def test_oversize_frame_with_delimiter_in_the_same_chunk() -> None:
    decoder = DelimiterCodec(max_frame=3).decoder()
    assert decoder.feed(b"abc\n") == [b"abc"]
    with pytest.raises(ProtocolError, match="at byte 4: frame exceeds max_frame of 3"):
        decoder.feed(b"abcd\n")


def test_stateless_next_frame() -> None:
    codec = DelimiterCodec(b"\r\n", max_frame=3)
    assert codec.next_frame(b"ab") is None
    assert codec.next_frame(b"abc\r") is None
    assert codec.next_frame(b"ab\r\nzz") == (b"ab", 4)
    with pytest.raises(ProtocolError, match="exceeds max_frame"):
        codec.next_frame(b"abcd\r\n")
    with pytest.raises(ProtocolError, match="without the delimiter"):
        codec.next_frame(b"abcde")


def test_close_with_a_partial_frame_is_truncation() -> None:
    decoder = DelimiterDecoder()
    assert decoder.feed(b"one\ntwo") == [b"one"]
    assert decoder.buffered == b"two"
    with pytest.raises(TruncatedError, match=r"at byte 4: stream ended inside a frame \(3 bytes"):
        decoder.close()


def test_calls_after_close_are_usage_errors() -> None:
    decoder = DelimiterDecoder()
    decoder.close()
    with pytest.raises(UsageError, match="after close"):
        decoder.next_frame()


def test_many_lines_compact_the_buffer() -> None:
    codec = DelimiterCodec()
    decoder = codec.decoder()
    line = codec.encode(b"y" * 999)
    assert sum(len(decoder.feed(line)) for _ in range(300)) == 300
    assert decoder.feed(b"tail") == []
    assert decoder.buffered == b"tail"
    assert decoder.codec is codec


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((b"",), {}, "non-empty bytes"),
        (("\n",), {}, "non-empty bytes"),
        ((b"\n",), {"max_frame": -1}, "max_frame"),
        ((b"\n",), {"max_frame": True}, "max_frame"),
    ],
)
def test_bad_arguments(args: tuple[object, ...], kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        DelimiterCodec(*args, **kwargs)  # type: ignore[arg-type]
