"""The sender's side: a deterministic, seekable STREAM encryptor (pure: no I/O).

Given the same recipient, sizes, ephemeral private key and salt, an :class:`Encryptor`
produces the same ciphertext bytes, so an interrupted upload resumes at any offset by
re-encrypting the chunk that holds it. The plaintext is pulled through a ``read_at``
callable so that this module never touches a file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .._exceptions import UsageError
from ._format import (
    DEFAULT_CHUNK_SIZE,
    HEADER_SIZE,
    SALT_SIZE,
    TAG_SIZE,
    Header,
    check_chunk_size,
    check_plaintext_size,
    chunk_plaintext_size,
    derive_keys,
    nonce,
)
from ._keys import PrivateKey, PublicKey

#: Value of the ``format`` entry of :meth:`Encryptor.state`.
STATE_FORMAT = "wirelab-encryptor-v1"
_STATE_KEYS = frozenset(
    {"format", "recipient", "ephemeral", "salt", "chunk_size", "plaintext_size"}
)

#: Bytes-like plaintext: chunks are passed to the cipher without a copy.
Plaintext = bytes | bytearray | memoryview
#: ``read_at(plaintext_offset, length)`` returns exactly *length* bytes of plaintext.
ReadAt = Callable[[int, int], Plaintext]


class Encryptor:
    """Encrypts one file of a known size for one recipient.

    *ephemeral* and *salt* are random unless given; give them (through
    :meth:`from_state`) only to re-produce the ciphertext of an earlier run **of the same
    plaintext**: the same key, nonces and different bytes would leak their XOR. Raises
    :class:`~wirelab.UsageError` for sizes out of bounds, a salt that is not 32 bytes or a
    low-order recipient key.
    """

    def __init__(
        self,
        recipient: PublicKey,
        plaintext_size: int,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        ephemeral: PrivateKey | None = None,
        salt: bytes | None = None,
    ) -> None:
        check_chunk_size(chunk_size)
        check_plaintext_size(plaintext_size)
        if salt is None:
            salt = os.urandom(SALT_SIZE)
        if len(salt) != SALT_SIZE:
            raise UsageError(f"the salt must be {SALT_SIZE} bytes, got {len(salt)}")
        self._ephemeral = ephemeral if ephemeral is not None else PrivateKey.generate()
        self._recipient = recipient
        self._info = Header(chunk_size, plaintext_size, self._ephemeral.public_key, bytes(salt))
        keys = derive_keys(self._ephemeral.exchange(recipient), self._info, recipient)
        self._header = self._info.prefix + keys.mac
        self._aead = ChaCha20Poly1305(keys.payload_key)

    # -- resumable state ---------------------------------------------------------------

    def state(self) -> dict[str, str]:
        """All a client must persist to resume: a small dict of strings (JSON-ready).

        Contains the ephemeral **private** key: keep it as private as the upload's
        plaintext, and delete it once the upload is complete.
        """
        return {
            "format": STATE_FORMAT,
            "recipient": self._recipient.to_base64(),
            "ephemeral": self._ephemeral.to_base64(),
            "salt": self._info.salt.hex(),
            "chunk_size": str(self._info.chunk_size),
            "plaintext_size": str(self._info.plaintext_size),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, str]) -> Encryptor:
        """Rebuild the encryptor that :meth:`state` described; it yields identical bytes.

        Raises :class:`~wirelab.UsageError` for a missing, extra or malformed entry.
        """
        if set(state) != _STATE_KEYS or state["format"] != STATE_FORMAT:
            raise UsageError(f"not a {STATE_FORMAT} state: keys {sorted(state)}")
        try:
            salt = bytes.fromhex(state["salt"])
            chunk_size = int(state["chunk_size"])
            plaintext_size = int(state["plaintext_size"])
        except ValueError as exc:
            raise UsageError(f"malformed encryptor state: {exc}") from exc
        return cls(
            PublicKey.from_base64(state["recipient"]),
            plaintext_size,
            chunk_size=chunk_size,
            ephemeral=PrivateKey.from_base64(state["ephemeral"]),
            salt=salt,
        )

    # -- geometry ----------------------------------------------------------------------

    @property
    def header(self) -> bytes:
        """The HEADER_SIZE header bytes: the start of the ciphertext."""
        return self._header

    @property
    def recipient(self) -> PublicKey:
        """The public key this file is encrypted for."""
        return self._recipient

    @property
    def plaintext_size(self) -> int:
        """Size of the plaintext, as announced in the header."""
        return self._info.plaintext_size

    @property
    def chunk_size(self) -> int:
        """Plaintext bytes per chunk (the last chunk may hold fewer)."""
        return self._info.chunk_size

    @property
    def chunk_count(self) -> int:
        """Number of chunks (1 for an empty file)."""
        return self._info.chunk_count

    @property
    def ciphertext_size(self) -> int:
        """Exact size of the whole ciphertext, header included."""
        return self._info.ciphertext_size

    def chunk_plaintext_span(self, index: int) -> tuple[int, int]:
        """``(plaintext offset, length)`` of chunk *index*."""
        self._check_index(index)
        size, csize = self._info.plaintext_size, self._info.chunk_size
        return index * csize, chunk_plaintext_size(index, size, csize)

    def chunk_ciphertext_offset(self, index: int) -> int:
        """Offset in the ciphertext where chunk *index* starts."""
        self._check_index(index)
        return HEADER_SIZE + index * (self._info.chunk_size + TAG_SIZE)

    def chunk_at(self, ciphertext_offset: int) -> tuple[int, int]:
        """``(chunk index, offset inside that chunk's ciphertext)`` of a payload offset.

        *ciphertext_offset* must be in ``[HEADER_SIZE, ciphertext_size)``.
        """
        if not HEADER_SIZE <= ciphertext_offset < self.ciphertext_size:
            raise UsageError(
                f"offset {ciphertext_offset} is outside the payload "
                f"[{HEADER_SIZE}, {self.ciphertext_size})"
            )
        return divmod(ciphertext_offset - HEADER_SIZE, self._info.chunk_size + TAG_SIZE)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.chunk_count:
            raise UsageError(f"chunk index {index} outside [0, {self.chunk_count})")

    # -- encryption --------------------------------------------------------------------

    def encrypt_chunk(self, index: int, plaintext: Plaintext) -> bytes:
        """Ciphertext of chunk *index* (plaintext + 16-byte tag).

        *plaintext* must have exactly the chunk's length (:meth:`chunk_plaintext_span`);
        anything else is a :class:`~wirelab.UsageError`, never a silently different file.
        """
        _, length = self.chunk_plaintext_span(index)
        if len(plaintext) != length:
            raise UsageError(f"chunk {index} must be {length} bytes, got {len(plaintext)}")
        last = index == self.chunk_count - 1
        return self._aead.encrypt(nonce(index, last=last), plaintext, None)

    def iter_ciphertext(self, read_at: ReadAt, start: int = 0) -> Iterator[bytes]:
        """Yield the ciphertext from offset *start* to the end, a header or chunk at a time.

        ``read_at(offset, length)`` supplies plaintext; only the chunks at or after *start*
        are read and encrypted, and the bytes of the first one before *start* are dropped.
        ``start == ciphertext_size`` yields nothing.
        """
        if not 0 <= start <= self.ciphertext_size:
            raise UsageError(f"start {start} outside [0, {self.ciphertext_size}]")
        if start < HEADER_SIZE:
            yield self._header[start:]
            first, skip = 0, 0
        elif start == self.ciphertext_size:
            return
        else:
            first, skip = self.chunk_at(start)
        for index in range(first, self.chunk_count):
            offset, length = self.chunk_plaintext_span(index)
            chunk = self.encrypt_chunk(index, read_at(offset, length))
            yield chunk[skip:] if skip else chunk
            skip = 0


def encrypt_bytes(
    plaintext: Plaintext, recipient: PublicKey, *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> bytes:
    """The whole ciphertext of an in-memory *plaintext* for *recipient* (fresh randomness)."""
    view = memoryview(plaintext).cast("B")
    encryptor = Encryptor(recipient, len(view), chunk_size=chunk_size)
    return b"".join(encryptor.iter_ciphertext(lambda offset, n: view[offset : offset + n]))
