"""StreamDecoder: round trips with the encoder under any split, truncation, and its contract."""

from __future__ import annotations

import array
import dataclasses
import hashlib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wirelab import IntegrityError, ProtocolError, TruncatedError, UsageError
from wirelab.framing import (
    Event,
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

WIDTHS = {"int8": 1, "int16": 2, "int32": 4, "float32": 4}


@dataclass(frozen=True)
class FileSpec:
    dtype: str
    byteorder: str
    offset: float
    data: bytes
    cuts: tuple[int, ...]  # where the data is split into D frames; repeats give empty frames


@dataclass(frozen=True)
class StreamSpec:
    seed: int
    params: dict[str, Any]
    files: tuple[FileSpec, ...]
    # None: a normal end. (k, None): X after k files. (k, n): X after n bytes of file k.
    abort: tuple[int, int | None] | None


@st.composite
def file_specs(draw: st.DrawFn) -> FileSpec:
    dtype = draw(st.sampled_from(sorted(WIDTHS)))
    samples = draw(st.integers(0, 48))
    data = draw(st.binary(min_size=samples * WIDTHS[dtype], max_size=samples * WIDTHS[dtype]))
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=5).map(sorted))
    return FileSpec(
        dtype=dtype,
        byteorder=draw(st.sampled_from(["little", "big"])),
        offset=draw(st.floats(0, 1e6, allow_nan=False)),
        data=data,
        cuts=tuple(cuts),
    )


@st.composite
def stream_specs(draw: st.DrawFn) -> StreamSpec:
    files = tuple(draw(st.lists(file_specs(), max_size=5)))
    abort: tuple[int, int | None] | None = None
    if draw(st.booleans()):
        after = draw(st.integers(0, len(files)))
        partial = None
        if after < len(files) and draw(st.booleans()):
            partial = draw(st.integers(0, len(files[after].data)))
        abort = (after, partial)
    params = draw(st.dictionaries(st.text(max_size=5), st.integers() | st.text(), max_size=3))
    return StreamSpec(draw(st.integers(0, 2**64 - 1)), params, files, abort)


def pieces_of(spec: FileSpec, limit: int | None = None) -> list[bytes]:
    """The D payloads of a file, cut at ``spec.cuts``, optionally stopping after *limit* bytes."""
    data = spec.data if limit is None else spec.data[:limit]
    bounds = [0, *(min(cut, len(data)) for cut in spec.cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def encode(spec: StreamSpec) -> tuple[list[bytes], list[Event]]:
    """Encode *spec* with StreamEncoder; return its frames (preamble first) and the events."""
    encoder = StreamEncoder()
    start = encoder.start(seed=spec.seed, count=len(spec.files), params=spec.params)
    frames = [start[:8], start[8:]]
    events: list[Event] = [StreamStarted(3, spec.seed, len(spec.files), spec.params)]
    for index, file in enumerate(spec.files):
        if spec.abort == (index, None):
            break
        started = FileStarted(
            index,
            f"{index:06d}.{file.dtype}",
            len(file.data),
            file.dtype,
            file.byteorder,
            file.offset,
        )
        frames.append(encoder.file_start(**dataclasses.asdict(started)))
        events.append(started)
        partial = spec.abort[1] if spec.abort and spec.abort[0] == index else None
        for piece in pieces_of(file, partial):
            frames.append(encoder.data(piece))
            events.extend([FileData(index, piece)] if piece else [])
        if partial is not None:
            break
        digest = hashlib.sha256(file.data).hexdigest()
        frames.append(encoder.file_end(digest))
        events.append(FileEnded(index, digest))
    if spec.abort is None:
        frames.append(encoder.end())
        events.append(StreamEnded(len(spec.files), sum(len(f.data) for f in spec.files)))
    else:
        frames.append(encoder.abort("shutdown", "the server is shutting down"))
        events.append(StreamAborted("shutdown", "the server is shutting down"))
    return frames, events


def merged(events: Iterable[Event]) -> list[Event]:
    """*events* with consecutive FileData of one file joined (chunking carries no meaning)."""
    out: list[Event] = []
    for event in events:
        last = out[-1] if out else None
        if isinstance(event, FileData) and isinstance(last, FileData):
            out[-1] = FileData(last.index, last.data + event.data)
        else:
            out.append(event)
    return out


def decode(pieces: Iterable[bytes | bytearray | memoryview], **kwargs: Any) -> list[Event]:
    decoder = StreamDecoder(**kwargs)
    events: list[Event] = []
    consumed = 0
    for piece in pieces:
        new = decoder.feed(piece)
        assert all(len(e.data) for e in new if isinstance(e, FileData)), "empty FileData"
        events.extend(new)
        consumed += len(memoryview(piece).cast("B"))
        assert decoder.bytes_consumed == consumed
    decoder.close()
    assert decoder.finished
    assert decoder.files_completed == sum(isinstance(e, FileEnded) for e in events)
    return events


def split(body: bytes, cuts: Sequence[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds)]


ANCILLARY = st.tuples(st.integers(0x61, 0x7A), st.binary(max_size=20))


@settings(max_examples=100)
@given(spec=stream_specs(), data=st.data())
def test_round_trip_with_any_split_and_ancillary_frames(
    spec: StreamSpec, data: st.DataObject
) -> None:
    frames, expected = encode(spec)
    # Ancillary frames go anywhere after the preamble and before the final frame.
    extra = data.draw(st.lists(st.tuples(st.integers(1, len(frames) - 1), ANCILLARY), max_size=4))
    for position, (kind, payload) in sorted(extra, reverse=True):
        frames.insert(position, encode_frame(kind, payload))
    body = b"".join(frames)
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=12))
    wrap = data.draw(st.sampled_from([bytes, bytearray, memoryview]))
    events = decode(wrap(piece) for piece in split(body, cuts))
    assert merged(events) == merged(expected)


