"""Errors of :mod:`wirelab.crypto`, placed in the one exception tree of wirelab.

Everything that goes wrong while decrypting is a :class:`DecryptionError`, itself a
:class:`wirelab.IntegrityError`, so a caller that already handles corrupt downloads handles
these too. Misuse of keys and key files is a :class:`wirelab.UsageError`::

    IntegrityError
    └── DecryptionError
        ├── NotEncryptedError         no wirelab header, unsupported version, absurd fields
        ├── WrongKeyError             the header does not authenticate under this key
        ├── CorruptedChunkError       chunk N fails authentication (``chunk_index``)
        ├── TruncatedCiphertextError  the stream ended early (also a ``TruncatedError``)
        └── TrailingDataError         bytes after the final chunk
    UsageError
    ├── KeyFileError                  a private key file is malformed or unsafe
    └── SourceChangedError            the file being encrypted changed under the encryptor
"""

from __future__ import annotations

from .._exceptions import IntegrityError, TruncatedError, UsageError


class DecryptionError(IntegrityError):
    """The ciphertext cannot be decrypted; no unauthenticated plaintext was released."""


class NotEncryptedError(DecryptionError):
    """The data does not start with a valid wirelab encryption header."""


class WrongKeyError(DecryptionError):
    """The header does not authenticate: wrong key, not encrypted for you, or tampered."""


class CorruptedChunkError(DecryptionError):
    """Chunk ``chunk_index`` (0-based) fails authentication: modified, moved or duplicated."""

    def __init__(self, message: str, *, chunk_index: int) -> None:
        super().__init__(message)
        self.chunk_index = chunk_index


class TruncatedCiphertextError(DecryptionError, TruncatedError):
    """The ciphertext ended before its final chunk (an interrupted or cut download)."""


class TrailingDataError(DecryptionError):
    """Bytes follow the final chunk: the file was extended or two files were concatenated."""


class KeyFileError(UsageError):
    """A private key file is malformed, or readable by other users, or owned by another user."""


class SourceChangedError(UsageError):
    """The plaintext file no longer has the size or identity it had when encryption began.

    Resuming would re-encrypt different bytes under the same key and nonces, which leaks
    their XOR to whoever holds both ciphertexts: start a new upload with a new encryptor.
    """
