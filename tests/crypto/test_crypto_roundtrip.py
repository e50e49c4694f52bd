"""Round trips, determinism of a saved state, resume from any offset, incremental feeding."""

from __future__ import annotations

import itertools
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wirelab import UsageError
from wirelab.crypto import (
    HEADER_SIZE,
    MIN_CHUNK_SIZE,
    TAG_SIZE,
    Decryptor,
    Encryptor,
    PrivateKey,
    PublicKey,
    decrypt_bytes,
    encrypt_bytes,
)

CHUNK = MIN_CHUNK_SIZE
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 4 * CHUNK + 123, 5 * CHUNK]


def _ciphertext(enc: Encryptor, plaintext: bytes, start: int = 0) -> bytes:
    return b"".join(enc.iter_ciphertext(lambda o, n: plaintext[o : o + n], start))


def _feed_in_pieces(dec: Decryptor, ct: bytes, piece: int) -> bytes:
    out = b"".join(dec.feed(ct[i : i + piece]) for i in range(0, len(ct), piece))
    dec.close()
    return out


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("piece", [1, 7, CHUNK + TAG_SIZE, 10**9])
def test_round_trip(private_key: PrivateKey, public_key: PublicKey, size: int, piece: int) -> None:
    plaintext = os.urandom(size)
    ct = encrypt_bytes(plaintext, public_key, chunk_size=CHUNK)
    dec = Decryptor(private_key)
    assert _feed_in_pieces(dec, ct, piece) == plaintext
    assert dec.finished
    assert dec.plaintext_size == size


def test_round_trip_default_chunk_size(private_key: PrivateKey, public_key: PublicKey) -> None:
    plaintext = os.urandom(3 * 64 * 1024 + 5)
    ct = encrypt_bytes(plaintext, public_key)
    assert len(ct) == HEADER_SIZE + len(plaintext) + 4 * TAG_SIZE
    assert decrypt_bytes(ct, private_key) == plaintext


@settings(max_examples=60, deadline=None)
@given(
    plaintext=st.binary(max_size=4 * CHUNK + 3),
    cuts=st.lists(st.integers(min_value=0, max_value=5 * CHUNK), max_size=8),
)
def test_round_trip_any_split(
    private_key: PrivateKey, public_key: PublicKey, plaintext: bytes, cuts: list[int]
) -> None:
    ct = encrypt_bytes(plaintext, public_key, chunk_size=CHUNK)
    bounds = [0, *sorted(c for c in cuts if c < len(ct)), len(ct)]
    dec = Decryptor(private_key, expected_size=len(ct))
    out = b"".join(dec.feed(ct[a:b]) for a, b in itertools.pairwise(bounds))
    dec.close()
    assert out == plaintext


def test_fresh_encryptors_differ(public_key: PublicKey) -> None:
    a = encrypt_bytes(b"same", public_key, chunk_size=CHUNK)
    b = encrypt_bytes(b"same", public_key, chunk_size=CHUNK)
    assert a != b
    assert a[24:56] != b[24:56]  # ephemeral key
    assert a[56:88] != b[56:88]  # salt


def test_saved_state_reproduces_the_same_bytes(public_key: PublicKey) -> None:
    plaintext = os.urandom(3 * CHUNK + 9)
    enc = Encryptor(public_key, len(plaintext), chunk_size=CHUNK)
    state = json.loads(json.dumps(enc.state()))  # as a client would persist it
    assert all(isinstance(v, str) for v in state.values())
    again = Encryptor.from_state(state)
    assert again.header == enc.header
    assert _ciphertext(again, plaintext) == _ciphertext(enc, plaintext)
    assert again.state() == enc.state()


def test_explicit_ephemeral_and_salt_are_deterministic(public_key: PublicKey) -> None:
    eph, salt = PrivateKey.generate(), os.urandom(32)
    a = Encryptor(public_key, 10, chunk_size=CHUNK, ephemeral=eph, salt=salt)
    b = Encryptor(public_key, 10, chunk_size=CHUNK, ephemeral=eph, salt=salt)
    assert _ciphertext(a, b"0123456789") == _ciphertext(b, b"0123456789")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.pop("salt"),
        lambda s: s.update(extra="1"),
        lambda s: s.update(format="wirelab-encryptor-v9"),
        lambda s: s.update(salt="zz"),
        lambda s: s.update(salt="00" * 31),
        lambda s: s.update(chunk_size="ten"),
        lambda s: s.update(chunk_size="10"),
        lambda s: s.update(ephemeral="short"),
        lambda s: s.update(recipient="A" * 44),
    ],
)
def test_from_state_rejects_malformed_state(public_key: PublicKey, mutate: object) -> None:
    state = Encryptor(public_key, 10, chunk_size=CHUNK).state()
    mutate(state)  # type: ignore[operator]
    with pytest.raises(UsageError):
        Encryptor.from_state(state)


