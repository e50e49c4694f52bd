"""The digest algorithms of the stream format (docs/protocol/stream.md, version 2).

A stream names one algorithm in its ``S`` frame and every ``E`` frame carries the digest in
a member of that name, so a reader never has to guess. BLAKE3 is what wirelab sends by
default: about 5x the speed of SHA-256 per core here, and hashing every byte was the floor
of ``content=random`` streams. SHA-256 stays available (``digest=sha256``) and is the only
algorithm of version 1 streams.
"""

from __future__ import annotations

import hashlib
from typing import Final, Protocol

import blake3

__all__ = ["DEFAULT_DIGEST", "DIGEST_ALGORITHMS", "Hasher", "new_hasher"]

#: Algorithms a version 2 stream may name, in order of preference.
DIGEST_ALGORITHMS: Final = ("blake3", "sha256")
#: What wirelab's server and clients use unless told otherwise.
DEFAULT_DIGEST: Final = "blake3"


class Hasher(Protocol):
    """The part of a hash object the stream code uses (hashlib's and blake3's both fit)."""

    def update(self, data: bytes | memoryview, /) -> object: ...
    def hexdigest(self) -> str: ...


def new_hasher(algorithm: str) -> Hasher:
    """A fresh hash object for *algorithm* (one of :data:`DIGEST_ALGORITHMS`).

    Both release the GIL while hashing large buffers, so worker threads can hash in
    parallel with the event loop. Raises ``ValueError`` for an unknown name.
    """
    if algorithm == "blake3":
        hasher: Hasher = blake3.blake3()
        return hasher
    if algorithm == "sha256":
        return hashlib.sha256()
    raise ValueError(f"unknown digest algorithm {algorithm!r}")