@settings(max_examples=40)
@given(spec=stream_specs())
def test_round_trip_one_byte_at_a_time(spec: StreamSpec) -> None:
    frames, expected = encode(spec)
    body = b"".join(frames)
    events = decode(body[i : i + 1] for i in range(len(body)))
    assert merged(events) == merged(expected)
    assert all(len(e.data) == 1 for e in events if isinstance(e, FileData))


@settings(max_examples=40)
@given(spec=stream_specs())
def test_round_trip_without_verification(spec: StreamSpec) -> None:
    frames, expected = encode(spec)
    assert merged(decode([b"".join(frames)], verify=False)) == merged(expected)


# -- a small fixed stream: two files, the second empty, an ancillary frame inside file 0 ---------

FILE0 = b"\x00\x01\x02\x03\x04\x05"
SHA0 = hashlib.sha256(FILE0).hexdigest()
SHA_EMPTY = hashlib.sha256(b"").hexdigest()


def small_stream(count: int = 2) -> list[bytes]:
    encoder = StreamEncoder()
    start = encoder.start(seed=1, count=count, params={"content": "ramp"})
    frames = [start[:8], start[8:]]
    frames.append(
        encoder.file_start(
            index=0, name="000000.int16", size=6, dtype="int16", byteorder="big", offset=0
        )
    )
    frames += [encoder.data(FILE0[:4]), encode_frame(ord("q"), b"abc"), encoder.data(FILE0[4:])]
    frames.append(encoder.file_end(SHA0))
    if count == 2:
        frames.append(
            encoder.file_start(
                index=1, name="000001.int8", size=0, dtype="int8", byteorder="little", offset=1.5
            )
        )
        frames.append(encoder.file_end(SHA_EMPTY))
    frames.append(encoder.end())
    return frames


def test_small_stream_events() -> None:
    events = decode([b"".join(small_stream())])
    assert events == [
        StreamStarted(3, 1, 2, {"content": "ramp"}),
        FileStarted(0, "000000.int16", 6, "int16", "big", 0.0),
        FileData(0, FILE0[:4]),
        FileData(0, FILE0[4:]),
        FileEnded(0, SHA0),
        FileStarted(1, "000001.int8", 0, "int8", "little", 1.5),
        FileEnded(1, SHA_EMPTY),
        StreamEnded(2, 6),
    ]


def test_truncation_at_every_prefix() -> None:
    body = b"".join(small_stream())
    for length in range(len(body)):
        for pieces in ([body[:length]], split(body[:length], [length // 2])):
            decoder = StreamDecoder()
            events = [event for piece in pieces for event in decoder.feed(piece)]
            assert not decoder.finished
            with pytest.raises(TruncatedError, match=rf"^at byte {length}: stream ended "):
                decoder.close()
            assert not any(isinstance(event, StreamEnded) for event in events)
    decode([body])  # and the whole body is fine


def _offsets(frames: list[bytes]) -> list[int]:
    """Stream offset at which each frame starts."""
    offsets = [0]
    for frame in frames:
        offsets.append(offsets[-1] + len(frame))
    return offsets


_FRAMES = small_stream()
_AT = _offsets(_FRAMES)
_S_LEN = len(_FRAMES[1]) - 5
TRUNCATIONS = [
    (0, "before the preamble (empty body)"),
    (3, "inside the preamble after 3 of 8 bytes"),
    (8, "before the stream header"),
    (10, "before the stream header, in a frame header (2 of 5 bytes)"),
    (20, f"before the stream header, in the S frame (7 of {_S_LEN} bytes)"),
    (_AT[3], "inside file 0 after 0 of 6 bytes"),
    (_AT[3] + 7, "inside file 0 after 2 of 6 bytes, in the D frame (2 of 4 bytes)"),
    (_AT[4] + 6, "inside file 0 after 4 of 6 bytes, in the ancillary q frame (1 of 3 bytes)"),
    (_AT[6] + 3, "inside file 0 after 6 of 6 bytes, in a frame header (3 of 5 bytes)"),
    (_AT[7], "after 1 of 2 files without an end frame"),
    (_AT[9], "after 2 of 2 files without an end frame"),
    (_AT[9] + 6, "after 2 of 2 files, in the Z frame (1 of 21 bytes)"),
]


@pytest.mark.parametrize(("length", "where"), TRUNCATIONS)
def test_truncation_messages(length: int, where: str) -> None:
    decoder = StreamDecoder()
    decoder.feed(b"".join(_FRAMES)[:length])
    with pytest.raises(TruncatedError) as info:
        decoder.close()
    assert str(info.value) == f"at byte {length}: stream ended {where}"


def test_empty_feeds_anywhere() -> None:
    body = b"".join(small_stream())
    decoder = StreamDecoder()
    assert decoder.feed(b"") == []
    assert len(decoder.feed(body[: _AT[3]])) == 2  # StreamStarted, FileStarted
    assert decoder.feed(bytearray()) == []
    decoder.feed(body[_AT[3] :])
    assert decoder.feed(memoryview(b"")) == []
    assert decoder.bytes_consumed == len(body)
    decoder.close()


def test_close_is_idempotent_and_final() -> None:
    decoder = StreamDecoder()
    decoder.feed(b"".join(small_stream()))
    decoder.close()
    decoder.close()
    with pytest.raises(UsageError, match="feed\\(\\) called after close\\(\\)"):
        decoder.feed(b"")


def test_partial_d_frame_is_emitted_at_once() -> None:
    body = b"".join(_FRAMES)
    decoder = StreamDecoder()
    decoder.feed(body[: _AT[3] + 5 + 3])  # D header and 3 of its 4 bytes
    assert decoder.feed(b"") == []
    assert decoder.feed(body[_AT[3] + 8 : _AT[3] + 9]) == [FileData(0, FILE0[3:4])]


def test_partial_d_frame_in_the_same_feed() -> None:
    decoder = StreamDecoder()
    events = decoder.feed(b"".join(_FRAMES)[: _AT[3] + 7])
    assert events[-1] == FileData(0, FILE0[:2])


def test_input_buffers_may_be_reused_and_of_any_item_size() -> None:
    body = bytearray(b"".join(small_stream()))
    decoder = StreamDecoder()
    events = decoder.feed(body)
    body[:] = bytes(len(body))  # the caller reuses its buffer
    assert events[2] == FileData(0, FILE0[:4])
    frames = small_stream()
    padding = -(len(b"".join(frames)) + 5) % 4  # an ancillary frame pads to whole words
    frames.insert(2, encode_frame(ord("p"), bytes(padding)))
    words = array.array("I")
    words.frombytes(b"".join(frames))
    assert decode([memoryview(words)]) == decode([b"".join(small_stream())])


def test_file_ended_only_after_verification() -> None:
    frames = small_stream(count=1)
    body = b"".join(frames)
    e_end = _offsets(frames)[7]
    decoder = StreamDecoder()
    events = decoder.feed(body[: e_end - 1])
    assert not any(isinstance(event, FileEnded) for event in events)
    assert decoder.files_completed == 0
    assert decoder.feed(body[e_end - 1 : e_end]) == [FileEnded(0, SHA0)]
    assert decoder.files_completed == 1


def test_no_file_ended_on_digest_mismatch() -> None:
    frames = small_stream(count=1)
    frames[6] = frames[6].replace(SHA0.encode(), SHA_EMPTY.encode())
    body = b"".join(frames)
    e_end = _offsets(frames)[7]
    decoder = StreamDecoder()
    events = decoder.feed(body[: e_end - 1])
    with pytest.raises(IntegrityError, match="file 0: sha256 mismatch"):
        decoder.feed(body[e_end - 1 :])
    assert not any(isinstance(event, FileEnded) for event in events)
    assert decoder.files_completed == 0


def test_verify_false_skips_only_the_digest() -> None:
    frames = small_stream(count=1)
    frames[6] = frames[6].replace(SHA0.encode(), SHA_EMPTY.encode())
    events = decode([b"".join(frames)], verify=False)
    assert FileEnded(0, SHA_EMPTY) in events  # the declared digest, unchecked
    short = [*frames[:5], *frames[6:]]  # the last D frame dropped
    decoder = StreamDecoder(verify=False)
    with pytest.raises(IntegrityError, match="short file \\(4 of 6 bytes"):
        decoder.feed(b"".join(short))
        decoder.close()  # the error follows the events that preceded it
    decoder = StreamDecoder(verify=False)
    with pytest.raises(ProtocolError, match="exceeds the file size"):
        decoder.feed(b"".join(frames[:6]) + encode_frame_header(FrameType.DATA, 1))
        decoder.close()
    decoder = StreamDecoder(verify=False)
    with pytest.raises(ProtocolError, match="'sha256' must be 64 lowercase hex digits"):
        decoder.feed(b"".join(frames[:6]) + encode_json_frame(0x45, {"index": 0, "sha256": "0"}))
        decoder.close()


def test_abort_between_files() -> None:
    encoder = StreamEncoder()
    body = encoder.start(seed=1, count=3, params={})
    body += encoder.file_start(index=0, name="a", size=1, dtype="int8", byteorder="big", offset=0)
    body += encoder.data(b"x") + encoder.file_end(hashlib.sha256(b"x").hexdigest())
    body += encoder.abort("shutdown", "bye")
    decoder = StreamDecoder()
    events = decoder.feed(body)
    assert events[-2:] == [
        FileEnded(0, hashlib.sha256(b"x").hexdigest()),
        StreamAborted("shutdown", "bye"),
    ]
    assert decoder.finished
    assert decoder.files_completed == 1
    decoder.close()


def test_abort_inside_a_file() -> None:
    encoder = StreamEncoder()
    encoder.start(seed=0, count=0, params={})
    abort = encoder.abort("internal", "generator failed")
    decoder = StreamDecoder()
    events = decoder.feed(b"".join(_FRAMES[:4]) + abort)  # after 4 of 6 bytes of file 0
    assert events[-2:] == [FileData(0, FILE0[:4]), StreamAborted("internal", "generator failed")]
    assert not any(isinstance(event, FileEnded) for event in events)
    assert decoder.finished
    assert decoder.files_completed == 0
    decoder.close()


def test_ancillary_frames_are_skipped_without_buffering() -> None:
    body = b"".join(_FRAMES)
    huge = encode_frame_header(ord("z"), 2**32 - 1)  # far beyond every payload limit
    decoder = StreamDecoder()
    decoder.feed(body[: _AT[2]] + huge)
    for _ in range(16):
        assert decoder.feed(bytes(65536)) == []
    with pytest.raises(TruncatedError, match="in the ancillary z frame \\(1048576 of 4294967295"):
        decoder.close()
    big = encode_frame(ord("b"), bytes(3 * 1048576))
    events = decode([body[: _AT[1]], big, body[_AT[1] :]])
    assert events == decode([body])


def test_large_file_in_small_pieces() -> None:
    """Linear time whatever the split: 4 MiB in 1 MiB frames, fed in 1000-byte pieces."""
    payload = bytes(range(256)) * 16384
    encoder = StreamEncoder()
    body = encoder.start(seed=1, count=1, params={})
    body += encoder.file_start(
        index=0, name="big", size=len(payload), dtype="int8", byteorder="big", offset=0
    )
    for start in range(0, len(payload), 1 << 20):
        body += encoder.data(payload[start : start + (1 << 20)])
    body += encoder.file_end(hashlib.sha256(payload).hexdigest()) + encoder.end()
    events = decode(body[i : i + 1000] for i in range(0, len(body), 1000))
    assert b"".join(e.data for e in events if isinstance(e, FileData)) == payload
