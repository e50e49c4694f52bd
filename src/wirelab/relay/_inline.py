"""Small direct sends stored inline: the bytes and the file row in one database commit.

A direct send whose ``Content-Length`` is at most ``inline_max`` is received into memory,
hashed and verified, then committed by one write transaction that checks the quota and
inserts the row with its bytes (:meth:`wirelab.db.RelayRepository.insert_inline`). That
commit is the send's only durable step, hence its only sync (shared with concurrent
writers by the database's group commit): no journal entry before the first byte, no
blob, no folder sync, no second commit. A crash before the commit leaves nothing (the
bytes were only in memory), after it the whole file: there is nothing to recover and no
orphan to sweep, with one process or several.

An inline file is served like a blob-backed one (downloads, ranges, digests and ETags,
listing, leases, quotas, expiry, deletion): only where its bytes come from differs
(:func:`open_inline`, a read of its ``content``). It has no presigned URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from .._digests import new_hasher
from ..storage import BlobReader
from ..storage._base import check_range
from ..storage._hashing import expected_digest, verify_digest

__all__ = ["BytesReader", "receive_inline"]


class BytesReader(BlobReader):
    """The bytes ``[start, end)`` of an inline file, in one chunk (they are small)."""

    def __init__(self, content: bytes, *, key: str, start: int, end: int | None) -> None:
        first, stop = check_range(key, len(content), start, end)
        super().__init__(key=key, size=len(content), start=first, end=stop)
        self._content: bytes | None = content

    async def __anext__(self) -> bytes:
        content, self._content = self._content, None
        if content is None or self.start == self.end:
            raise StopAsyncIteration
        return content[self.start : self.end]

    async def aclose(self) -> None:
        self._content = None


async def receive_inline(
    body: AsyncIterator[bytes], expected: str, algorithm: str
) -> tuple[bytes, str]:
    """The whole of ``body`` and its digest in ``algorithm`` (hashed as it arrives, on the
    event loop: a few hundred KiB at most);
    :class:`~wirelab.storage.DigestMismatchError` unless it is ``expected``."""
    wanted = expected_digest(expected, algorithm)
    hasher = new_hasher(algorithm)
    parts = []
    async for chunk in body:
        if chunk:
            hasher.update(chunk)
            parts.append(chunk)
    actual = hasher.hexdigest()
    verify_digest("the file", algorithm, wanted, actual)
    return b"".join(parts), actual
