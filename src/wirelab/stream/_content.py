"""File contents: random, sine and ramp samples in any dtype and byte order (pure; no I/O).

A :class:`ContentSource` produces the bytes of one stream's files, in order, in chunks of at
most :data:`CHUNK_SIZE` bytes, so memory per stream stays bounded whatever the file size.

* ``random`` is one AES-128-CTR keystream per stream (key from the seed; made faster by
  ``_keystream``): a file of ``size`` bytes takes the next ``size`` bytes, whatever the
  chunk size, so the bytes never depend on how the server splits its work. It replaced SFC64
  in stream format version 2: with AES-NI it makes bytes ~3x faster (benchmarks/README.md).
  The classic endpoints keep SFC64 (``random="sfc64"``: one generator per stream seeded with
  ``SeedSequence([seed, 1])``; a file consumes ``ceil(size / 8)`` raw 64-bit outputs), so
  their seeds give the bytes they always gave.
* ``sine`` and ``ramp`` restart in every file, so a file depends only on
  ``(content, dtype, byteorder, size)``: their chunks are zero-copy slices of a cached
  window and their digests are memoized per algorithm (:func:`periodic_digest`, or by the
  stream engine once it has hashed a file while sending it: hashing a 16 MiB file up front
  would keep the event loop for tens of milliseconds).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import CipherContext

from ..framing._digests import Hasher, new_hasher
from ._keystream import Keystream, keystream, random_key
from ._params import SAMPLE_WIDTH, StreamParams

__all__ = [
    "CHUNK_SIZE",
    "DIGESTS",
    "FILL_LIMIT",
    "FILL_MARGIN",
    "Chunk",
    "ContentSource",
    "DigestMemo",
    "RandomBits",
    "periodic_digest",
    "random_key",
]

#: Bytes generated per step. A multiple of 8 (one raw draw) and of every sample width.
CHUNK_SIZE = 64 * 1024

Chunk: TypeAlias = bytes | memoryview
#: Generators of ``content=random``: ``aes-ctr`` (stream format versions 2 and 3), ``sfc64``
#: (version 1 and the classic endpoints).
RandomBits: TypeAlias = Literal["aes-ctr", "sfc64"]

#: Most bytes one :meth:`ContentSource.fill` makes: a large file's message at a time.
FILL_LIMIT = 1024 * 1024
#: AES-CTR of zeros is the keystream (a view: slicing it copies nothing).
ZEROS = memoryview(bytes(FILL_LIMIT))
#: Bytes a buffer given to :meth:`ContentSource.fill` must have past the ones it fills:
#: the cipher's block size - 1 (it checks the room; a stream cipher writes nothing there).
FILL_MARGIN = 15

#: Sine: 480 Hz at a nominal 48 kHz sample rate is a period of exactly 100 samples.
SINE_PERIOD = 100
_SINE_AMPLITUDE = 0.5
_FULL_SCALE = {"int8": 127, "int16": 32767, "int32": 2147483647, "float32": 1.0}
#: Ramps with a period short enough to tabulate; others are computed with arange.
_RAMP_PERIOD = {"int8": 256, "int16": 65536}


@functools.lru_cache(maxsize=16)  # made for every stream: one lookup, not a parse
def _np_dtype(dtype: str, byteorder: str) -> np.dtype[np.generic]:
    code = {"int8": "i1", "int16": "i2", "int32": "i4", "float32": "f4"}[dtype]
    return np.dtype(("<" if byteorder == "little" else ">") + code)


def _ramp_values(start: int, count: int, dtype: str) -> npt.NDArray[np.generic]:
    """Samples ``start .. start+count-1`` of a ramp, wrapped as the spec says."""
    index = np.arange(start, start + count, dtype=np.int64)
    if dtype == "float32":
        return (index % (1 << 24)).astype(np.float32)
    bits = 8 * SAMPLE_WIDTH[dtype]
    wrapped = (index + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))
    return wrapped


def _sine_values(count: int, dtype: str) -> npt.NDArray[np.generic]:
    # Reduce the index modulo the period first so the table is exactly periodic.
    phase = 2.0 * np.pi * (np.arange(count) % SINE_PERIOD) / SINE_PERIOD
    values = _SINE_AMPLITUDE * _FULL_SCALE[dtype] * np.sin(phase)
    return values if dtype == "float32" else np.rint(values)


@functools.lru_cache(maxsize=64)
def _window(content: str, dtype: str, byteorder: str) -> tuple[bytes, int] | None:
    """A buffer holding one chunk's worth of samples plus one period, and the period.

    Any chunk of a periodic file is then the slice starting at ``(first sample % period)``.
    ``None`` when the content is not periodic with a small period (int32/float32 ramps).
    """
    width = SAMPLE_WIDTH[dtype]
    if content == "sine":
        period = SINE_PERIOD
    elif content == "ramp" and dtype in _RAMP_PERIOD:
        period = _RAMP_PERIOD[dtype]
    else:
        return None
    samples = CHUNK_SIZE // width + period
    values = _sine_values(samples, dtype) if content == "sine" else _ramp_values(0, samples, dtype)
    return values.astype(_np_dtype(dtype, byteorder)).tobytes(), period


def _periodic_chunks(content: str, dtype: str, byteorder: str, size: int) -> Iterator[Chunk]:
    width = SAMPLE_WIDTH[dtype]
    window = _window(content, dtype, byteorder)
    np_dtype = _np_dtype(dtype, byteorder)
    sample = 0
    for start in range(0, size, CHUNK_SIZE):
        n = min(CHUNK_SIZE, size - start) // width
        if window is not None:
            buf, period = window
            offset = (sample % period) * width
            yield memoryview(buf)[offset : offset + n * width]
        else:
            yield _ramp_values(sample, n, dtype).astype(np_dtype).tobytes()
        sample += n


_DigestKey = tuple[str, str, str, int, str]


class DigestMemo:
    """Digests of periodic files by (content, dtype, byteorder, size, algorithm): a bounded
    LRU shared by the event loop and the threads that compute manifests (hence the lock)."""

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self.hits = 0
        self._entries: OrderedDict[_DigestKey, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _DigestKey) -> str | None:
        with self._lock:
            digest = self._entries.get(key)
            if digest is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            return digest

    def put(self, key: _DigestKey, digest: str) -> None:
        with self._lock:
            self._entries[key] = digest
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


#: The process-wide memo of periodic digests.
DIGESTS = DigestMemo()


def periodic_digest(
    content: str, dtype: str, byteorder: str, size: int, algorithm: str = "blake3"
) -> str:
    """The hex digest (*algorithm*) of a ``sine`` or ``ramp`` file: memoized, it depends
    on nothing else.

    Computes it when it is not memoized: CPU proportional to ``size`` (keep large ones off
    the event loop)."""
    key = (content, dtype, byteorder, size, algorithm)
    digest = DIGESTS.get(key)
    if digest is None:
        h = new_hasher(algorithm)
        for chunk in _periodic_chunks(content, dtype, byteorder, size):
            h.update(chunk)
        digest = h.hexdigest()
        DIGESTS.put(key, digest)
    return digest


class ContentSource:
    """Produces the contents of one stream's files, in order.

    Call :meth:`file_chunks` once per planned file, in plan order, and exhaust each iterator
    before starting the next (``random`` content is one sequential generator).
    """

    __slots__ = (
        "_algorithm",
        "_bits",
        "_byteorder",
        "_content",
        "_dtype",
        "_float_dtype",
        "_keystream",
    )

    def __init__(self, params: StreamParams, seed: int, *, random: RandomBits = "aes-ctr") -> None:
        self._content: str = params.content
        self._dtype: str = params.dtype
        self._byteorder: str = params.byteorder
        self._algorithm: str = params.digest
        self._float_dtype = _np_dtype("float32", params.byteorder)
        is_random = params.content == "random"
        self._keystream = (
            keystream(
                seed, params.count * params.max_size, large_files=params.max_size > CHUNK_SIZE
            )
            if is_random and random == "aes-ctr"
            else None
        )
        self._bits = (
            np.random.SFC64(np.random.SeedSequence([seed, 1]))
            if is_random and random == "sfc64"
            else None
        )

    def known_digest(self, size: int) -> str | None:
        """The file's digest (the params' algorithm) when it can be known without generating
        the file in order (periodic content: memoized or computed now, CPU up to ``size``),
        else None."""
        if self._periodic:
            return periodic_digest(
                self._content, self._dtype, self._byteorder, size, self._algorithm
            )
        return None

    def memoized_digest(self, size: int) -> str | None:
        """The file's digest if it is already memoized (periodic content only); never
        computes anything."""
        if self._periodic:
            return DIGESTS.get(self._memo_key(size))
        return None

    def remember_digest(self, size: int, digest: str) -> None:
        """Memoize a periodic file's digest computed elsewhere (while it was sent); a
        no-op for random content, whose files never repeat."""
        if self._periodic:
            DIGESTS.put(self._memo_key(size), digest)

    def new_hasher(self) -> Hasher:
        """A hash object of the stream's digest algorithm."""
        return new_hasher(self._algorithm)

    def _memo_key(self, size: int) -> _DigestKey:
        return (self._content, self._dtype, self._byteorder, size, self._algorithm)

    @property
    def _periodic(self) -> bool:
        return self._keystream is None and self._bits is None

    def file_chunks(self, size: int) -> Iterator[Chunk]:
        """The next file's bytes in chunks of at most :data:`CHUNK_SIZE` bytes (each a new
        object: the caller may hold them while it asks for the next)."""
        if self._keystream is not None:
            return self._keystream_chunks(self._keystream, size)
        if self._bits is not None:
            return self._random_chunks(self._bits, size)
        return _periodic_chunks(self._content, self._dtype, self._byteorder, size)

    @property
    def fills_in_place(self) -> bool:
        """Whether :meth:`fill` can make this stream's files: ``random`` content of integer
        samples, whose bytes are the keystream itself."""
        return self._keystream is not None and self._dtype != "float32"

    def fill(self, out: memoryview, n: int) -> None:
        """Write the next ``n`` bytes (at most :data:`FILL_LIMIT`) of the current file at
        ``out[:n]``, without an intermediate object: the same bytes as the next ``n`` of
        :meth:`file_chunks`. ``out`` must be at least ``n + FILL_MARGIN`` bytes long;
        nothing past ``n`` changes. Only when :attr:`fills_in_place`."""
        assert self._keystream is not None and n <= FILL_LIMIT
        self._keystream.update_into(ZEROS[:n], out)

    def filler(self) -> Callable[[memoryview, memoryview], int] | None:
        """When :attr:`fills_in_place`, the keystream's ``update_into``: ``fill(ZEROS[:n],
        out)`` is :meth:`fill` without its checks (``n`` at most :data:`FILL_LIMIT`, ``out``
        at least ``n + FILL_MARGIN`` bytes); else None."""
        if not self.fills_in_place:
            return None
        assert self._keystream is not None
        return self._keystream.update_into

    def _keystream_chunks(self, keystream: Keystream | CipherContext, size: int) -> Iterator[Chunk]:
        for start in range(0, size, CHUNK_SIZE):
            n = min(CHUNK_SIZE, size - start)
            data = keystream.update(ZEROS[:n])
            if self._dtype == "float32":
                yield self._random_floats(np.frombuffer(data, "<u4"), n)
            else:
                # Keystream bytes are uniform over every bit pattern, hence over every
                # int value in either byte order.
                yield data

    def _random_chunks(self, bits: np.random.SFC64, size: int) -> Iterator[Chunk]:
        for start in range(0, size, CHUNK_SIZE):
            n = min(CHUNK_SIZE, size - start)
            raw = bits.random_raw((n + 7) // 8)
            if self._dtype == "float32":
                yield self._random_floats(raw, n)
            else:
                # Raw bits are uniform over every bit pattern, hence over every int value
                # in either byte order; little-endian bytes per the spec.
                yield raw.astype("<u8", copy=False).data.cast("B")[:n]

    def _random_floats(self, raw: npt.NDArray[np.unsignedinteger[Any]], n: int) -> bytes:
        words = raw.view("<u4")[: n // 4]
        # 24 random bits per sample give every float32 k * 2**-23 - 1 in [-1, 1) exactly.
        values = (words >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-23) - 1.0
        return values.astype(self._float_dtype).tobytes()
