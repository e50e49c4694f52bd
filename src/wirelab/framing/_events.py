"""The events a :class:`~wirelab.framing.StreamDecoder` produces, one class per frame meaning.

Events are immutable values: frozen dataclasses with slots, compared by value. A decoder
emits them in stream order::

    StreamStarted (FileStarted FileData* FileEnded)* (StreamEnded | [partial] StreamAborted)
    partial = FileStarted FileData*

A partial file (started, never ended) can only precede :class:`StreamAborted`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeAlias

__all__ = [
    "Event",
    "FileData",
    "FileEnded",
    "FileStarted",
    "StreamAborted",
    "StreamEnded",
    "StreamStarted",
]


@dataclasses.dataclass(frozen=True, slots=True)
class StreamStarted:
    """The stream header (``S`` frame).

    ``params`` echoes the server's effective request parameters as decoded from JSON; it is
    excluded from hashing (a dict is not hashable) but not from equality.
    """

    version: int
    seed: int
    count: int
    params: dict[str, Any] = dataclasses.field(hash=False)
    #: The digest algorithm of every ``E`` frame (always ``sha256`` in version 1).
    digest: str = "sha256"


@dataclasses.dataclass(frozen=True, slots=True)
class FileStarted:
    """A file begins (``F`` frame); its bytes follow as :class:`FileData` events."""

    index: int
    name: str
    size: int
    dtype: str
    byteorder: str
    offset: float


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class FileData:
    """The next bytes of file ``index``, never empty.

    Chunk boundaries follow whatever the decoder was fed and carry no meaning; concatenate
    the chunks of one file to get the file.
    """

    index: int
    data: bytes

    def __repr__(self) -> str:
        # A chunk can be a megabyte; its repr would drown a test failure or a log line.
        return f"FileData(index={self.index}, data=<{len(self.data)} bytes>)"


@dataclasses.dataclass(frozen=True, slots=True)
class FileEnded:
    """File ``index`` is complete: its size matched and, if the decoder verifies, its digest.

    ``digest`` is the lowercase hex digest the sender declared (equal to the computed one
    when the decoder verifies), computed with ``algorithm`` (the ``S`` frame's, e.g.
    ``blake3`` or ``sha256``).
    """

    index: int
    digest: str
    algorithm: str = "sha256"

    @property
    def sha256(self) -> str:
        """The digest under its name before format version 2, for SHA-256 streams only.

        Raises :class:`AttributeError` naming the algorithm when the stream used another one,
        so old code fails loudly instead of comparing a BLAKE3 digest with a SHA-256.
        """
        if self.algorithm != "sha256":
            raise AttributeError(
                f"this stream's digests are {self.algorithm}, not sha256: read .digest, "
                "or request digest=sha256"
            )
        return self.digest


@dataclasses.dataclass(frozen=True, slots=True)
class StreamEnded:
    """The stream ended normally (``Z`` frame); both figures were checked."""

    count: int
    total_bytes: int


@dataclasses.dataclass(frozen=True, slots=True)
class StreamAborted:
    """The sender gave up (``X`` frame). A file started but not ended is incomplete."""

    error: str
    message: str


Event: TypeAlias = StreamStarted | FileStarted | FileData | FileEnded | StreamEnded | StreamAborted
"""Any decoder event; a union, so that ``match`` statements can be checked for exhaustiveness."""
