"""Digest agility (stream format version 2) and old version 1 captures."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import blake3
import pytest

from wirelab import IntegrityError, ProtocolError, UsageError
from wirelab.framing import (
    FileEnded,
    StreamDecoder,
    StreamEncoder,
    StreamEnded,
    StreamStarted,
    encode_json_frame,
)

HASHES: dict[str, Callable[[bytes], str]] = {
    "blake3": lambda data: blake3.blake3(data).hexdigest(),
    "sha256": lambda data: hashlib.sha256(data).hexdigest(),
}
FILES = [b"abcd" * 1000, b"", bytes(range(256)) * 300]
# Every (version, algorithm) pair a decoder must read: version 1 knows only SHA-256.
FORMS = [(2, "blake3"), (2, "sha256"), (1, "sha256")]


def decode(decoder: StreamDecoder, data: bytes) -> None:
    """Feed all of ``data`` and close: errors found in a feed are raised by then."""
    decoder.feed(data)
    decoder.feed(b"")
    decoder.close()


def body(version: int, algorithm: str, corrupt: int | None = None) -> bytes:
    """A stream of FILES; file ``corrupt`` declares the digest of other bytes."""
    encoder = StreamEncoder(version=version)
    out = [encoder.start(seed=3, count=len(FILES), params={}, digest=algorithm)]
    for index, data in enumerate(FILES):
        out.append(encoder.file_start(index=index, name=f"{index:06d}.int8", size=len(data),
                                      dtype="int8", byteorder="little", offset=0.0))  # fmt: skip
        out.append(encoder.data(data))
        declared = data + b"!" if index == corrupt else data
        out.append(encoder.file_end(HASHES[algorithm](declared)))
    out.append(encoder.end())
    return b"".join(out)


@pytest.mark.parametrize(("version", "algorithm"), FORMS)
def test_round_trip_verifies_with_the_named_algorithm(version: int, algorithm: str) -> None:
    decoder = StreamDecoder()
    events = decoder.feed(body(version, algorithm))
    decoder.close()
    assert events[0] == StreamStarted(version, 3, len(FILES), {}, digest=algorithm)
    ends = [e for e in events if isinstance(e, FileEnded)]
    assert ends == [FileEnded(i, HASHES[algorithm](d), algorithm) for i, d in enumerate(FILES)]
    assert events[-1] == StreamEnded(len(FILES), sum(map(len, FILES)))


@pytest.mark.parametrize(("version", "algorithm"), FORMS)
def test_mismatch_is_detected_for_each_algorithm(version: int, algorithm: str) -> None:
    decoder = StreamDecoder()
    with pytest.raises(IntegrityError, match=f"file 2: {algorithm} mismatch"):
        decode(decoder, body(version, algorithm, corrupt=2))
    assert decoder.files_completed == 2
    # Without verification the declared digest passes (still well-formed).
    unverified = StreamDecoder(verify=False)
    unverified.feed(body(version, algorithm, corrupt=2))
    unverified.close()


def test_the_other_algorithm_s_digest_does_not_verify() -> None:
    """A BLAKE3 stream whose E frames carry SHA-256 values fails: no silent fallback."""
    encoder = StreamEncoder()
    out = encoder.start(seed=1, count=1, params={}, digest="blake3")
    out += encoder.file_start(index=0, name="a", size=2, dtype="int8", byteorder="big", offset=0)
    out += encoder.data(b"hi") + encoder.file_end(HASHES["sha256"](b"hi"))
    with pytest.raises(IntegrityError, match="blake3 mismatch"):
        decode(StreamDecoder(), out)


def _s(obj: dict[str, object]) -> bytes:
    return StreamEncoder().start(seed=0, count=0, params={})[:8] + encode_json_frame(0x53, obj)


@pytest.mark.parametrize(
    ("s_obj", "fragment"),
    [
        ({"version": 2, "seed": 0, "count": 1, "params": {}}, "missing member 'digest'"),
        ({"version": 2, "seed": 0, "count": 1, "digest": "md5", "params": {}},
         "'digest' must be one of blake3, sha256"),
        ({"version": 2, "seed": 0, "count": 1, "digest": 1, "params": {}}, "'digest' must be"),
        ({"version": 4, "seed": 0, "count": 1, "digest": "blake3", "params": {}},
         "unsupported stream version 4"),
    ],
)  # fmt: skip
def test_stream_header_digest_is_checked(s_obj: dict[str, object], fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment):
        decode(StreamDecoder(), _s(s_obj))


def test_end_frame_must_use_the_stream_s_member() -> None:
    """In a BLAKE3 stream an E frame with only ``sha256`` lacks its digest."""
    head = _s({"version": 2, "seed": 0, "count": 1, "digest": "blake3", "params": {}})
    f = encode_json_frame(0x46, {"index": 0, "name": "a", "size": 0, "dtype": "int8",
                                 "byteorder": "big", "offset": 0})  # fmt: skip
    e = encode_json_frame(0x45, {"index": 0, "sha256": HASHES["sha256"](b"")})
    with pytest.raises(ProtocolError, match="E frame: missing member 'blake3'"):
        decode(StreamDecoder(), head + f + e)


def test_version_1_ignores_a_digest_member() -> None:
    """Version 1 had no ``digest``: an unknown member, ignored; SHA-256 still applies."""
    head = _s({"version": 1, "seed": 0, "count": 0, "digest": "blake3", "params": {}})
    events = StreamDecoder().feed(head)
    assert events == [StreamStarted(1, 0, 0, {}, digest="sha256")]


def test_encoder_refuses_what_its_version_cannot_carry() -> None:
    with pytest.raises(UsageError, match="digest 'blake3' is not available in version 1"):
        StreamEncoder(version=1).start(seed=0, count=0, params={}, digest="blake3")
    with pytest.raises(UsageError, match="digest 'md5'"):
        StreamEncoder().start(seed=0, count=0, params={}, digest="md5")
    with pytest.raises(UsageError, match="stream version must be one of"):
        StreamEncoder(version=4)
    encoder = StreamEncoder()
    encoder.start(seed=0, count=1, params={}, digest="blake3")
    encoder.file_start(index=0, name="a", size=0, dtype="int8", byteorder="big", offset=0)
    with pytest.raises(UsageError, match="'blake3' must be 64 lowercase hex digits"):
        encoder.file_end("0" * 63)
