"""The encrypted file format, version 1: header layout, chunk geometry, key schedule.

Pure functions over bytes; the byte-by-byte specification is docs/protocol/encryption.md.
Every field of a header read from the network is checked against fixed bounds here, before
anything is sized from it.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .._exceptions import UsageError
from ._errors import NotEncryptedError
from ._keys import KEY_SIZE, PrivateKey, PublicKey

#: First 8 bytes of every encrypted file. Like PNG's signature: the high byte catches 7-bit
#: transports, CR LF / LF catch newline conversion, and it is not valid UTF-8 text.
MAGIC = b"\x89WLE\r\n\x1a\n"
VERSION = 1
#: Algorithm 1: X25519, HKDF-SHA256, HMAC-SHA256 header tag, ChaCha20-Poly1305 STREAM.
ALGORITHM = 1

SALT_SIZE = 32
MAC_SIZE = 32
TAG_SIZE = 16  # Poly1305 tag appended to every chunk
NONCE_SIZE = 12  # 11-byte big-endian chunk counter + 1-byte last-chunk flag

# magic, version, algorithm, reserved (zero), chunk size, plaintext size
_FIXED = struct.Struct(">8sBBHIQ")
#: Bytes covered by the header MAC: the fixed fields, the ephemeral key and the salt.
PREFIX_SIZE = _FIXED.size + KEY_SIZE + SALT_SIZE
#: Total header size in bytes (the ciphertext of the first chunk starts here).
HEADER_SIZE = PREFIX_SIZE + MAC_SIZE

#: Default plaintext bytes per chunk (see docs/protocol/encryption.md for the choice).
DEFAULT_CHUNK_SIZE = 64 * 1024
MIN_CHUNK_SIZE = 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
#: Largest plaintext a header may announce (256 TiB); far below the nonce counter's limit.
MAX_PLAINTEXT_SIZE = 2**48

#: HKDF ``info`` label; the header prefix and the recipient key follow it.
_INFO_LABEL = b"wirelab-e2e-v1\x00"


def check_chunk_size(chunk_size: int) -> None:
    """Raise :class:`~wirelab.UsageError` unless MIN_CHUNK_SIZE <= chunk_size <= MAX."""
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise UsageError(
            f"chunk size must be between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE} bytes, "
            f"got {chunk_size}"
        )


def check_plaintext_size(plaintext_size: int) -> None:
    """Raise :class:`~wirelab.UsageError` unless 0 <= plaintext_size <= MAX_PLAINTEXT_SIZE."""
    if not 0 <= plaintext_size <= MAX_PLAINTEXT_SIZE:
        raise UsageError(
            f"plaintext size must be between 0 and {MAX_PLAINTEXT_SIZE} bytes, got {plaintext_size}"
        )


def chunk_count(plaintext_size: int, chunk_size: int) -> int:
    """Number of chunks: ceil(size / chunk_size), and 1 for an empty file."""
    return max(1, -(-plaintext_size // chunk_size))


def ciphertext_size(plaintext_size: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """Exact size of the encrypted file: header + plaintext + one tag per chunk.

    Raises :class:`~wirelab.UsageError` for sizes outside the format's bounds.
    """
    check_chunk_size(chunk_size)
    check_plaintext_size(plaintext_size)
    return HEADER_SIZE + plaintext_size + TAG_SIZE * chunk_count(plaintext_size, chunk_size)


def chunk_plaintext_size(index: int, plaintext_size: int, chunk_size: int) -> int:
    """Plaintext length of chunk *index*: full, except the last which holds the rest."""
    last = chunk_count(plaintext_size, chunk_size) - 1
    return chunk_size if index < last else plaintext_size - last * chunk_size


def nonce(index: int, *, last: bool) -> bytes:
    """STREAM nonce of chunk *index*: 11-byte big-endian counter, then 0x01 if last else 0."""
    return index.to_bytes(NONCE_SIZE - 1, "big") + (b"\x01" if last else b"\x00")


@dataclass(frozen=True)
class Header:
    """The fields of a version 1 header (all validated against the format's bounds)."""

    chunk_size: int
    plaintext_size: int
    ephemeral: PublicKey
    salt: bytes
    mac: bytes = b""

    @property
    def prefix(self) -> bytes:
        """The header bytes the MAC covers (everything but the MAC itself)."""
        fixed = _FIXED.pack(MAGIC, VERSION, ALGORITHM, 0, self.chunk_size, self.plaintext_size)
        return fixed + self.ephemeral.raw + self.salt

    @property
    def chunk_count(self) -> int:
        """Number of chunks of the payload (at least 1)."""
        return chunk_count(self.plaintext_size, self.chunk_size)

    @property
    def ciphertext_size(self) -> int:
        """Total size of the encrypted file this header announces."""
        return ciphertext_size(self.plaintext_size, self.chunk_size)


def parse_header(data: bytes) -> Header:
    """Parse and bound-check the first HEADER_SIZE bytes of *data*; the MAC is not checked.

    Raises :class:`NotEncryptedError` naming the first field that is wrong.
    """
    if len(data) < HEADER_SIZE:
        raise NotEncryptedError(f"a header is {HEADER_SIZE} bytes, got {len(data)}")
    magic, version, algorithm, reserved, chunk_size, size = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise NotEncryptedError("not a wirelab encrypted file (bad magic bytes)")
    if version != VERSION:
        raise NotEncryptedError(
            f"unsupported encryption format version {version} (this wirelab reads version "
            f"{VERSION}): upgrade wirelab"
        )
    if algorithm != ALGORITHM:
        raise NotEncryptedError(f"unsupported encryption algorithm id {algorithm}")
    if reserved != 0:
        raise NotEncryptedError("corrupted header: reserved bytes are not zero")
    try:
        check_chunk_size(chunk_size)
        check_plaintext_size(size)
    except UsageError as exc:
        raise NotEncryptedError(f"corrupted header: {exc}") from exc
    eph = data[_FIXED.size : _FIXED.size + KEY_SIZE]
    salt = data[_FIXED.size + KEY_SIZE : PREFIX_SIZE]
    mac = data[PREFIX_SIZE:HEADER_SIZE]
    return Header(chunk_size, size, PublicKey(bytes(eph)), bytes(salt), bytes(mac))


@dataclass(frozen=True)
class FileKeys:
    """Per-file secrets derived from the key agreement and the header."""

    payload_key: bytes  # ChaCha20-Poly1305 key of every chunk
    mac: bytes  # HMAC-SHA256 of the header prefix


def derive_keys(shared: bytes, header: Header, recipient: PublicKey) -> FileKeys:
    """HKDF-SHA256(shared, salt, label || header prefix || recipient) -> payload key, MAC.

    Binding the whole header prefix into ``info`` makes any header change yield another key,
    so a tampered header cannot decrypt even a chunk; the explicit MAC reports it at once.
    """
    prefix = header.prefix
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=2 * KEY_SIZE,
        salt=header.salt,
        info=_INFO_LABEL + prefix + recipient.raw,
    ).derive(shared)
    mac = hmac.new(okm[KEY_SIZE:], prefix, hashlib.sha256).digest()
    return FileKeys(payload_key=okm[:KEY_SIZE], mac=mac)


def recipient_keys(private_key: PrivateKey, header: Header) -> FileKeys:
    """The recipient's side of :func:`derive_keys`: X25519(private key, ephemeral key).

    Raises :class:`NotEncryptedError` for a low-order ephemeral key (never made by wirelab).
    """
    try:
        shared = private_key.exchange(header.ephemeral)
    except UsageError as exc:
        raise NotEncryptedError("corrupted header: invalid ephemeral public key") from exc
    return derive_keys(shared, header, private_key.public_key)
