"""The recipient's side: an incremental, sans-IO STREAM decryptor.

Feed it ciphertext in pieces of any size; it returns plaintext only once the chunk that
holds it has been authenticated, and it keeps at most one chunk buffered. The header's
sizes are bound-checked before use and authenticated before any chunk is decrypted.
"""

from __future__ import annotations

import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ._errors import (
    CorruptedChunkError,
    DecryptionError,
    TrailingDataError,
    TruncatedCiphertextError,
    WrongKeyError,
)
from ._format import (
    HEADER_SIZE,
    TAG_SIZE,
    Header,
    chunk_plaintext_size,
    nonce,
    parse_header,
    recipient_keys,
)
from ._keys import PrivateKey


class Decryptor:
    """Decrypts one file for the holder of *private_key*.

    *expected_size*, when known (the relay's size of the stored file), is compared with
    the size the header announces as soon as the header is authenticated, so a cut or
    padded download is reported before any chunk is processed.

    Errors are :class:`DecryptionError` subclasses; after one, every further call raises
    it again. Plaintext returned by earlier :meth:`feed` calls was authentic; plaintext of
    the call that raised is discarded.
    """

    def __init__(self, private_key: PrivateKey, *, expected_size: int | None = None) -> None:
        self._private_key = private_key
        self._expected_size = expected_size
        self._buffer = bytearray()  # at most one header or one chunk's ciphertext
        self._header: Header | None = None
        self._aead: ChaCha20Poly1305 | None = None
        self._index = 0  # next chunk to decrypt
        self._received = 0  # ciphertext bytes fed so far
        self._error: DecryptionError | None = None
        self._done = False

    @property
    def header(self) -> Header | None:
        """The authenticated header, or ``None`` until it has been received and checked."""
        return self._header

    @property
    def plaintext_size(self) -> int | None:
        """The plaintext size from the authenticated header, or ``None`` before it."""
        return None if self._header is None else self._header.plaintext_size

    @property
    def finished(self) -> bool:
        """True once the final chunk has been authenticated."""
        return self._done

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Consume *data*; return the plaintext of every chunk it completed (maybe ``b""``).

        Raises :class:`WrongKeyError`, :class:`NotEncryptedError`,
        :class:`CorruptedChunkError`, :class:`TrailingDataError` or
        :class:`TruncatedCiphertextError` (size mismatch with *expected_size*).
        """
        if self._error is not None:
            raise self._error
        try:
            return self._feed(memoryview(data).cast("B"))
        except DecryptionError as exc:
            self._error = exc
            raise

    def close(self) -> None:
        """Check that the stream ended exactly after its final chunk.

        Raises :class:`TruncatedCiphertextError` when it did not (the most common cause:
        an interrupted download). Calling it again after success is a no-op.
        """
        if self._error is not None:
            raise self._error
        if self._done:
            return
        if self._header is None:
            got = len(self._buffer)
            what = "no data" if got == 0 else f"only {got} of the {HEADER_SIZE} header bytes"
            self._error = TruncatedCiphertextError(f"truncated: received {what}")
        else:
            self._error = TruncatedCiphertextError(
                f"truncated: received {self._received} of {self._header.ciphertext_size} "
                f"bytes; chunk {self._index} of {self._header.chunk_count} is missing"
            )
        raise self._error

    # -- internals ---------------------------------------------------------------------

    def _feed(self, view: memoryview) -> bytes:
        self._received += len(view)
        if self._done:
            if view:
                raise _trailing(len(view), self._header)
            return b""
        if self._header is None:
            view = self._take_header(view)
            if self._header is None:
                return b""
        return self._take_chunks(view)

    def _take_header(self, view: memoryview) -> memoryview:
        need = HEADER_SIZE - len(self._buffer)
        self._buffer += view[:need]
        if len(self._buffer) < HEADER_SIZE:
            return view[len(view) :]
        header = parse_header(bytes(self._buffer))
        keys = recipient_keys(self._private_key, header)
        if not hmac.compare_digest(keys.mac, header.mac):
            raise WrongKeyError(
                "wrong key or not encrypted for you: the header does not authenticate "
                f"with the key of public key {self._private_key.public_key.to_base64()} "
                "(or the header was modified)"
            )
        self._check_expected_size(header)
        self._header, self._aead = header, ChaCha20Poly1305(keys.payload_key)
        self._buffer.clear()
        return view[need:]

    def _check_expected_size(self, header: Header) -> None:
        expected, announced = self._expected_size, header.ciphertext_size
        if expected is None or expected == announced:
            return
        if expected < announced:
            raise TruncatedCiphertextError(
                f"truncated: the file is {expected} bytes but its header announces {announced}"
            )
        raise _trailing(expected - announced, header)

    def _take_chunks(self, view: memoryview) -> bytes:
        out: list[bytes] = []
        while view and not self._done:
            size = self._chunk_ciphertext_size()
            if not self._buffer and len(view) >= size:
                out.append(self._decrypt(view[:size]))  # whole chunk in view: no copy
                view = view[size:]
                continue
            need = size - len(self._buffer)
            self._buffer += view[:need]
            view = view[need:]
            if len(self._buffer) == size:
                out.append(self._decrypt(self._buffer))
                self._buffer = bytearray()
        if view:
            raise _trailing(len(view), self._header)
        return b"".join(out)

    def _chunk_ciphertext_size(self) -> int:
        assert self._header is not None
        h = self._header
        return chunk_plaintext_size(self._index, h.plaintext_size, h.chunk_size) + TAG_SIZE

    def _decrypt(self, chunk: bytes | bytearray | memoryview) -> bytes:
        assert self._header is not None and self._aead is not None
        index, count = self._index, self._header.chunk_count
        last = index == count - 1
        try:
            plaintext = self._aead.decrypt(nonce(index, last=last), chunk, None)
        except InvalidTag as exc:
            raise CorruptedChunkError(
                f"corrupted at chunk {index} of {count}: it fails authentication (modified, "
                "moved, duplicated or missing data); download the file again",
                chunk_index=index,
            ) from exc
        self._index += 1
        self._done = last
        return plaintext


def _trailing(extra: int, header: Header | None) -> TrailingDataError:
    end = "?" if header is None else str(header.ciphertext_size)
    return TrailingDataError(
        f"{extra} unexpected bytes after the final chunk (the file should end at {end} "
        "bytes): it was extended or concatenated with other data"
    )


def decrypt_bytes(ciphertext: bytes | bytearray | memoryview, private_key: PrivateKey) -> bytes:
    """The plaintext of a whole in-memory *ciphertext*; raises like :class:`Decryptor`."""
    decryptor = Decryptor(private_key, expected_size=len(ciphertext))
    plaintext = decryptor.feed(ciphertext)
    decryptor.close()
    return plaintext
