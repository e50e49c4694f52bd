"""What the relay client returns: files of an inbox, sent files, received files."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from .._digests import DIGEST_ALGORITHMS
from .._exceptions import ProtocolError, UsageError

__all__ = [
    "DestinationExistsError",
    "DuplicateError",
    "InboxFile",
    "NoProgress",
    "Progress",
    "ReceivedFile",
    "SentFile",
    "parse_file",
]


class DestinationExistsError(UsageError):
    """A different file already has the name a received file would be written under.

    ``path`` is that file. The received file stays in the inbox (its lease released).
    """

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path} exists with other content; keep both with --exists rename, or "
            "replace it with --exists overwrite"
        )
        self.path = path


class DuplicateError(UsageError):
    """The recipient still has an identical file from this sender in their inbox.

    ``queued`` are those files (oldest first); nothing of the new copy was delivered.
    """

    def __init__(self, message: str, queued: list[InboxFile]) -> None:
        super().__init__(message)
        self.queued = queued


_SHA256: Final = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class InboxFile:
    """A file waiting in a relay inbox, as the server describes it.

    ``name`` was sanitized by the server, but the receiving client sanitizes it again
    before using it as a path (never trust a peer's file name). ``lease_id`` is set for a
    file taken with ``next``; ``batch`` is ``{"id", "index", "count"}`` for a file sent
    in a batch; ``encryption`` describes an end-to-end encrypted file (``None`` if plain).
    ``digest`` is the content's hex digest in ``algorithm`` (``blake3`` or ``sha256``).
    """

    id: str
    sender: str
    recipient: str
    name: str
    media_type: str
    size: int
    digest: str
    note: str | None
    created_at: str
    expires_at: str
    deliveries: int = 0
    lease_id: str | None = None
    lease_expires_at: str | None = None
    batch: dict[str, Any] | None = None
    encryption: str | None = None
    downloads: int | None = None
    max_downloads: int | None = None
    algorithm: str = "sha256"
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def sha256(self) -> str | None:
        """The content's SHA-256 hex digest, if that is its algorithm."""
        return self.digest if self.algorithm == "sha256" else None


def _field(doc: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ProtocolError(f"the server's file description has no valid {name!r}")
    return value


def _digest(doc: dict[str, Any]) -> tuple[str, str]:
    """A file's digest algorithm and hex digest (a server before digest agility sends
    only ``sha256``)."""
    algorithm = doc.get("digest_algorithm", "sha256")
    if algorithm not in DIGEST_ALGORITHMS:
        raise ProtocolError(f"the server sent an unknown digest algorithm {algorithm!r}")
    digest = doc.get("digest", doc.get("sha256"))
    digest = digest.lower() if isinstance(digest, str) else ""
    if not _SHA256.fullmatch(digest):
        raise ProtocolError(f"the server sent an invalid {algorithm} digest {digest!r}")
    return str(algorithm), digest


def parse_file(doc: Any) -> InboxFile:
    """An :class:`InboxFile` from the server's JSON; :class:`~wirelab.ProtocolError` if bad."""
    if not isinstance(doc, dict):
        raise ProtocolError("expected a file description (a JSON object) from the server")
    algorithm, digest = _digest(doc)
    size = _field(doc, "size", int)
    if size < 0:
        raise ProtocolError(f"the server sent a negative size {size}")
    lease = doc.get("lease")
    lease = lease if isinstance(lease, dict) else {}
    batch = doc.get("batch")
    return InboxFile(
        id=_field(doc, "id", str),
        sender=_field(doc, "sender", str),
        recipient=_field(doc, "recipient", str),
        name=_field(doc, "name", str),
        media_type=str(doc.get("media_type") or "application/octet-stream"),
        size=size,
        digest=digest,
        algorithm=algorithm,
        note=doc.get("note") if isinstance(doc.get("note"), str) else None,
        created_at=str(doc.get("created_at", "")),
        expires_at=str(doc.get("expires_at", "")),
        deliveries=int(doc.get("deliveries") or 0),
        lease_id=lease.get("id") if isinstance(lease.get("id"), str) else None,
        lease_expires_at=str(lease["expires_at"]) if "expires_at" in lease else None,
        batch=batch if isinstance(batch, dict) else None,
        encryption=doc.get("encryption") if isinstance(doc.get("encryption"), str) else None,
        downloads=doc.get("downloads") if isinstance(doc.get("downloads"), int) else None,
        max_downloads=(
            doc.get("max_downloads") if isinstance(doc.get("max_downloads"), int) else None
        ),
        raw=doc,
    )


@dataclass(frozen=True, slots=True)
class SentFile:
    """One file delivered by :meth:`RelayClient.send`.

    ``resumed_from`` is the byte offset the server already had when this run started
    (``0`` for a fresh upload); ``file_url`` is where the recipient downloads it.
    """

    path: Path
    name: str
    size: int
    digest: str
    upload_url: str
    file_url: str | None
    resumed_from: int
    algorithm: str = "sha256"

    @property
    def sha256(self) -> str | None:
        """The content's SHA-256 hex digest, if that is its algorithm."""
        return self.digest if self.algorithm == "sha256" else None


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    """One file written by :meth:`RelayClient.download`, verified (size and SHA-256).

    ``resumed_from`` is the size of the partial download this run continued (``0`` when it
    started from the beginning; for a ``live`` file, what the live stream delivered);
    ``acknowledged`` says whether the server deleted it. ``skipped``: ``path`` already
    held this very file (same size and SHA-256), so nothing was written.
    """

    file: InboxFile
    path: Path
    resumed_from: int
    acknowledged: bool = False
    live: bool = False
    skipped: bool = False


class Progress(Protocol):
    """What the relay client reports while it moves bytes (the CLI draws a bar from it).

    ``begin`` starts one phase of one file (``label`` says which: ``"hashing NAME"``,
    ``"sending NAME"``, ``"receiving NAME"``) with ``done`` of ``total`` bytes already
    there; ``advance`` adds bytes; ``end`` closes the phase.
    """

    def begin(self, label: str, total: int, done: int = 0) -> None: ...

    def advance(self, n: int) -> None: ...

    def end(self) -> None: ...


class NoProgress:
    """A :class:`Progress` that reports nothing."""

    def begin(self, label: str, total: int, done: int = 0) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def end(self) -> None:
        pass
