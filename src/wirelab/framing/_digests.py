"""The digest algorithms of the stream format (docs/protocol/stream.md, version 2).

A stream names one algorithm in its ``S`` frame and every ``E`` frame carries the digest in
a member of that name, so a reader never has to guess. BLAKE3 is what wirelab sends by
default; SHA-256 stays available (``digest=sha256``) and is the only algorithm of version 1
streams. The algorithms themselves are wirelab's shared ones (:mod:`wirelab._digests`).
"""

from __future__ import annotations

from .._digests import DEFAULT_DIGEST, DIGEST_ALGORITHMS, Hasher, new_hasher

__all__ = ["DEFAULT_DIGEST", "DIGEST_ALGORITHMS", "Hasher", "new_hasher"]
