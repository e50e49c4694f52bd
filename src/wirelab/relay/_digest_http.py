"""How the relay's HTTP API names digests (sans-IO): request headers, tus metadata,
download headers and ETags. The rules are in ``docs/relay.md`` (Digests).

Every digest travels with its algorithm: ``Wirelab-Digest: ALGORITHM=HEX`` (``blake3`` or
``sha256``, 64 lowercase hex digits). Generic clients keep what they had: the
``Wirelab-Sha256`` header and ``sha256`` metadata (SHA-256), the file's ``sha256`` and an
ETag of its plain SHA-256 hex; a SHA-256 file's downloads also carry RFC 9530
``Repr-Digest: sha-256=:BASE64:``.
"""

from __future__ import annotations

import base64

from .._digests import DIGEST_ALGORITHMS, digest_etag, is_hex_digest

__all__ = [
    "DigestSyntaxError",
    "digest_headers",
    "metadata_digest",
    "parse_hex",
    "request_digest",
]

Digest = tuple[str, str]
"""An algorithm and a lowercase hex digest in it."""


class DigestSyntaxError(ValueError):
    """A digest header, field or metadata value is malformed; the message names it."""


def parse_hex(value: str, where: str) -> str:
    """``value`` as a lowercase hex digest (64 digits); :class:`DigestSyntaxError` else."""
    lowered = value.strip().lower()
    if not is_hex_digest(lowered):
        raise DigestSyntaxError(f"{where} must be 64 hexadecimal digits")
    return lowered


def _algorithm(name: str, where: str) -> str:
    algorithm = name.strip().lower()
    if algorithm not in DIGEST_ALGORITHMS:
        raise DigestSyntaxError(f"{where}: unknown digest algorithm {name.strip()!r} (known:"
                                f" {', '.join(DIGEST_ALGORITHMS)})")  # fmt: skip
    return algorithm


def request_digest(wirelab_digest: str | None, wirelab_sha256: str | None) -> Digest | None:
    """The digest a request announces: ``Wirelab-Digest: ALGORITHM=HEX`` or
    ``Wirelab-Sha256: HEX`` (both: they must say the same); ``None`` if neither."""
    sha256 = None
    if wirelab_sha256 is not None and wirelab_sha256.strip():
        sha256 = ("sha256", parse_hex(wirelab_sha256, "Wirelab-Sha256"))
    if wirelab_digest is None or not wirelab_digest.strip():
        return sha256
    name, sep, value = wirelab_digest.partition("=")
    if not sep:
        raise DigestSyntaxError("Wirelab-Digest must be 'ALGORITHM=HEX'")
    digest = (_algorithm(name, "Wirelab-Digest"), parse_hex(value, "Wirelab-Digest"))
    if sha256 is not None and sha256 != digest:
        raise DigestSyntaxError("Wirelab-Digest and Wirelab-Sha256 disagree")
    return digest


def metadata_digest(fields: dict[str, str | None], where: str) -> tuple[str, str | None]:
    """The algorithm and announced digest (``None``: deferred) of tus metadata or a batch
    entry: ``sha256`` or ``blake3`` (a hex digest, at most one of them) and/or
    ``digest_algorithm`` (the algorithm of a digest sent later); SHA-256 by default."""
    given = [(a, v) for a in DIGEST_ALGORITHMS if (v := fields.get(a)) is not None and v.strip()]
    if len(given) > 1:
        raise DigestSyntaxError(f"{where}: give one of 'sha256' and 'blake3', not both")
    named = fields.get("digest_algorithm")
    algorithm = None if named is None else _algorithm(named, f"{where} 'digest_algorithm'")
    if not given:
        return algorithm or "sha256", None
    key, value = given[0]
    if algorithm is not None and algorithm != key:
        raise DigestSyntaxError(f"{where}: 'digest_algorithm' {algorithm} but a {key!r} digest")
    return key, parse_hex(value, f"{where} {key!r}")


def digest_headers(algorithm: str, digest: str) -> dict[str, str]:
    """The digest headers of a download: ``ETag``, ``Wirelab-Digest``, and for SHA-256
    ``Wirelab-Sha256`` and ``Repr-Digest``."""
    headers = {"ETag": digest_etag(algorithm, digest), "Wirelab-Digest": f"{algorithm}={digest}"}
    if algorithm == "sha256":
        raw = base64.b64encode(bytes.fromhex(digest)).decode()
        headers |= {"Wirelab-Sha256": digest, "Repr-Digest": f"sha-256=:{raw}:"}
    return headers
