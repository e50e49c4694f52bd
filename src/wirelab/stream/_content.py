"""File contents: random, sine and ramp samples in any dtype and byte order (pure; no I/O).

A :class:`ContentSource` produces the bytes of one stream's files, in order, in chunks of at
most :data:`CHUNK_SIZE` bytes, so memory per stream stays bounded whatever the file size.

* ``random`` draws from one SFC64 generator per stream (``SeedSequence([seed, 1])``); a file
  of ``size`` bytes consumes exactly ``ceil(size / 8)`` raw 64-bit outputs, whatever the
  chunk size, so the bytes never depend on how the server splits its work.
* ``sine`` and ``ramp`` restart in every file, so a file depends only on
  ``(content, dtype, byteorder, size)``: their chunks are zero-copy slices of a cached
  window and their digests are memoized (:func:`periodic_digest`, or by the stream engine
  once it has hashed a file while sending it: hashing a 16 MiB file up front would keep
  the event loop for tens of milliseconds).
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from ._params import SAMPLE_WIDTH, StreamParams

__all__ = ["CHUNK_SIZE", "DIGESTS", "Chunk", "ContentSource", "DigestMemo", "periodic_digest"]

#: Bytes generated per step. A multiple of 8 (one raw draw) and of every sample width.
CHUNK_SIZE = 64 * 1024

Chunk: TypeAlias = bytes | memoryview

#: Sine: 480 Hz at a nominal 48 kHz sample rate is a period of exactly 100 samples.
SINE_PERIOD = 100
_SINE_AMPLITUDE = 0.5
_FULL_SCALE = {"int8": 127, "int16": 32767, "int32": 2147483647, "float32": 1.0}
#: Ramps with a period short enough to tabulate; others are computed with arange.
_RAMP_PERIOD = {"int8": 256, "int16": 65536}


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


_DigestKey = tuple[str, str, str, int]


class DigestMemo:
    """Digests of periodic files by (content, dtype, byteorder, size): a bounded LRU shared
    by the event loop and the threads that compute manifests (hence the lock)."""

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


def periodic_digest(content: str, dtype: str, byteorder: str, size: int) -> str:
    """SHA-256 (hex) of a ``sine`` or ``ramp`` file: memoized, it depends on nothing else.

    Computes it when it is not memoized: CPU proportional to ``size`` (keep large ones off
    the event loop)."""
    key = (content, dtype, byteorder, size)
    digest = DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
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

    __slots__ = ("_bits", "_byteorder", "_content", "_dtype", "_float_dtype")

    def __init__(self, params: StreamParams, seed: int) -> None:
        self._content: str = params.content
        self._dtype: str = params.dtype
        self._byteorder: str = params.byteorder
        self._float_dtype = _np_dtype("float32", params.byteorder)
        self._bits = (
            np.random.SFC64(np.random.SeedSequence([seed, 1]))
            if params.content == "random"
            else None
        )

    def known_digest(self, size: int) -> str | None:
        """The file's SHA-256 when it can be known without generating the file in order
        (periodic content: memoized or computed now, CPU up to ``size``), else None."""
        if self._bits is None:
            return periodic_digest(self._content, self._dtype, self._byteorder, size)
        return None

    def memoized_digest(self, size: int) -> str | None:
        """The file's SHA-256 if it is already memoized (periodic content only); never
        computes anything."""
        if self._bits is None:
            return DIGESTS.get((self._content, self._dtype, self._byteorder, size))
        return None

    def remember_digest(self, size: int, digest: str) -> None:
        """Memoize a periodic file's digest computed elsewhere (while it was sent); a
        no-op for random content, whose files never repeat."""
        if self._bits is None:
            DIGESTS.put((self._content, self._dtype, self._byteorder, size), digest)

    def file_chunks(self, size: int) -> Iterator[Chunk]:
        """The next file's bytes in chunks of at most :data:`CHUNK_SIZE` bytes."""
        if self._bits is None:
            return _periodic_chunks(self._content, self._dtype, self._byteorder, size)
        return self._random_chunks(self._bits, size)

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

    def _random_floats(self, raw: npt.NDArray[np.uint64], n: int) -> bytes:
        words = raw.view("<u4")[: n // 4]
        # 24 random bits per sample give every float32 k * 2**-23 - 1 in [-1, 1) exactly.
        values = (words >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-23) - 1.0
        return values.astype(self._float_dtype).tobytes()
