"""The keystream of ``content=random`` (stream format versions 2 and 3): AES-128-CTR from counter 0.

The format defines the bytes (docs/protocol/stream.md, Content): one AES-128-CTR keystream
per stream, key from the seed (:func:`random_key`), an all-zero initial counter block (a
128-bit big-endian counter from 0). :func:`keystream` makes the same bytes faster:

* Past its first 32 bytes it comes from AES-GCM with an all-zero 96-bit IV. GCM encrypts
  its data with the counter blocks ``IV || 2``, ``IV || 3``, ... (32-bit big-endian), that
  is CTR's blocks from block 2 on, and OpenSSL's GCM (AES and GHASH stitched, 512-bit AES
  instructions where the CPU has them) made keystream ~1.6x faster than its CTR on the
  machines this project runs on (10.9 vs 6.8 GB/s, ``benchmarks/random_gen.py``); the tag
  is never asked for. Blocks 0 and 1 are encrypted once, at set-up (ECB of the two counter
  blocks). GCM's 32-bit counter wraps after ``2**32 - 2`` blocks, where CTR's carries on:
  a stream that may be longer (:data:`GCM_MAX_BYTES`, 64 GiB; only with raised limits)
  uses CTR throughout, and so does a stream of small files only (one chunk or less
  each), where GCM's second context at set-up costs more than it saves.
* The cipher contexts are made with cryptography's lower-level call when it is available
  and gives the public API's bytes (checked once, at import): the public path's checks
  (``isinstance`` against abstract classes, the mode's validation, all constant here) were
  about 40 % of a short stream's set-up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

__all__ = ["GCM_MAX_BYTES", "Keystream", "keystream", "random_key"]

_KEY_LABEL = b"wirelab stream random v2"
#: Bytes of keystream GCM can give from block 2 before its counter wraps (also GCM's own
#: limit on one message: 2**39 - 256 bits).
GCM_MAX_BYTES = (2**32 - 2) * 16
_HEAD_BLOCKS = bytes(16) + (1).to_bytes(16, "big")  # counter blocks 0 and 1
_HEAD = len(_HEAD_BLOCKS)

# The mode objects are immutable: made once, not per stream.
_CTR_FROM_ZERO = modes.CTR(bytes(16))
_GCM_ZERO_IV = modes.GCM(bytes(12))
_ECB = modes.ECB()  # noqa: S305 - it encrypts CTR's first two counter blocks, nothing else

Maker = Callable[[bytes, modes.Mode], CipherContext]


def random_key(seed: int) -> bytes:
    """The AES-128 key of a stream's ``random`` content: the first 16 bytes of
    SHA-256(``b"wirelab stream random v2"`` + the seed as 8 little-endian bytes)."""
    return hashlib.sha256(_KEY_LABEL + seed.to_bytes(8, "little")).digest()[:16]


def public_context(key: bytes, mode: modes.Mode) -> CipherContext:
    """An AES encryption context through cryptography's public API."""
    cipher: Any = Cipher(algorithms.AES(key), mode)  # encryptor()'s type depends on the mode
    context: CipherContext = cipher.encryptor()
    return context


def _direct_maker() -> Maker | None:
    """The call ``Cipher(...).encryptor()`` ends in, without the checks made on the way,
    given an ``AES`` object made without its constructor's checks of the key
    (:func:`random_key` makes it 16 bytes); None when this ``cryptography`` lacks it or it
    does not give the public API's bytes."""
    try:
        from cryptography.hazmat.bindings._rust import openssl as rust_openssl

        create = rust_openssl.ciphers.create_encryption_ctx
        key, zeros = bytes(range(16)), bytes(64)
        for mode in (_CTR_FROM_ZERO, _GCM_ZERO_IV, _ECB):
            aes = object.__new__(algorithms.AES)
            aes.key = key
            if create(aes, mode).update(zeros) != public_context(key, mode).update(zeros):
                return None
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    new = object.__new__
    aes_type = algorithms.AES

    def direct(key: bytes, mode: modes.Mode) -> CipherContext:
        aes = new(aes_type)
        aes.key = key
        context: CipherContext = create(aes, mode)
        return context

    return direct


DIRECT_MAKER = _direct_maker()
_make: Maker = DIRECT_MAKER or public_context


class Keystream:
    """A stream's ``random`` bytes in order, GCM past its first 32 (see the module doc).

    :meth:`update` and :meth:`update_into` have the signatures of a cipher context's, and
    ``data`` must be zeros (the keystream is the encryption of zeros): the first 32 bytes
    come from a table. ``update_into``'s ``out`` needs ``len(data) + 15`` bytes, as a
    context's (nothing past ``len(data)`` changes).
    """

    __slots__ = ("_gcm", "_head")

    def __init__(self, key: bytes) -> None:
        self._head = _make(key, _ECB).update(_HEAD_BLOCKS)
        self._gcm = _make(key, _GCM_ZERO_IV)

    def update_into(self, data: bytes | memoryview, out: memoryview | bytearray) -> int:
        if not self._head:
            return self._gcm.update_into(data, out)
        head = self._take(len(data))
        k = len(head)
        out[:k] = head
        if len(data) > k:
            self._gcm.update_into(memoryview(data)[k:], memoryview(out)[k:])
        return len(data)

    def update(self, data: bytes | memoryview) -> bytes:
        if not self._head:
            return self._gcm.update(data)
        head = self._take(len(data))
        rest = memoryview(data)[len(head) :]
        return head + self._gcm.update(rest) if len(rest) else head

    def _take(self, n: int) -> bytes:
        """The next (at most ``n``) bytes of the 32 from the table."""
        head, self._head = self._head[:n], self._head[n:]
        return head


def keystream(seed: int, max_bytes: int, *, large_files: bool) -> Keystream | CipherContext:
    """The keystream of the ``random`` content of seed ``seed``, for a stream of at most
    ``max_bytes`` bytes: a :class:`Keystream` when it may have ``large_files`` (larger than
    one chunk, generated a message at a time), else (and when the stream may be longer
    than GCM's counter allows) a plain CTR context, which costs less to set up (one
    context, not two and a table) and per call (no Python in between): what GCM saves
    is per byte, and small files have few."""
    key = random_key(seed)
    if large_files and max_bytes - _HEAD <= GCM_MAX_BYTES:
        return Keystream(key)  # GCM makes all but the first 32 bytes
    return _make(key, _CTR_FROM_ZERO)
