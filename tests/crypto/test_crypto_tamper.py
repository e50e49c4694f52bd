"""Every modification of a ciphertext is detected, with the error a user can act on.

The plaintext spans 4 chunks (the last one short). Each test checks the error class and
message, and that no plaintext of an unauthenticated chunk was ever released.
"""

from __future__ import annotations

import os

import pytest

from wirelab import IntegrityError, TruncatedError
from wirelab.crypto import (
    HEADER_SIZE,
    MIN_CHUNK_SIZE,
    TAG_SIZE,
    CorruptedChunkError,
    DecryptionError,
    Decryptor,
    NotEncryptedError,
    PrivateKey,
    PublicKey,
    TrailingDataError,
    TruncatedCiphertextError,
    WrongKeyError,
    decrypt_bytes,
    encrypt_bytes,
    generate_keypair,
)

CHUNK = MIN_CHUNK_SIZE
CT_CHUNK = CHUNK + TAG_SIZE
PLAINTEXT = os.urandom(3 * CHUNK + 100)


@pytest.fixture(scope="module")
def ct(public_key: PublicKey) -> bytes:
    return encrypt_bytes(PLAINTEXT, public_key, chunk_size=CHUNK)


def _chunk(index: int) -> slice:
    start = HEADER_SIZE + index * CT_CHUNK
    return slice(start, start + CT_CHUNK)


def _flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)


def _decrypt_chunkwise(ct: bytes, key: PrivateKey) -> tuple[bytes, DecryptionError]:
    """Feed header then chunk by chunk; return what was released before the error."""
    dec = Decryptor(key)
    released = b""
    pieces = [ct[:HEADER_SIZE]] + [
        ct[i : i + CT_CHUNK] for i in range(HEADER_SIZE, len(ct), CT_CHUNK)
    ]
    try:
        for piece in pieces:
            released += dec.feed(piece)
        dec.close()
    except DecryptionError as exc:
        return released, exc
    pytest.fail("the modification was not detected")


# -- header ---------------------------------------------------------------------------------

HEADER_REGIONS = [
    ("magic", 0, NotEncryptedError, "not a wirelab encrypted file"),
    ("magic", 7, NotEncryptedError, "not a wirelab encrypted file"),
    ("version", 8, NotEncryptedError, "unsupported encryption format version 0"),
    ("algorithm", 9, NotEncryptedError, "unsupported encryption algorithm"),
    ("reserved", 11, NotEncryptedError, "reserved bytes"),
    ("chunk size", 15, WrongKeyError, "wrong key or not encrypted for you"),
    ("plaintext size", 23, WrongKeyError, "wrong key or not encrypted for you"),
    ("ephemeral key", 30, WrongKeyError, "wrong key or not encrypted for you"),
    ("salt", 60, WrongKeyError, "wrong key or not encrypted for you"),
    ("mac", 100, WrongKeyError, "wrong key or not encrypted for you"),
]


@pytest.mark.parametrize(
    ("region", "offset", "error", "message"), HEADER_REGIONS, ids=[r[0] for r in HEADER_REGIONS]
)
def test_header_tampering(
    private_key: PrivateKey,
    ct: bytes,
    region: str,
    offset: int,
    error: type[DecryptionError],
    message: str,
) -> None:
    released, exc = _decrypt_chunkwise(_flip(ct, offset), private_key)
    assert released == b""
    assert type(exc) is error
    assert message in str(exc)


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [
        (12, b"\x00\x00\x03\xff", "chunk size must be between"),  # 1023: below the minimum
        (12, b"\xff\xff\xff\xff", "chunk size must be between"),  # 4 GiB chunks
        (16, b"\xff" * 8, "plaintext size must be between"),  # 16 EiB file
    ],
)
def test_absurd_header_sizes_are_rejected_before_use(
    private_key: PrivateKey, ct: bytes, offset: int, value: bytes, message: str
) -> None:
    bad = ct[:offset] + value + ct[offset + len(value) :]
    with pytest.raises(NotEncryptedError, match=message):
        Decryptor(private_key).feed(bad)


def test_plain_file_is_not_encrypted(private_key: PrivateKey) -> None:
    with pytest.raises(NotEncryptedError, match="not a wirelab encrypted file"):
        decrypt_bytes(b"%PDF-1.7\n" + bytes(200), private_key)


def test_low_order_ephemeral_key(private_key: PrivateKey, ct: bytes) -> None:
    bad = ct[:24] + bytes(32) + ct[56:]
    with pytest.raises(NotEncryptedError, match="invalid ephemeral public key"):
        decrypt_bytes(bad, private_key)


def test_wrong_recipient(ct: bytes) -> None:
    someone_else, _ = generate_keypair()
    released, exc = _decrypt_chunkwise(ct, someone_else)
    assert released == b""
    assert isinstance(exc, WrongKeyError)
    assert "wrong key or not encrypted for you" in str(exc)
    assert someone_else.public_key.to_base64() in str(exc)


