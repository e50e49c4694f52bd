"""X25519 key pairs and their text forms (pure: no I/O).

A public key travels as the standard base64 (with padding) of its 32 raw bytes: 44 ASCII
characters, the string the server stores. A private key is kept in a one-line text file::

    wirelab-x25519-private-v1:<standard base64 of the 32 raw private bytes>

Parsing is strict (exact length, canonical base64) so that two spellings of one key never
exist and a truncated paste is an error, not a different key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .._exceptions import UsageError
from ._errors import KeyFileError

__all__ = [
    "KEY_SIZE",
    "PRIVATE_KEY_PREFIX",
    "PrivateKey",
    "PublicKey",
    "generate_keypair",
]

#: Size in bytes of a raw X25519 key, public or private.
KEY_SIZE = 32

#: The first field of a private key file; the version lets the format change later.
PRIVATE_KEY_PREFIX = "wirelab-x25519-private-v1:"


def _b64decode_exact(text: str, what: str) -> bytes:
    """Decode canonical standard base64 of exactly :data:`KEY_SIZE` bytes, or raise."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise UsageError(f"{what} is not valid base64: {text[:60]!r}") from exc
    # Re-encoding catches non-canonical padding bits, so one key has exactly one spelling.
    if len(raw) != KEY_SIZE or base64.b64encode(raw).decode("ascii") != text:
        raise UsageError(f"{what} must be the base64 of {KEY_SIZE} bytes (44 characters)")
    return raw


class PublicKey:
    """An X25519 public key: the key a sender encrypts for. Immutable and hashable."""

    __slots__ = ("_key", "_raw")

    def __init__(self, raw: bytes) -> None:
        """Wrap 32 raw bytes; :class:`~wirelab.UsageError` for any other length."""
        if len(raw) != KEY_SIZE:
            raise UsageError(f"an X25519 public key is {KEY_SIZE} bytes, got {len(raw)}")
        self._raw = bytes(raw)
        self._key = X25519PublicKey.from_public_bytes(self._raw)

    @classmethod
    def from_base64(cls, text: str) -> PublicKey:
        """Parse the 44-character base64 form (as stored by the server)."""
        return cls(_b64decode_exact(text.strip(), "a public key"))

    def to_base64(self) -> str:
        """The 44-character standard base64 of the raw key."""
        return base64.b64encode(self._raw).decode("ascii")

    @property
    def raw(self) -> bytes:
        """The 32 raw bytes."""
        return self._raw

    @property
    def fingerprint(self) -> str:
        """``SHA256:`` + unpadded base64 of SHA-256(raw), for people to compare keys."""
        digest = hashlib.sha256(self._raw).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    @property
    def x25519(self) -> X25519PublicKey:
        """The ``cryptography`` object, for the key agreement."""
        return self._key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"PublicKey({self.to_base64()!r})"


class PrivateKey:
    """An X25519 private key. Its ``repr`` never shows the secret."""

    __slots__ = ("_key", "_public")

    def __init__(self, raw: bytes) -> None:
        """Wrap 32 raw private bytes; :class:`~wirelab.UsageError` for any other length."""
        if len(raw) != KEY_SIZE:
            raise UsageError(f"an X25519 private key is {KEY_SIZE} bytes, got {len(raw)}")
        self._key = X25519PrivateKey.from_private_bytes(bytes(raw))
        self._public = PublicKey(self._key.public_key().public_bytes_raw())

    @classmethod
    def generate(cls) -> PrivateKey:
        """A new random key (from the operating system's CSPRNG)."""
        return cls(X25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def from_base64(cls, text: str) -> PrivateKey:
        """Parse the base64 of the 32 raw bytes (the form kept in encryptor state)."""
        return cls(_b64decode_exact(text.strip(), "a private key"))

    def to_base64(self) -> str:
        """The standard base64 of the 32 raw bytes. Secret: store it like the key itself."""
        return base64.b64encode(self._key.private_bytes_raw()).decode("ascii")

    @classmethod
    def from_text(cls, text: str) -> PrivateKey:
        """Parse the key file format (``wirelab-x25519-private-v1:<base64>``, one line).

        Raises :class:`KeyFileError` when the prefix is missing or the base64 is wrong.
        """
        line = text.strip()
        if not line.startswith(PRIVATE_KEY_PREFIX):
            raise KeyFileError(f"not a wirelab private key (expected {PRIVATE_KEY_PREFIX}...)")
        try:
            return cls.from_base64(line[len(PRIVATE_KEY_PREFIX) :])
        except UsageError as exc:
            raise KeyFileError(f"malformed private key: {exc}") from exc

    def to_text(self) -> str:
        """The key file format, one line ending in a newline."""
        return PRIVATE_KEY_PREFIX + self.to_base64() + "\n"

    @property
    def public_key(self) -> PublicKey:
        """The matching public key."""
        return self._public

    def exchange(self, peer: PublicKey) -> bytes:
        """X25519(self, peer): 32 shared bytes.

        Raises :class:`~wirelab.UsageError` for a low-order peer key, whose shared secret
        is all zeros and would let anyone derive the file key.
        """
        try:
            return self._key.exchange(peer.x25519)
        except ValueError as exc:
            raise UsageError("invalid X25519 public key (low-order point)") from exc

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrivateKey) and other.public_key == self.public_key

    def __hash__(self) -> int:
        return hash(self._public)

    def __repr__(self) -> str:
        return f"PrivateKey(public={self._public.to_base64()!r})"


def generate_keypair() -> tuple[PrivateKey, PublicKey]:
    """A new random key pair: ``(private_key, private_key.public_key)``."""
    private = PrivateKey.generate()
    return private, private.public_key
