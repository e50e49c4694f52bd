"""``content=random`` keystreams (``wirelab.stream._keystream``): GCM past the first 32
bytes and cryptography's lower-level call must give the AES-128-CTR keystream of the spec,
the bytes the format pins, at every position and however the bytes are asked for."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import modes
from hypothesis import given
from hypothesis import strategies as st

from wirelab.stream import _content, _keystream
from wirelab.stream._content import CHUNK_SIZE
from wirelab.stream._keystream import GCM_MAX_BYTES, Keystream, keystream, random_key
from wirelab.stream._params import StreamParams


def _ctr(seed: int) -> object:
    return _keystream.public_context(random_key(seed), modes.CTR(bytes(16)))


def test_the_direct_call_is_available_with_this_cryptography() -> None:
    # Not a requirement of the format, but the cheaper set-up is what the server relies
    # on for short streams: a cryptography upgrade that removes it should be noticed.
    assert _keystream.DIRECT_MAKER is not None


@pytest.mark.parametrize("seed", [0, 1, 9, 2**32, 2**63 - 1, 123456789])
def test_the_keystream_is_the_public_ctr_keystream(seed: int) -> None:
    made, public = keystream(seed, 10**9, large_files=True), _ctr(seed)
    assert isinstance(made, Keystream)
    zeros = bytes(CHUNK_SIZE + 7)
    for _ in range(3):  # the counter carries on across updates in both
        assert made.update(zeros) == public.update(zeros)  # type: ignore[attr-defined]


@given(st.lists(st.tuples(st.integers(0, 3 * CHUNK_SIZE), st.booleans()), max_size=8))
def test_any_split_of_the_calls_gives_the_same_bytes(calls: list[tuple[int, bool]]) -> None:
    made, public = keystream(3, 10**9, large_files=True), _ctr(3)
    for n, into in calls:  # first ones below, across and past the 32 bytes from the table
        expected = public.update(bytes(n))  # type: ignore[attr-defined]
        if not into:
            assert made.update(bytes(n)) == expected
            continue
        out = bytearray(b"\xaa" * (n + 15))
        assert made.update_into(memoryview(bytes(n)), out) == n
        assert bytes(out[:n]) == expected
        assert out[n:] == b"\xaa" * 15  # nothing past the bytes asked for


def test_a_stream_longer_than_gcm_allows_uses_ctr() -> None:
    # GCM makes bytes 32 on, and its 32-bit counter (from 2) must not wrap.
    assert isinstance(keystream(5, GCM_MAX_BYTES + 32, large_files=True), Keystream)
    made = keystream(5, GCM_MAX_BYTES + 33, large_files=True)
    assert not isinstance(made, Keystream)
    assert made.update(bytes(100)) == _ctr(5).update(bytes(100))  # type: ignore[attr-defined]


def test_pinned_bytes_of_seed_9() -> None:
    """The first bytes of seed 9's keystream, as docs/protocol/stream.md defines them."""
    for large_files in (False, True):  # CTR, GCM
        made = keystream(9, 10**6, large_files=large_files)
        assert made.update(bytes(16)).hex() == "672044359332655cd2c8a69ed70f5145"


def test_streams_of_files_of_one_chunk_or_less_get_ctr() -> None:
    small = _content.ContentSource(StreamParams(max_size=CHUNK_SIZE), 5)
    large = _content.ContentSource(StreamParams(max_size=CHUNK_SIZE + 2), 5)
    assert not isinstance(small._keystream, Keystream)
    assert isinstance(large._keystream, Keystream)


@pytest.mark.parametrize(
    ("content", "dtype", "digest"),
    [
        ("random", "int16", "blake3"),  # the specialized closure
        ("random", "int16", "sha256"),
        ("random", "float32", "blake3"),
        ("sine", "int16", "blake3"),
    ],
)
def test_small_file_maker_gives_small_files_bytes_and_digests(
    content: str, dtype: str, digest: str
) -> None:
    from wirelab.stream._bodies import small_file, small_file_maker
    from wirelab.stream._params import StreamParams

    params = StreamParams(content=content, dtype=dtype, digest=digest)  # type: ignore[arg-type]
    sizes = [1024, 4096, 0, 2048, CHUNK_SIZE, 8]
    made = small_file_maker(_content.ContentSource(params, 7), digest)
    reference = _content.ContentSource(params, 7)
    for size in sizes:
        body, hexdigest = made(size)
        body = bytes(body)  # a view of the scratch buffer: the reference overwrites it
        expected_body, expected_digest = small_file(reference, size, digest)
        assert (body, hexdigest) == (bytes(expected_body), expected_digest)
        assert len(body) == size