# -- payload --------------------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 1, 3])
@pytest.mark.parametrize("where", ["first byte", "middle", "tag"])
def test_payload_byte_flipped(private_key: PrivateKey, ct: bytes, index: int, where: str) -> None:
    chunk = _chunk(index)
    end = min(chunk.stop, len(ct))
    offset = {"first byte": chunk.start, "middle": (chunk.start + end) // 2, "tag": end - 3}
    released, exc = _decrypt_chunkwise(_flip(ct, offset[where], 0x80), private_key)
    assert isinstance(exc, CorruptedChunkError)
    assert exc.chunk_index == index
    assert f"corrupted at chunk {index} of 4" in str(exc)
    assert released == PLAINTEXT[: index * CHUNK]  # the chunks before it, nothing more


def test_swapped_chunks(private_key: PrivateKey, ct: bytes) -> None:
    swapped = ct[: _chunk(1).start] + ct[_chunk(2)] + ct[_chunk(1)] + ct[_chunk(3).start :]
    assert len(swapped) == len(ct)
    released, exc = _decrypt_chunkwise(swapped, private_key)
    assert isinstance(exc, CorruptedChunkError)
    assert exc.chunk_index == 1
    assert released == PLAINTEXT[:CHUNK]


def test_duplicated_chunk(private_key: PrivateKey, ct: bytes) -> None:
    duplicated = ct[: _chunk(1).stop] + ct[_chunk(1)] + ct[_chunk(2).start :]
    released, exc = _decrypt_chunkwise(duplicated, private_key)
    assert isinstance(exc, CorruptedChunkError)
    assert exc.chunk_index == 2
    assert released == PLAINTEXT[: 2 * CHUNK]


def test_dropped_middle_chunk(private_key: PrivateKey, ct: bytes) -> None:
    dropped = ct[: _chunk(1).start] + ct[_chunk(2).start :]
    _, exc = _decrypt_chunkwise(dropped, private_key)
    assert isinstance(exc, CorruptedChunkError)
    assert exc.chunk_index == 1


def test_chunk_from_another_file(private_key: PrivateKey, public_key: PublicKey, ct: bytes) -> None:
    other = encrypt_bytes(PLAINTEXT, public_key, chunk_size=CHUNK)
    spliced = ct[: _chunk(2).start] + other[_chunk(2).start :]
    _, exc = _decrypt_chunkwise(spliced, private_key)
    assert isinstance(exc, CorruptedChunkError)
    assert exc.chunk_index == 2


@pytest.mark.parametrize("keep_chunks", [0, 1, 3])
def test_truncated_at_a_chunk_boundary(
    private_key: PrivateKey, ct: bytes, keep_chunks: int
) -> None:
    cut = ct[: HEADER_SIZE + keep_chunks * CT_CHUNK]  # keep_chunks=3 drops only the final one
    released, exc = _decrypt_chunkwise(cut, private_key)
    assert isinstance(exc, TruncatedCiphertextError)
    assert isinstance(exc, TruncatedError)
    assert "truncated" in str(exc)
    assert f"chunk {keep_chunks} of 4 is missing" in str(exc)
    assert released == PLAINTEXT[: keep_chunks * CHUNK]


@pytest.mark.parametrize("length", [0, 1, HEADER_SIZE - 1])
def test_truncated_inside_the_header(private_key: PrivateKey, ct: bytes, length: int) -> None:
    dec = Decryptor(private_key)
    assert dec.feed(ct[:length]) == b""
    with pytest.raises(TruncatedCiphertextError, match="truncated: received"):
        dec.close()


def test_truncated_inside_the_final_chunk(private_key: PrivateKey, ct: bytes) -> None:
    _, exc = _decrypt_chunkwise(ct[:-1], private_key)
    assert isinstance(exc, TruncatedCiphertextError)


@pytest.mark.parametrize("extra", [b"\x00", b"x" * 5000, None])
def test_appended_bytes(private_key: PrivateKey, ct: bytes, extra: bytes | None) -> None:
    tail = ct if extra is None else extra  # None: two files concatenated
    dec = Decryptor(private_key)
    assert dec.feed(ct) == PLAINTEXT
    with pytest.raises(TrailingDataError, match=f"{len(tail)} unexpected bytes"):
        dec.feed(tail)
    with pytest.raises(TrailingDataError):  # in one call, too: nothing is released
        Decryptor(private_key).feed(ct + tail)


def test_expected_size_mismatch_is_reported_at_the_header(
    private_key: PrivateKey, ct: bytes
) -> None:
    with pytest.raises(TruncatedCiphertextError, match="announces"):
        Decryptor(private_key, expected_size=len(ct) - 1).feed(ct[:HEADER_SIZE])
    with pytest.raises(TrailingDataError, match="7 unexpected bytes"):
        Decryptor(private_key, expected_size=len(ct) + 7).feed(ct[:HEADER_SIZE])


def test_errors_are_sticky_and_in_the_wirelab_tree(private_key: PrivateKey, ct: bytes) -> None:
    dec = Decryptor(private_key)
    with pytest.raises(CorruptedChunkError) as first:
        dec.feed(_flip(ct, _chunk(0).start))
    assert isinstance(first.value, IntegrityError)
    with pytest.raises(CorruptedChunkError) as again:
        dec.feed(b"")
    assert again.value is first.value
    with pytest.raises(CorruptedChunkError):
        dec.close()