def _offset_classes(enc: Encryptor) -> list[int]:
    """Every kind of resume point: header, chunk starts, middles, ends, the very end."""
    offsets = {0, 1, HEADER_SIZE - 1, HEADER_SIZE, enc.ciphertext_size - 1, enc.ciphertext_size}
    for index in range(enc.chunk_count):
        start = enc.chunk_ciphertext_offset(index)
        length = enc.chunk_plaintext_span(index)[1] + TAG_SIZE
        offsets |= {start, start + 1, start + length // 2, start + length - TAG_SIZE}
        offsets |= {start + length - 1}
    return sorted(o for o in offsets if 0 <= o <= enc.ciphertext_size)


@pytest.mark.parametrize("size", SIZES)
def test_resume_from_every_offset_class(public_key: PublicKey, size: int) -> None:
    plaintext = os.urandom(size)
    enc = Encryptor(public_key, size, chunk_size=CHUNK)
    full = _ciphertext(enc, plaintext)
    resumed = Encryptor.from_state(enc.state())
    for offset in _offset_classes(enc):
        assert _ciphertext(resumed, plaintext, offset) == full[offset:], offset


def test_resume_reads_only_from_the_needed_chunk(public_key: PublicKey) -> None:
    plaintext = os.urandom(5 * CHUNK)
    enc = Encryptor(public_key, len(plaintext), chunk_size=CHUNK)
    reads: list[tuple[int, int]] = []

    def read_at(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return plaintext[offset : offset + length]

    start = enc.chunk_ciphertext_offset(3) + 5
    list(enc.iter_ciphertext(read_at, start))
    assert reads == [(3 * CHUNK, CHUNK), (4 * CHUNK, CHUNK)]


def test_resume_offset_out_of_range(public_key: PublicKey) -> None:
    enc = Encryptor(public_key, 10, chunk_size=CHUNK)
    with pytest.raises(UsageError):
        list(enc.iter_ciphertext(lambda o, n: bytes(n), enc.ciphertext_size + 1))
    with pytest.raises(UsageError):
        list(enc.iter_ciphertext(lambda o, n: bytes(n), -1))
    with pytest.raises(UsageError):
        enc.chunk_at(HEADER_SIZE - 1)


def test_encrypt_chunk_checks_its_arguments(public_key: PublicKey) -> None:
    enc = Encryptor(public_key, CHUNK + 1, chunk_size=CHUNK)
    with pytest.raises(UsageError, match="must be 1 bytes"):
        enc.encrypt_chunk(1, b"too long")
    with pytest.raises(UsageError, match="chunk index 2"):
        enc.encrypt_chunk(2, b"")
    with pytest.raises(UsageError):
        list(enc.iter_ciphertext(lambda o, n: b"short"))  # a reader that returns too little


def test_no_plaintext_before_its_chunk_is_authenticated(
    private_key: PrivateKey, public_key: PublicKey
) -> None:
    plaintext = os.urandom(2 * CHUNK)
    ct = encrypt_bytes(plaintext, public_key, chunk_size=CHUNK)
    dec = Decryptor(private_key)
    first_end = HEADER_SIZE + CHUNK + TAG_SIZE
    assert dec.feed(ct[: first_end - 1]) == b""  # all but the last tag byte: nothing yet
    assert dec.header is not None
    finished = [dec.finished]
    assert dec.feed(ct[first_end - 1 : first_end]) == plaintext[:CHUNK]
    finished.append(dec.finished)
    assert dec.feed(ct[first_end:]) == plaintext[CHUNK:]
    finished.append(dec.finished)
    assert finished == [False, False, True]
    dec.close()
    dec.close()  # idempotent after success


def test_header_is_available_once_authenticated(
    private_key: PrivateKey, public_key: PublicKey
) -> None:
    ct = encrypt_bytes(b"x" * 3000, public_key, chunk_size=CHUNK)
    dec = Decryptor(private_key)
    dec.feed(ct[: HEADER_SIZE - 1])
    before = (dec.header, dec.plaintext_size)
    dec.feed(ct[HEADER_SIZE - 1 : HEADER_SIZE])
    header = dec.header
    assert before == (None, None)
    assert header is not None
    assert (header.plaintext_size, header.chunk_size) == (3000, CHUNK)
    assert header.ciphertext_size == len(ct)
    assert dec.plaintext_size == 3000


@settings(max_examples=80, deadline=None)
@given(size=st.integers(min_value=0, max_value=4 * CHUNK + 50), data=st.data())
def test_resume_from_any_offset(public_key: PublicKey, size: int, data: st.DataObject) -> None:
    plaintext = bytes(i % 253 for i in range(size))
    enc = Encryptor(public_key, size, chunk_size=CHUNK)
    full = _ciphertext(enc, plaintext)
    start = data.draw(st.integers(min_value=0, max_value=len(full)))
    assert _ciphertext(Encryptor.from_state(enc.state()), plaintext, start) == full[start:]
