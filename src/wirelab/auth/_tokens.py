"""API tokens, their stored form, user names and the ``Authorization: Bearer`` header.

Pure functions, no I/O: the user store (:mod:`wirelab.db`) and the HTTP layer build on them.

Tokens
    ``wl_`` followed by ``secrets.token_urlsafe(32)``: 256 bits from the OS CSPRNG in 43
    URL-safe base64 characters. The prefix makes a leaked token recognisable (secret
    scanners, logs) and lets the server reject garbage without a database lookup.

Stored form
    Only :func:`hash_token` of a token is ever stored: the lowercase hex SHA-256 of its
    UTF-8 bytes. Slow password hashes (bcrypt, scrypt, argon2) exist to make guessing a
    *low-entropy* secret expensive; a 256-bit random token cannot be guessed, so they would
    only add latency to every request. A keyed HMAC would add a server secret to manage,
    rotate and back up, for no gain against an attacker who reads the database: recovering a
    token from its SHA-256 is a preimage search over 2**256 values. An unkeyed hash also lets
    a token be looked up through a unique index on the hash, so verification is one indexed
    query, and any store (SQLite, PostgreSQL) can compute it the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from ._errors import InvalidCredentials, InvalidUserName, MissingCredentials

__all__ = [
    "TOKEN_PREFIX",
    "USER_NAME_MAX",
    "generate_token",
    "hash_token",
    "is_token_shaped",
    "parse_bearer",
    "token_matches",
    "validate_user_name",
]

TOKEN_PREFIX = "wl_"  # noqa: S105 (a public prefix, not a secret)
"""Every token starts with this."""

_TOKEN_BYTES = 32
_TOKEN_RE = re.compile(r"wl_[A-Za-z0-9_-]{43}")

USER_NAME_MAX = 32
"""The longest user name, in characters."""

_USER_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")

# RFC 6750 section 2.1: credentials = "Bearer" 1*SP b64token
_BEARER_RE = re.compile(r"([A-Za-z]+) +([A-Za-z0-9._~+/-]+=*)")


def generate_token() -> str:
    """Return a new random API token: ``wl_`` + 43 URL-safe characters (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def is_token_shaped(token: str) -> bool:
    """Whether ``token`` has the exact shape of a :func:`generate_token` result.

    A cheap syntactic check; it says nothing about whether the token belongs to a user.
    """
    return _TOKEN_RE.fullmatch(token) is not None


def hash_token(token: str) -> str:
    """Return the stored form of ``token``: lowercase hex SHA-256 of its UTF-8 bytes (64 chars).

    Deterministic, so it serves as a lookup key. See the module docstring for why a fast,
    unkeyed hash is the right choice for high-entropy tokens.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    """Whether ``token`` hashes to ``stored_hash``, compared in constant time."""
    return hmac.compare_digest(hash_token(token).encode("ascii"), stored_hash.encode("ascii"))


def validate_user_name(name: str) -> str:
    """Return ``name`` if it is a valid user name, else raise :class:`InvalidUserName`.

    The rule: 1 to 32 characters, ASCII lowercase letters, digits, ``_`` and ``-``, starting
    with a letter (the portable Unix user name rule). Deliberately no Unicode and no upper
    case: names appear in logs, paths and URLs, and must not have look-alikes (Cyrillic
    a, U+0430, against Latin a, ``Alice`` against ``alice``) that would let two users be
    confused. Names are not normalised or lower-cased silently; a wrong name is refused.
    """
    if not isinstance(name, str):
        raise InvalidUserName(f"user name must be a string, not {type(name).__name__}")
    if _USER_NAME_RE.fullmatch(name) is None:
        if not name:
            problem = "is empty"
        elif len(name) > USER_NAME_MAX:
            problem = f"is longer than {USER_NAME_MAX} characters"
        elif not ("a" <= name[0] <= "z"):
            problem = "must start with a lowercase ASCII letter"
        else:
            problem = "may contain only lowercase ASCII letters, digits, '_' and '-'"
        raise InvalidUserName(f"invalid user name {name!r}: {problem}")
    return name


def parse_bearer(header: str | None) -> str:
    """Return the token of an ``Authorization`` header value of the form ``Bearer TOKEN``.

    The scheme is matched case-insensitively (RFC 7235); one or more spaces separate it
    from the token; surrounding whitespace is ignored. Raises :class:`MissingCredentials`
    when the header is absent or blank and :class:`InvalidCredentials` when it is malformed,
    uses another scheme, or carries something that is not a wirelab token. Both map to 401.
    The token itself never appears in an error message.
    """
    if header is None or not header.strip():
        raise MissingCredentials("missing Authorization header (expected 'Bearer TOKEN')")
    match = _BEARER_RE.fullmatch(header.strip())
    if match is None:
        raise InvalidCredentials("malformed Authorization header (expected 'Bearer TOKEN')")
    scheme, token = match.groups()
    if scheme.lower() != "bearer":
        raise InvalidCredentials(f"unsupported authorization scheme {scheme!r} (use Bearer)")
    if not is_token_shaped(token):
        raise InvalidCredentials("the bearer token is not a wirelab API token")
    return token
