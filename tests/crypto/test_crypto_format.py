"""The version 1 format: header layout, sizes, bounds, and an independent re-implementation.

``test_spec_reimplementation`` decrypts with nothing but ``cryptography`` primitives and
the rules of docs/protocol/encryption.md, so the code and the spec cannot drift apart.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from wirelab import UsageError
from wirelab.crypto import (
    DEFAULT_CHUNK_SIZE,
    HEADER_SIZE,
    MAX_CHUNK_SIZE,
    MAX_PLAINTEXT_SIZE,
    MIN_CHUNK_SIZE,
    Encryptor,
    PrivateKey,
    PublicKey,
    ciphertext_size,
    encrypt_bytes,
)

CHUNK = MIN_CHUNK_SIZE
EPHEMERAL = PrivateKey(bytes(range(32)))
RECIPIENT_RAW = bytes(range(100, 132))
RECIPIENT = PrivateKey(RECIPIENT_RAW)
SALT = bytes(range(200, 232))


def test_header_size_and_layout(public_key: PublicKey) -> None:
    enc = Encryptor(public_key, 3 * CHUNK + 5, chunk_size=CHUNK, ephemeral=EPHEMERAL, salt=SALT)
    header = enc.header
    assert HEADER_SIZE == 120
    assert len(header) == HEADER_SIZE
    assert header[:8] == b"\x89WLE\r\n\x1a\n"
    assert header[8] == 1  # version
    assert header[9] == 1  # algorithm
    assert header[10:12] == b"\0\0"  # reserved
    assert struct.unpack(">I", header[12:16]) == (CHUNK,)
    assert struct.unpack(">Q", header[16:24]) == (3 * CHUNK + 5,)
    assert header[24:56] == EPHEMERAL.public_key.raw
    assert header[56:88] == SALT


@pytest.mark.parametrize(
    ("size", "chunks"),
    [(0, 1), (1, 1), (CHUNK - 1, 1), (CHUNK, 1), (CHUNK + 1, 2), (5 * CHUNK, 5)],
)
def test_ciphertext_size_is_exact(public_key: PublicKey, size: int, chunks: int) -> None:
    expected = HEADER_SIZE + size + 16 * chunks
    assert ciphertext_size(size, CHUNK) == expected
    assert len(encrypt_bytes(bytes(size), public_key, chunk_size=CHUNK)) == expected
    assert Encryptor(public_key, size, chunk_size=CHUNK).chunk_count == chunks


def test_default_chunk_size() -> None:
    assert DEFAULT_CHUNK_SIZE == 64 * 1024
    assert ciphertext_size(10**6) == HEADER_SIZE + 10**6 + 16 * 16


@pytest.mark.parametrize(
    ("size", "chunk"),
    [
        (0, MIN_CHUNK_SIZE - 1),
        (0, MAX_CHUNK_SIZE + 1),
        (0, 0),
        (-1, CHUNK),
        (MAX_PLAINTEXT_SIZE + 1, CHUNK),
    ],
)
def test_sizes_out_of_bounds(public_key: PublicKey, size: int, chunk: int) -> None:
    with pytest.raises(UsageError):
        ciphertext_size(size, chunk)
    with pytest.raises(UsageError):
        Encryptor(public_key, size, chunk_size=chunk)


def test_bounds_are_inclusive() -> None:
    assert ciphertext_size(MAX_PLAINTEXT_SIZE, MAX_CHUNK_SIZE) > MAX_PLAINTEXT_SIZE
    assert ciphertext_size(0, MIN_CHUNK_SIZE) == HEADER_SIZE + 16


def test_known_answer() -> None:
    """Pins the format: any change to layout, key schedule or nonces changes this digest."""
    plaintext = bytes(i % 251 for i in range(2 * CHUNK + 10))
    enc = Encryptor(
        RECIPIENT.public_key, len(plaintext), chunk_size=CHUNK, ephemeral=EPHEMERAL, salt=SALT
    )
    ct = b"".join(enc.iter_ciphertext(lambda o, n: plaintext[o : o + n]))
    assert hashlib.sha256(ct).hexdigest() == KNOWN_SHA256


KNOWN_SHA256 = "c2542e73bfe04e109954277064e833968c2a4b8ec54fe5381583a2711501b887"


def _spec_decrypt(ciphertext: bytes, recipient_raw: bytes) -> bytes:
    """Decrypt following docs/protocol/encryption.md, section by section."""
    magic, version, alg, reserved, chunk, size = struct.unpack(">8sBBHIQ", ciphertext[:24])
    assert (magic, version, alg, reserved) == (b"\x89WLE\r\n\x1a\n", 1, 1, 0)
    eph, salt, mac = ciphertext[24:56], ciphertext[56:88], ciphertext[88:120]
    recipient = X25519PrivateKey.from_private_bytes(recipient_raw)
    shared = recipient.exchange(X25519PublicKey.from_public_bytes(eph))
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=64,
        salt=salt,
        info=b"wirelab-e2e-v1\x00" + ciphertext[:88] + recipient.public_key().public_bytes_raw(),
    ).derive(shared)
    assert hmac.compare_digest(hmac.new(okm[32:], ciphertext[:88], "sha256").digest(), mac)
    aead = ChaCha20Poly1305(okm[:32])
    count = max(1, -(-size // chunk))
    out, pos = [], HEADER_SIZE
    for i in range(count):
        n = chunk if i < count - 1 else size - (count - 1) * chunk
        nonce = i.to_bytes(11, "big") + bytes([i == count - 1])
        out.append(aead.decrypt(nonce, ciphertext[pos : pos + n + 16], None))
        pos += n + 16
    assert pos == len(ciphertext)
    return b"".join(out)


@pytest.mark.parametrize("size", [0, 1, CHUNK, 3 * CHUNK + 7])
def test_spec_reimplementation(size: int) -> None:
    plaintext = bytes(i % 256 for i in range(size))
    ct = encrypt_bytes(plaintext, RECIPIENT.public_key, chunk_size=CHUNK)
    assert _spec_decrypt(ct, RECIPIENT_RAW) == plaintext
