"""The one exception tree of wirelab.

Every error that wirelab raises on purpose is a :class:`WirelabError`. The tree is
organised by what went wrong, not by which module noticed it (as in httpx)::

    WirelabError
    ├── UsageError              the caller misused the API (bad argument, wrong state)
    ├── TransportError          the conversation with the peer failed
    │   ├── TimeoutError        no progress within the allowed time
    │   └── NetworkError        connect refused, connection reset, unexpected EOF on the socket
    ├── ProtocolError           the peer sent bytes that break the wire format
    │   ├── TruncatedError      the data ended before the format said it would
    │   └── IntegrityError      well-formed data that fails verification (checksum, sequence)
    └── HTTPStatusError         the server answered with a 4xx/5xx status

Low-level exceptions (``OSError``, ``httpx.*``) are translated at one boundary, the client,
with ``raise ... from exc`` so that the original cause stays visible in tracebacks.

Branches defined next to their subsystem, listed here so the tree stays one tree:
``wirelab.db.DatabaseError`` (a store cannot be opened, migrated or queried) and its
``SchemaVersionError``; ``wirelab.storage.DigestMismatchError`` (an ``IntegrityError``);
``wirelab.storage.ChecksumMismatchError`` (an ``IntegrityError``); the name, offset and
range errors of :mod:`wirelab.storage` and the authentication errors of
:mod:`wirelab.auth` (``UsageError`` subclasses; authentication ones answer HTTP 401);
``wirelab.crypto.DecryptionError`` (an ``IntegrityError``: ``WrongKeyError``,
``CorruptedChunkError``, ``NotEncryptedError``, ``TrailingDataError``, and
``TruncatedCiphertextError``, also a ``TruncatedError``) and the ``UsageError`` subclasses
``wirelab.crypto.KeyFileError`` and ``SourceChangedError``; ``wirelab._validate.InvalidField``
(a ``UsageError``: a request field breaks the strict number/JSON grammar; the server
answers it with a 4xx naming the field).

The test doubles of :mod:`wirelab.testing` report a failed expectation with
``wirelab.testing.ScriptError`` and ``wirelab.testing.ExpectationFailed``: both are a
:class:`WirelabError` and an ``AssertionError``, so test runners show them as failures.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "HTTPStatusError",
    "IntegrityError",
    "NetworkError",
    "ProtocolError",
    "TimeoutError",
    "TransportError",
    "TruncatedError",
    "UsageError",
    "WirelabError",
]


class WirelabError(Exception):
    """Base class of every error wirelab raises on purpose."""


class UsageError(WirelabError, ValueError):
    """The API was called with invalid arguments or in the wrong state."""


class TransportError(WirelabError):
    """The conversation with the peer failed below the protocol level."""


class TimeoutError(TransportError):
    """No progress was made within the allowed time."""


class NetworkError(TransportError):
    """The connection could not be made, or broke (refused, reset, closed early)."""


class ProtocolError(WirelabError):
    """The peer sent bytes that violate the wire format."""


class TruncatedError(ProtocolError):
    """The data ended before the wire format said it would (missing bytes or frames)."""


class IntegrityError(ProtocolError):
    """The data is well formed but fails verification (digest, size or sequence)."""


class HTTPStatusError(WirelabError):
    """The server answered with an error status.

    ``status_code`` is the HTTP status and ``detail`` the decoded JSON problem body, when
    the server sent one (``None`` otherwise).
    """

    def __init__(self, message: str, *, status_code: int, detail: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail
