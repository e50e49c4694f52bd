"""StreamEncoder: byte output and every misuse it must refuse."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wirelab import UsageError
from wirelab.framing import (
    MAX_DATA_PAYLOAD,
    PREAMBLE,
    FrameType,
    StreamDecoder,
    StreamEncoder,
    encode_frame_header,
    encode_json_frame,
)
from wirelab.framing._start import StartTemplate

SHA_EMPTY = hashlib.sha256(b"").hexdigest()


def file_kwargs(index: Any = 0, size: Any = 4, **changes: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "index": index,
        "name": f"{index:06d}.int16",
        "size": size,
        "dtype": "int16",
        "byteorder": "little",
        "offset": 0.5,
    }
    kwargs.update(changes)
    return kwargs


def started(count: int = 2) -> StreamEncoder:
    encoder = StreamEncoder()
    encoder.start(seed=7, count=count, params={"speed": 1.0})
    return encoder


def in_file(size: int = 4, count: int = 2) -> StreamEncoder:
    encoder = started(count)
    encoder.file_start(**file_kwargs(size=size))
    return encoder


def payload(frame: bytes) -> Any:
    return json.loads(frame[5:])


def test_start_writes_preamble_and_ordered_s_frame() -> None:
    out = StreamEncoder().start(seed=7, count=2, params={"b": 1, "a": 2})
    assert out.startswith(PREAMBLE + b"S")
    expected = b'{"version":3,"seed":7,"count":2,"digest":"sha256","params":{"b":1,"a":2}}'
    assert out[8 + 5 :] == expected
    assert int.from_bytes(out[9:13], "big") == len(out) - 13


def test_frames_and_member_order() -> None:
    encoder = started(1)
    f_frame = encoder.file_start(**file_kwargs(size=4))
    assert f_frame[:1] == b"F"
    assert list(payload(f_frame)) == ["index", "name", "size", "dtype", "byteorder", "offset"]
    assert encoder.data(b"ab") == b"D\x00\x00\x00\x02ab"
    assert encoder.data_header(2) == encode_frame_header(0x44, 2)
    digest = hashlib.sha256(b"abcd").hexdigest()
    e_frame = encoder.file_end(digest)
    assert e_frame[:1] == b"E"
    assert payload(e_frame) == {"index": 0, "sha256": digest}
    z_frame = encoder.end()
    assert z_frame == b"Z\x00\x00\x00\x15" + b'{"count":1,"bytes":4}'
    assert (encoder.finished, encoder.files_completed, encoder.total_bytes) == (True, 1, 4)


def test_data_accepts_buffers_and_empty_chunks() -> None:
    encoder = in_file(size=4)
    assert encoder.data(bytearray(b"a")) == b"D\x00\x00\x00\x01a"
    assert encoder.data(memoryview(b"bcd")) == b"D\x00\x00\x00\x03bcd"
    assert encoder.data(b"") == b"D\x00\x00\x00\x00"


def test_numpy_scalars_are_accepted() -> None:
    encoder = StreamEncoder()
    encoder.start(seed=np.uint64(3), count=np.int64(1), params={})  # type: ignore[arg-type]
    frame = encoder.file_start(
        **file_kwargs(index=np.int32(0), size=np.int64(2), offset=np.float32(0.5), name="n")
    )
    assert frame == started(1).file_start(**file_kwargs(size=2, name="n", offset=0.5))


def test_abort_between_files_inside_a_file_and_long_message() -> None:
    assert payload(started().abort("shutdown", "bye")) == {"error": "shutdown", "message": "bye"}
    encoder = in_file()
    encoder.data(b"ab")
    long = encoder.abort("internal", "x" * 100_000)
    message = payload(long)["message"]
    assert len(message) == 4096
    assert message.endswith("…")
    assert encoder.finished


def test_zero_files() -> None:
    encoder = started(0)
    assert payload(encoder.end()) == {"count": 0, "bytes": 0}


def test_output_decodes() -> None:
    encoder = StreamEncoder()
    body = encoder.start(seed=1, count=2, params={})
    body += encoder.file_start(**file_kwargs(0, size=2)) + encoder.data(b"hi")
    body += encoder.file_end(hashlib.sha256(b"hi").hexdigest())
    body += encoder.file_start(**file_kwargs(1, size=0)) + encoder.file_end(SHA_EMPTY)
    body += encoder.end()
    decoder = StreamDecoder()
    assert len(decoder.feed(body)) == 7
    decoder.close()


# -- misuse: (setup, action, message fragment) -------------------------------------------------

Misuse = tuple[Callable[[], StreamEncoder], Callable[[StreamEncoder], object], str]

MISUSE: dict[str, Misuse] = {
    "file_start before start": (
        StreamEncoder,
        lambda e: e.file_start(**file_kwargs()),
        "file_start() called before start()",
    ),
    "data before start": (StreamEncoder, lambda e: e.data(b"x"), "called before start()"),
    "abort before start": (StreamEncoder, lambda e: e.abort("a", "b"), "before start()"),
    "end before start": (StreamEncoder, lambda e: e.end(), "end() called before start()"),
    "start twice": (started, lambda e: e.start(seed=1, count=1, params={}), "start() called"),
    "data between files": (started, lambda e: e.data(b"x"), "data_header() called between"),
    "data_header between files": (started, lambda e: e.data_header(0), "between files"),
    "file_end between files": (started, lambda e: e.file_end(SHA_EMPTY), "between files"),
    "file_start inside a file": (
        in_file,
        lambda e: e.file_start(**file_kwargs(1)),
        "inside file 0 (call file_end() first)",
    ),
    "end inside a file": (in_file, lambda e: e.end(), "end() called inside file 0"),
    "first index not 0": (started, lambda e: e.file_start(**file_kwargs(1)), "index 1, expected 0"),
    "bool index": (started, lambda e: e.file_start(**file_kwargs(False)), "expected 0"),
    "too many files": (
        lambda: started(0),
        lambda e: e.file_start(**file_kwargs()),
        "announced only 0 files",
    ),
    "end with too few files": (started, lambda e: e.end(), "end() after 0 of 2 files"),
    "chunk over the limit": (
        lambda: in_file(size=2 * MAX_DATA_PAYLOAD),
        lambda e: e.data(bytes(MAX_DATA_PAYLOAD + 1)),
        "must be in 0..1048576",
    ),
    "negative length": (in_file, lambda e: e.data_header(-1), "must be in 0..1048576"),
    "float length": (in_file, lambda e: e.data_header(1.0), "must be an integer"),  # type: ignore[arg-type]
    "data over the size": (
        in_file,
        lambda e: e.data(b"12345"),
        "5 data bytes exceed its size of 4",
    ),
    "file_end short": (in_file, lambda e: e.file_end(SHA_EMPTY), "file 0 got 0 of 4 bytes"),
    "uppercase digest": (
        lambda: in_file(size=0),
        lambda e: e.file_end(SHA_EMPTY.upper()),
        "64 lowercase hex digits",
    ),
    "short digest": (lambda: in_file(size=0), lambda e: e.file_end("abc"), "64 lowercase hex"),
    "negative seed": (
        StreamEncoder,
        lambda e: e.start(seed=-1, count=1, params={}),
        "'seed' must be a non-negative integer",
    ),
    "bool count": (
        StreamEncoder,
        lambda e: e.start(seed=1, count=True, params={}),
        "'count' must be a non-negative integer",
    ),
    "unserialisable params": (
        StreamEncoder,
        lambda e: e.start(seed=1, count=1, params={"x": {1, 2}}),
        "not valid JSON",
    ),
    "params not a mapping": (
        StreamEncoder,
        lambda e: e.start(seed=1, count=1, params=[("a", 1)]),  # type: ignore[arg-type]
        "'params' must be an object",
    ),
    "unsafe name": (
        started,
        lambda e: e.file_start(**file_kwargs(name="../etc")),
        "'name' must be a plain file name",
    ),
    "unknown dtype": (
        started,
        lambda e: e.file_start(**file_kwargs(dtype="int64")),
        "'dtype' must be one of",
    ),
    "bad byteorder": (
        started,
        lambda e: e.file_start(**file_kwargs(byteorder="native")),
        "'byteorder' must be one of",
    ),
    "size not a multiple of the width": (
        started,
        lambda e: e.file_start(**file_kwargs(size=3)),
        "'size' must be a multiple of 2",
    ),
    "nan offset": (
        started,
        lambda e: e.file_start(**file_kwargs(offset=float("nan"))),
        "'offset' must be a non-negative number",
    ),
    "negative offset": (
        started,
        lambda e: e.file_start(**file_kwargs(offset=-0.5)),
        "'offset' must be a non-negative number",
    ),
    "abort with a non-string": (started, lambda e: e.abort("x", 5), "'message' must be a string"),  # type: ignore[arg-type]
}


def _finished() -> StreamEncoder:
    encoder = started(0)
    encoder.end()
    return encoder


def _aborted() -> StreamEncoder:
    encoder = in_file()
    encoder.abort("shutdown", "bye")
    return encoder


for _setup in (_finished, _aborted):
    for _name, _call in {
        "start": lambda e: e.start(seed=1, count=1, params={}),
        "file_start": lambda e: e.file_start(**file_kwargs()),
        "data_header": lambda e: e.data_header(0),
        "file_end": lambda e: e.file_end(SHA_EMPTY),
        "end": lambda e: e.end(),
        "abort": lambda e: e.abort("a", "b"),
    }.items():
        MISUSE[f"{_name} after {_setup.__name__[1:]}"] = (_setup, _call, "after the stream ended")


@pytest.mark.parametrize(("setup", "action", "fragment"), MISUSE.values(), ids=list(MISUSE))
def test_misuse_raises_usage_error_and_changes_nothing(
    setup: Callable[[], StreamEncoder], action: Callable[[StreamEncoder], object], fragment: str
) -> None:
    encoder = setup()
    before = (encoder.finished, encoder.files_completed, encoder.total_bytes)
    with pytest.raises(UsageError) as info:
        action(encoder)
    assert fragment in str(info.value)
    assert (encoder.finished, encoder.files_completed, encoder.total_bytes) == before


def test_failed_calls_leave_the_encoder_usable() -> None:
    encoder = in_file(size=4, count=1)
    with pytest.raises(UsageError):
        encoder.data(b"12345")
    encoder.data(b"1234")  # the refused chunk was not counted
    with pytest.raises(UsageError):
        encoder.file_end("nope")
    encoder.file_end(hashlib.sha256(b"1234").hexdigest())
    encoder.end()


@given(
    files=st.lists(
        st.tuples(
            st.text(
                alphabet=st.characters(blacklist_characters="/\\\x00", blacklist_categories=["Cs"]),
                min_size=1,
                max_size=12,
            ).filter(lambda n: n not in (".", "..")),
            st.integers(0, 40).map(lambda n: n * 4),
            st.sampled_from(["int8", "int16", "int32", "float32"]),
            st.sampled_from(["little", "big"]),
            st.floats(0, 1e9, allow_nan=False, allow_infinity=False),
        ),
        max_size=4,
    )
)
def test_unvalidated_encoder_emits_the_same_bytes(
    files: list[tuple[str, int, str, str, float]],
) -> None:
    """validate=False is a fast path only: every frame is byte-identical."""
    fast, checked = StreamEncoder(validate=False), StreamEncoder()
    outputs: list[tuple[bytes, bytes]] = []
    outputs.append(
        (fast.start(seed=1, count=len(files), params={}),
         checked.start(seed=1, count=len(files), params={}))
    )  # fmt: skip
    for index, (name, size, dtype, byteorder, offset) in enumerate(files):
        args = {"index": index, "name": name, "size": size, "dtype": dtype,
                "byteorder": byteorder, "offset": offset}  # fmt: skip
        outputs.append((fast.file_start(**args), checked.file_start(**args)))  # type: ignore[arg-type]
        outputs.append((fast.data(bytes(size)), checked.data(bytes(size))))
        digest = hashlib.sha256(bytes(size)).hexdigest()
        outputs.append((fast.file_end(digest), checked.file_end(digest)))
    outputs.append((fast.end(), checked.end()))
    for got, expected in outputs:
        assert got == expected


_PARAM_VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.lists(st.integers(0, 9), max_size=3),  # unhashable: formatted without the cache
)


#: The arguments of a stream's start, several seeds for the same members.
_STARTS: dict[str, st.SearchStrategy[Any]] = {
    "seeds": st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=4),
    "count": st.integers(0, 10**6),
    "params": st.dictionaries(st.text(max_size=6), _PARAM_VALUES, max_size=5),
    "digest": st.sampled_from(["blake3", "sha256"]),
    "seed_in_params": st.booleans(),
}


@given(**_STARTS)
def test_unvalidated_start_is_byte_identical_for_any_seed(
    seeds: list[int], count: int, params: dict[str, Any], digest: str, seed_in_params: bool
) -> None:
    """The S frame of a trusted sender comes from a template cached per members without
    the seed: every seed (several per template) gives the bytes json.dumps gives."""
    for seed in seeds:
        members = {**params, "seed": seed} if seed_in_params else params
        fast = StreamEncoder(validate=False).start(
            seed=seed, count=count, params=members, digest=digest
        )
        obj = {"version": 3, "seed": seed, "count": count, "digest": digest, "params": members}
        assert fast == PREAMBLE + encode_json_frame(FrameType.STREAM, obj)


def test_unvalidated_start_keeps_a_float_seed_member_apart() -> None:
    """Only an int equal to the seed stands for the seed: 5.0 and True stay as they are."""
    as_float = StreamEncoder(validate=False).start(seed=5, count=1, params={"seed": 5.0})
    as_bool = StreamEncoder(validate=False).start(seed=1, count=1, params={"seed": True})
    assert as_float.endswith(b'"params":{"seed":5.0}}')
    assert as_bool.endswith(b'"params":{"seed":true}}')


def test_unvalidated_start_refuses_what_json_refuses() -> None:
    with pytest.raises(UsageError, match="not valid JSON"):
        StreamEncoder(validate=False).start(seed=1, count=1, params={"x": math.nan})
    with pytest.raises(UsageError, match="not valid JSON"):  # past int's digit limit
        StreamEncoder(validate=False).start(seed=1, count=1, params={"x": 10**5000})
    with pytest.raises(UsageError, match="exceeds the limit"):
        StreamEncoder(validate=False).start(seed=1, count=1, params={"x": "a" * 70_000})


@pytest.mark.parametrize(
    "values",
    [
        (1, 1.0, True),  # equal and of equal hash, but written 1, 1.0 and true
        (0, 0.0, -0.0, False),  # 0.0 == -0.0, written apart
        ((1,), (1.0,), (True,)),  # equal tuples of differently written items
    ],
)
def test_unvalidated_start_keeps_equal_members_of_other_types_apart(
    values: tuple[Any, ...],
) -> None:
    """The cached S template must not serve a member that compares equal but is written
    differently (the cache key holds the value's type, not only the value)."""
    for _ in range(2):  # the second round is served from the cache
        for value in values:
            fast = StreamEncoder(validate=False).start(seed=7, count=1, params={"x": value})
            expected = json.dumps({"x": value}, separators=(",", ":")).encode()
            assert fast.endswith(b'"params":' + expected + b"}"), (value, fast)


@given(**_STARTS, validate=st.booleans())
def test_start_from_a_template_is_start(
    seeds: list[int],
    count: int,
    params: dict[str, Any],
    digest: str,
    seed_in_params: bool,
    validate: bool,
) -> None:
    """One template serves every seed: the bytes and the encoder's state are start()'s
    with the template's params, their member ``seed`` set to the stream's seed."""
    members = {**params, "seed": None} if seed_in_params else params
    template = StartTemplate(count=count, params=members, digest=digest, version=3)
    for seed in seeds:
        expected_members = {**params, "seed": seed} if seed_in_params else params
        ours, theirs = StreamEncoder(validate=validate), StreamEncoder(validate=validate)
        try:
            expected = theirs.start(seed=seed, count=count, params=expected_members, digest=digest)
        except UsageError as exc:  # a validating encoder refuses some members
            with pytest.raises(UsageError, match=re.escape(str(exc))):
                ours.start_from(template, seed)
            continue
        assert ours.start_from(template, seed) == expected
        assert ours.end() == theirs.end() if count == 0 else ours.files_completed == 0


@pytest.mark.parametrize(
    "params",
    [
        {"x": "\x00seed\x00", "seed": 1},  # the mark itself as a member: formatted whole
        {"x": [1, 2], "seed": 1},  # a container: formatted whole
        {"x": math.nan},  # refused by JSON, as start() refuses it
        {"x": "a" * 70_000},  # past the payload limit
    ],
)
def test_start_from_formats_whole_what_no_template_stands_for(params: dict[str, Any]) -> None:
    """Members no template can stand for give the bytes (or the error) of json.dumps, with
    a template as with start()."""
    template = StartTemplate(count=1, params=params, digest="blake3", version=3)
    members = {**params, "seed": 5} if "seed" in params else params
    obj = {"version": 3, "seed": 5, "count": 1, "digest": "blake3", "params": members}
    try:
        expected = PREAMBLE + encode_json_frame(FrameType.STREAM, obj)
    except UsageError as exc:
        with pytest.raises(UsageError, match=re.escape(str(exc))):
            StreamEncoder(validate=False).start_from(template, 5)
        with pytest.raises(UsageError, match=re.escape(str(exc))):
            StreamEncoder(validate=False).start(seed=5, count=1, params=members, digest="blake3")
        return
    for _ in range(2):  # start()'s second round comes from its cache
        assert StreamEncoder(validate=False).start_from(template, 5) == expected
        fast = StreamEncoder(validate=False).start(seed=5, count=1, params=members, digest="blake3")
        assert fast == expected


def test_start_from_checks_what_start_checks() -> None:
    template = StartTemplate(count=1, params={}, digest="md5", version=2)
    with pytest.raises(UsageError, match="digest 'md5' is not available"):
        StreamEncoder(validate=False).start_from(template, 1)
    encoder = StreamEncoder(validate=False)
    encoder.start_from(StartTemplate(count=1, params={}, digest="blake3", version=2), 1)
    with pytest.raises(UsageError, match="start\\(\\) called between files"):
        encoder.start_from(StartTemplate(count=1, params={}, digest="blake3", version=2), 1)
    old = StreamEncoder(validate=False, version=1)  # a template of another version: start()
    v2 = StartTemplate(count=1, params={}, digest="sha256", version=2)
    assert old.start_from(v2, 3) == StreamEncoder(validate=False, version=1).start(
        seed=3, count=1, params={}, digest="sha256"
    )


def _four_calls(encoder: StreamEncoder, body: bytes, digest: str, end: bool, **kw: Any) -> bytes:
    out = encoder.file_start(**kw)
    out += encoder.data(body) if body else b""  # no D frame for an empty file
    out += encoder.file_end(digest)
    return out + encoder.end() if end else out


@pytest.mark.parametrize("validate", [True, False])
@given(
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=4),
    offset=st.floats(0, 2e9, allow_nan=False) | st.sampled_from([0.0, 1e-5, 0.5, 1e-4]),
    round_offset=st.booleans(),
)
def test_whole_file_is_the_four_calls(
    validate: bool, sizes: list[int], offset: float, round_offset: bool
) -> None:
    # Two encoders fed the same stream, one file at a time, give the same bytes.
    one, four = (StreamEncoder(validate=validate) for _ in range(2))
    for encoder in (one, four):
        encoder.start(seed=1, count=len(sizes), params={}, digest="blake3")
    for index, size in enumerate(sizes):
        kw = file_kwargs(index, 2 * size, offset=offset)
        body, end = memoryview(bytes(range(256)) * 3)[: 2 * size], index == len(sizes) - 1
        written = round(offset, 6) if round_offset else offset
        expected = _four_calls(four, bytes(body), "ab" * 32, end, **{**kw, "offset": written})
        got = one.whole_file(**kw, body=body, digest_hex="ab" * 32, end=end,
                             round_offset=round_offset)  # fmt: skip
        assert got == expected
    assert one.finished and one.total_bytes == four.total_bytes


