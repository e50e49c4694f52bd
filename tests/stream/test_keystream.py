"""``content=random`` keystreams are made with cryptography's lower-level call when it is
available; it must give the public API's keystream (the format pins those bytes)."""

from __future__ import annotations

import pytest

from wirelab.stream import _content
from wirelab.stream._content import CHUNK_SIZE, random_key


def test_the_direct_call_is_available_with_this_cryptography() -> None:
    # Not a requirement of the format, but the cheaper set-up is what the server relies
    # on for short streams: a cryptography upgrade that removes it should be noticed.
    assert _content._DIRECT_KEYSTREAM is not None


@pytest.mark.parametrize("seed", [0, 1, 9, 2**32, 2**63 - 1, 123456789])
def test_direct_and_public_keystreams_are_the_same(seed: int) -> None:
    direct = _content._keystream(seed)
    public = _content._public_keystream(random_key(seed))
    zeros = bytes(CHUNK_SIZE + 7)
    for _ in range(3):  # the counter carries on across updates in both
        assert direct.update(zeros) == public.update(zeros)


def test_pinned_bytes_of_seed_9() -> None:
    """The first bytes of seed 9's keystream, as docs/protocol/stream.md defines them."""
    assert _content._keystream(9).update(bytes(16)).hex() == "672044359332655cd2c8a69ed70f5145"


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
