"""The whole-content digest algorithms of wirelab: one place that names and makes them.

Every digest wirelab stores or sends travels with the name of its algorithm (stream
frames, relay files, blob store records), so a reader never has to guess. BLAKE3 is what
wirelab's own server and clients use by default: about 5x the speed of SHA-256 per core
on the machines this project runs on, and more with threads. SHA-256 stays available
everywhere and is what generic clients get (tus ``Upload-Checksum``, ``Repr-Digest``,
``Wirelab-Sha256``, the ETags of files they uploaded); data stored before digests had
names is SHA-256.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final, Protocol

import blake3

__all__ = [
    "DEFAULT_DIGEST",
    "DIGEST_ALGORITHMS",
    "DIGEST_LABELS",
    "Hasher",
    "check_algorithm",
    "digest_etag",
    "empty_digest",
    "is_hex_digest",
    "new_hasher",
]

#: Algorithms wirelab knows, in order of preference.
DIGEST_ALGORITHMS: Final = ("blake3", "sha256")
#: What wirelab's server and clients use unless told otherwise.
DEFAULT_DIGEST: Final = "blake3"
#: How messages name each algorithm.
DIGEST_LABELS: Final = {"blake3": "BLAKE3", "sha256": "SHA-256"}

# Both algorithms give 32 bytes (BLAKE3 by default): 64 lowercase hex digits.
_HEX = re.compile(r"[0-9a-f]{64}")


class Hasher(Protocol):
    """The part of a hash object wirelab uses (hashlib's and blake3's both fit)."""

    def update(self, data: bytes | bytearray | memoryview, /) -> object: ...
    def digest(self) -> bytes: ...
    def hexdigest(self) -> str: ...
    def copy(self) -> Hasher: ...


def check_algorithm(algorithm: str) -> str:
    """Return *algorithm* if wirelab knows it (:data:`DIGEST_ALGORITHMS`), else raise
    ``ValueError`` naming the known ones."""
    if algorithm not in DIGEST_ALGORITHMS:
        known = ", ".join(DIGEST_ALGORITHMS)
        raise ValueError(f"unknown digest algorithm {algorithm!r} (known: {known})")
    return algorithm


def new_hasher(algorithm: str, *, threads: bool = False) -> Hasher:
    """A fresh hash object for *algorithm* (one of :data:`DIGEST_ALGORITHMS`).

    Both release the GIL while hashing large buffers, so worker threads can hash in
    parallel with the event loop. ``threads=True`` lets BLAKE3 also spread one large
    buffer over several cores: for hashing stored data with nothing else to do; beside a
    transfer's I/O its spinning workers take the cores the I/O needs (and small inputs
    gain nothing).
    Raises ``ValueError`` for an unknown name.
    """
    check_algorithm(algorithm)
    if algorithm == "blake3":
        # max_threads: the binding spreads one large update() over a thread pool
        hasher: Hasher = blake3.blake3(max_threads=blake3.blake3.AUTO if threads else 1)
        return hasher
    return hashlib.sha256()


def empty_digest(algorithm: str) -> str:
    """The hex digest of zero bytes in *algorithm*."""
    return new_hasher(algorithm).hexdigest()


def digest_etag(algorithm: str, digest: str) -> str:
    """The quoted HTTP ETag of content with this digest: the plain SHA-256 hex as before
    algorithms had names (what generic clients and caches know), ``"ALGORITHM:HEX"``
    for the others."""
    return f'"{digest}"' if algorithm == "sha256" else f'"{algorithm}:{digest}"'


def is_hex_digest(value: str) -> bool:
    """Whether *value* is a digest in wirelab's form: 64 lowercase hex digits."""
    return _HEX.fullmatch(value) is not None
