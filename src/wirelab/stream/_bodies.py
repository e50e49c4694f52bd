"""Building the bodies of files: small files in one piece, ``D`` frames of large ones, and
the framed bodies of periodic files that all streams of a server share.

Nothing here does I/O or awaits: the stream engine (``_engine``) sends what these return.
:func:`frame_chunks` may run in a worker thread; each thread has its own scratch buffer
for the keystream of a small file (:func:`small_file`), so that generating one allocates
nothing.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import blake3

from ..framing import FrameType, StreamEncoder, encode_frame_header
from ._content import CHUNK_SIZE, FILL_LIMIT, FILL_MARGIN, ZEROS, Chunk, ContentSource

__all__ = [
    "MESSAGE_SIZE",
    "BodyCache",
    "frame_chunks",
    "frame_plain",
    "hexdigest_of",
    "small_file",
    "small_file_maker",
]

#: Bytes of ``D`` frames per ASGI message (one HTTP chunk, one write) for large files; a
#: ``random`` one is generated in one :meth:`ContentSource.fill`.
MESSAGE_SIZE = FILL_LIMIT


class _PerThread(threading.local):
    """What each thread reuses from one small file to the next instead of allocating it:
    a buffer for the keystream and a BLAKE3 hasher (reset before each use)."""

    def __init__(self) -> None:
        self.scratch = memoryview(bytearray(CHUNK_SIZE + FILL_MARGIN))
        self.blake3 = blake3.blake3(max_threads=1)
        # The hasher's methods, bound once per thread rather than once per stream.
        self.blake3_ops = (self.blake3.reset, self.blake3.update, self.blake3.digest)


_THREAD = _PerThread()


def hexdigest_of(algorithm: str, data: Chunk) -> str:
    """The hex digest of ``data`` in ``algorithm`` (``blake3`` or ``sha256``), as a hasher
    of ``wirelab._digests.new_hasher`` fed ``data`` gives it; for a file generated whole.

    BLAKE3 reuses this thread's hasher: making one per file (a Rust object with its own
    allocations) cost about a fifth of the hashing of a 2.5 KiB file."""
    if algorithm == "blake3":
        hasher = _THREAD.blake3
        hasher.reset()
        hasher.update(data)
        return hasher.digest().hex()
    return hashlib.sha256(data).hexdigest()


def frame_chunks(
    chunks: Iterator[Chunk],
    encoder: StreamEncoder,
    hasher: Any | None,
    limit: int,
    first: bytes | None = None,
) -> bytes:
    """Frame (and hash) chunks as ``D`` frames until about ``limit`` bytes: one message,
    which starts with ``first`` when given.

    Returns ``b""`` when the file has no more chunks (and no ``first``). May run in a worker
    thread: numpy generation and ``hashlib`` release the GIL for large buffers.
    """
    parts: list[Chunk] = [first] if first else []
    size = 0
    for chunk in chunks:
        if hasher is not None:
            hasher.update(chunk)
        parts += (encoder.data_header(len(chunk)), chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(parts)


def frame_plain(chunks: Iterator[Chunk]) -> bytes:
    """``D`` frames for all chunks, without an encoder (for the shared body cache)."""
    parts: list[Chunk] = []
    for chunk in chunks:
        parts += (encode_frame_header(FrameType.DATA, len(chunk)), chunk)
    return b"".join(parts)


class BodyCache:
    """Framed bodies (``D`` frames) of periodic files, shared by all streams of a server.

    ``sine`` and ``ramp`` files depend only on (content, dtype, byteorder, size), so their
    framed bytes are built once and then sent as one message, like a static file. Bounded
    by ``max_bytes`` in total (least recently used entries are dropped first).
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024, max_entry: int = MESSAGE_SIZE) -> None:
        self.max_bytes = max_bytes
        self.max_entry = max_entry
        self._entries: OrderedDict[tuple[str, str, str, int], bytes] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[str, str, str, int], build: Callable[[], bytes]) -> bytes:
        body = self._entries.get(key)
        if body is not None:
            self._entries.move_to_end(key)
            return body
        body = build()
        self._entries[key] = body
        self._bytes += len(body)
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped)
        return body


def small_file(source: ContentSource, size: int, algorithm: str) -> tuple[Chunk, str]:
    """The next file of ``source`` whole, with its digest (``algorithm``): a file of at most
    :data:`CHUNK_SIZE` bytes, that is one ``D`` frame, generated and hashed in one go.

    The bytes are those :meth:`ContentSource.file_chunks` gives (its one chunk), but may be
    a view of this thread's scratch buffer (overwritten by the next file): copy them
    (``StreamEncoder.whole_file`` does) before this thread generates anything else.
    """
    if source.fills_in_place:  # random integers: the keystream straight into the scratch
        out = _THREAD.scratch
        source.fill(out, size)
        body: Chunk = out[:size]
        return body, hexdigest_of(algorithm, body)
    body = next(iter(source.file_chunks(size)), b"")
    # Periodic content (memoized digest, computed once per size) or random floats.
    digest = source.known_digest(size)
    return body, digest if digest is not None else hexdigest_of(algorithm, body)


def small_file_maker(source: ContentSource, algorithm: str) -> Callable[[int], tuple[Chunk, str]]:
    """``lambda size: small_file(source, size, algorithm)``, specialized once per stream:
    for ``random`` integer files hashed with BLAKE3 (the default paced stream), a closure
    over this thread's scratch buffer and hasher and the keystream's ``update_into``, which
    runs no Python function of its own per file (the checks and thread-local look-ups of
    :func:`small_file` were most of the Python work of a paced small file).

    The maker must be called in the thread that made it (the event loop's: small files are
    never offloaded); its bytes are valid until that thread's next small file, as
    :func:`small_file`'s.
    """
    fill = source.filler()
    if fill is None or algorithm != "blake3":
        return functools.partial(_small_file_of, source, algorithm)
    reset, update, digest = _THREAD.blake3_ops

    # What it uses is bound as default values, not closed over: one tuple per stream
    # instead of a cell per name (an open stream holds fewer objects for the garbage
    # collector to walk), read as fast locals. Callers pass ``size`` alone.
    def make(
        size: int,
        fill: Callable[[memoryview, memoryview], int] = fill,
        scratch: memoryview = _THREAD.scratch,
        reset: Callable[[], object] = reset,
        update: Callable[[Chunk], object] = update,
        digest: Callable[[], bytes] = digest,
    ) -> tuple[Chunk, str]:
        fill(ZEROS[:size], scratch)
        body = scratch[:size]
        reset()
        update(body)
        return body, digest().hex()

    return make


def _small_file_of(source: ContentSource, algorithm: str, size: int) -> tuple[Chunk, str]:
    return small_file(source, size, algorithm)
