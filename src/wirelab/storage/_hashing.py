"""The digests of the blob stores: hashers, announced digests, verification, append
checksums, digest files.

The one place every store (:mod:`._local`, :mod:`._direct`, :mod:`._s3`) hashes and
verifies through; the algorithms themselves are wirelab's shared ones
(:mod:`wirelab._digests`).
"""

from __future__ import annotations

import hashlib

from .._digests import DIGEST_LABELS, Hasher, new_hasher
from .._exceptions import UsageError
from ._base import ChecksumMismatchError, DigestMismatchError, normalize_digest

__all__ = [
    "bulk_hasher",
    "check_checksum",
    "checksum_hasher",
    "expected_digest",
    "known_algorithm",
    "parse_sidecar",
    "rehash_hasher",
    "sidecar",
    "verify_digest",
]


def checksum_hasher(checksum: tuple[str, bytes] | None) -> Hasher | None:
    """A fresh hasher for an append's ``checksum``; UsageError for an unknown algorithm."""
    if checksum is None:
        return None
    try:
        return hashlib.new(checksum[0])
    except (ValueError, TypeError):
        raise UsageError(f"unsupported checksum algorithm {checksum[0]!r}") from None


def check_checksum(hasher: Hasher, checksum: tuple[str, bytes]) -> None:
    """Raise :class:`ChecksumMismatchError` unless *hasher* has the digest *checksum* names."""
    algorithm, expected = checksum
    actual = hasher.digest()
    if actual != expected:
        raise ChecksumMismatchError(
            f"the {algorithm} checksum of the appended bytes does not match; nothing was recorded",
            algorithm=algorithm,
            expected=expected,
            actual=actual,
        )


def bulk_hasher(algorithm: str) -> Hasher:
    """The running hash of a blob, fed beside the disk and network I/O: one thread.

    BLAKE3's own thread pool (``threads=True``) made a 1 GiB send slower on 2 cores: its
    workers wait by spinning (``sched_yield``) and took the cores that the event loop and
    the writes needed; one core hashes several GB/s, far ahead of the I/O
    (benchmarks/README.md, "Relay transfer"). A re-hash of stored bytes, which has the
    machine to itself, uses :func:`rehash_hasher`.
    """
    return new_hasher(algorithm)


def rehash_hasher(algorithm: str) -> Hasher:
    """A hasher for reading a whole stored blob back: BLAKE3 may use several threads."""
    return new_hasher(algorithm, threads=True)


def known_algorithm(algorithm: str) -> str:
    """*algorithm* if wirelab knows it, else :class:`wirelab.UsageError` (before any I/O)."""
    normalize_digest("0" * 64, algorithm)
    return algorithm


def expected_digest(digest: str | None, algorithm: str) -> str | None:
    """The announced digest, normalized (also checks *algorithm*, before any I/O)."""
    if digest is None:
        known_algorithm(algorithm)
        return None
    return normalize_digest(digest, algorithm)


def verify_digest(what: str, algorithm: str, expected: str | None, actual: str) -> None:
    """:class:`DigestMismatchError` unless *actual* is *expected* (``None``: anything)."""
    if expected is not None and actual != expected:
        raise DigestMismatchError(
            f"{what} has {DIGEST_LABELS[algorithm]} {actual}, expected {expected}",
            expected=expected,
            actual=actual,
            algorithm=algorithm,
        )


def sidecar(digest: str, algorithm: str) -> bytes:
    """A digest file's content: ``HEX`` for SHA-256 (the form it had before digests had
    names), ``ALGORITHM HEX`` otherwise."""
    return (f"{digest}\n" if algorithm == "sha256" else f"{algorithm} {digest}\n").encode()


def parse_sidecar(text: str) -> tuple[str, str]:
    """The algorithm and hex digest of a digest file's content."""
    words = text.split()
    if len(words) == 1:
        return "sha256", words[0]
    return words[0], words[1]
