"""``BlockWriter``: a download's blocks written with ``O_DIRECT`` where possible, falling
back to buffered writes for unaligned blocks and file systems that refuse it."""

from __future__ import annotations

import errno
import mmap
import os
from pathlib import Path

import pytest
from blake3 import blake3

from wirelab.client._direct import BlockWriter
from wirelab.client._hashing import HashingBuffers


def _aligned(data: bytes) -> memoryview:
    """*data* in a page-aligned buffer (what the receive ring gives the writer)."""
    buffer = mmap.mmap(-1, max(len(data), 1))
    buffer[: len(data)] = data
    return memoryview(buffer)[: len(data)]


def test_aligned_blocks_then_an_unaligned_tail(tmp_path: Path) -> None:
    path = tmp_path / "f.part"
    path.write_bytes(b"")
    blocks = [os.urandom(64 * 1024), os.urandom(64 * 1024), os.urandom(1000)]
    with BlockWriter(path, 0) as disk:
        for block in blocks:
            disk.write(_aligned(block))
        assert disk.position == sum(map(len, blocks))
    assert path.read_bytes() == b"".join(blocks)


def test_resuming_at_an_unaligned_offset_keeps_the_prefix(tmp_path: Path) -> None:
    path = tmp_path / "f.part"
    prefix, rest = os.urandom(1234), os.urandom(8192)
    path.write_bytes(prefix)
    with BlockWriter(path, len(prefix)) as disk:
        disk.write(_aligned(rest))
        disk.write(memoryview(bytearray(b"tail")))  # not page-aligned either
    assert path.read_bytes() == prefix + rest + b"tail"


def test_unaligned_buffers_are_written_too(tmp_path: Path) -> None:
    path = tmp_path / "f.part"
    path.write_bytes(b"")
    data = os.urandom(3 * 4096)
    with BlockWriter(path, 0) as disk:
        disk.write(memoryview(bytearray(b"x" + data))[1:])  # address off by one byte
    assert path.read_bytes() == data


def test_a_failing_sink_stops_the_ring_and_its_error_is_raised() -> None:
    sunk: list[bytes] = []

    def sink(block: memoryview) -> None:  # a disk write that finds the disk full
        if sunk:
            raise OSError(errno.ENOSPC, "No space left on device")
        sunk.append(bytes(block))

    ring = HashingBuffers(16, hasher=blake3(), sink=sink)
    with ring, pytest.raises(OSError, match="No space"):  # by take() or check()
        for text in (b"first", b"second", b"third", b"fourth", b"fifth"):
            index, view = ring.take()
            view[: len(text)] = text
            ring.hash(index, len(text))
        ring.check()
    assert sunk == [b"first"]  # nothing after the failed block