@pytest.mark.parametrize("validate", [True, False])
def test_whole_file_misuse_raises_and_changes_nothing(validate: bool) -> None:
    encoder = StreamEncoder(validate=validate)
    encoder.start(seed=1, count=1, params={}, digest="sha256")
    bad: list[dict[str, Any]] = [
        {**file_kwargs(1, 4), "body": b"abcd"},  # wrong index
        {**file_kwargs(0, 4), "body": b"abc"},  # body shorter than size
        # checked only when validating, as file_start and file_end do
        {**file_kwargs(0, 3), "body": b"abc"} if validate else {},  # not whole int16 samples
        {**file_kwargs(0, 4), "body": b"abcd", "digest_hex": "short"} if validate else {},
    ]
    for kw in filter(None, bad):
        kw.setdefault("digest_hex", SHA_EMPTY)
        with pytest.raises(UsageError):
            encoder.whole_file(**kw)
    frames = encoder.whole_file(**file_kwargs(0, 4), body=b"abcd", digest_hex=SHA_EMPTY, end=True)
    assert encoder.finished and encoder.files_completed == 1
    assert frames.endswith(encoder_end_frame(1, 4))


def encoder_end_frame(count: int, total: int) -> bytes:
    return encode_json_frame(FrameType.END, {"count": count, "bytes": total})


@given(st.floats(0, 1e10, allow_nan=False) | st.integers(0, 10**6) | st.sampled_from(
    [0.0, -0.0, 1e-4, 9.99999e-5, 5e-5, 0.5, 999999999.9999995, 1e9, 123.0000004]
))  # fmt: skip
def test_offsets_rounded_to_microseconds_are_written_as_repr_of_round(offset: float) -> None:
    from wirelab.framing._encoder import _microseconds_json

    assert _microseconds_json(offset) == repr(round(float(offset), 6))
