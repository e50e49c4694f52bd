"""The backend-neutral interface of the metadata store: records, protocols, errors, URLs.

Nothing here knows about SQLite. A backend provides a :class:`Database` whose ``users``
attribute is a :class:`UserRepository`; :func:`wirelab.db.connect` picks the backend from
the URL scheme.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from .._exceptions import UsageError, WirelabError
from ._media_api import MediaJobRepository

__all__ = [
    "UNCHANGED",
    "Database",
    "DatabaseError",
    "DatabaseFullError",
    "PendingExceeded",
    "PendingLimits",
    "QuotaDefaults",
    "QuotaExceeded",
    "RelayBatch",
    "RelayFile",
    "RelayRepository",
    "RelayUpload",
    "SchemaVersionError",
    "Unchanged",
    "Usage",
    "User",
    "UserRepository",
    "split_url",
]


class DatabaseError(WirelabError):
    """The metadata store failed (cannot open the file, disk full, corrupt, locked too long).

    The backend's own exception is chained as ``__cause__``.
    """


class DatabaseFullError(DatabaseError):
    """The metadata store's disk (or quota) is full: the write was rolled back."""


class SchemaVersionError(DatabaseError):
    """The database's schema version is not this wirelab's: newer (written by a newer
    wirelab, unknown here), or older on a backend that is not migrated when opened
    (PostgreSQL: run ``wirelab db upgrade``)."""


@dataclass(frozen=True, slots=True)
class User:
    """A user of the relay, as stored. The token itself is never part of it.

    ``created_at`` is when the user was added and ``token_issued_at`` when its current
    token was issued (equal until the first rotation); both are timezone-aware UTC.
    ``quota_bytes`` and ``quota_files`` are the user's own inbox quotas; ``None`` means
    the server's default.
    """

    name: str
    created_at: datetime
    token_issued_at: datetime
    quota_bytes: int | None = None
    quota_files: int | None = None


class Unchanged:
    """The type of :data:`UNCHANGED`: "leave this setting as it is"."""

    def __repr__(self) -> str:
        return "UNCHANGED"


#: Passed to :meth:`UserRepository.set_quota` for a quota that must not change.
UNCHANGED = Unchanged()


@dataclass(frozen=True, slots=True)
class QuotaDefaults:
    """The server's quotas, for users without their own (``None`` in the db)."""

    bytes: int
    files: int


@dataclass(frozen=True, slots=True)
class Usage:
    """A recipient's inbox usage and effective quotas.

    ``used_*`` count the unexpired files of the inbox plus the reservations of uploads in
    progress addressed to it (journaled blob keys with a reservation).
    """

    used_bytes: int
    used_files: int
    limit_bytes: int
    limit_files: int


class QuotaExceeded(UsageError):
    """Storing ``requested`` more would put an inbox over its quota.

    ``kind`` is ``"bytes"`` or ``"files"``; ``used`` and ``limit`` are in that unit.
    """

    message = (
        "quota of {who!r} exceeded: {used} {kind} used (including uploads in progress)"
        " + {requested} requested > limit {limit} {kind}"
    )

    def __init__(self, recipient: str, kind: str, used: int, requested: int, limit: int) -> None:
        fields = {"kind": kind, "used": used, "requested": requested, "limit": limit}
        super().__init__(self.message.format(who=recipient, **fields))
        self.recipient = recipient
        self.kind = kind
        self.used = used
        self.requested = requested
        self.limit = limit


@dataclass(frozen=True, slots=True)
class PendingLimits:
    """One sender's allowance for unfinished uploads (all recipients together): at most
    ``uploads`` of them, announcing at most ``bytes`` in all."""

    bytes: int
    uploads: int


class PendingExceeded(QuotaExceeded):
    """Starting ``requested`` more would put a sender (``recipient`` here names the
    sender) over its allowance of unfinished uploads; ``kind`` is ``"bytes"`` or
    ``"uploads"``."""

    message = (
        "unfinished uploads of {who!r}: {used} {kind} pending + {requested} requested >"
        " limit {limit} {kind}; finish or cancel some first"
    )


class UserRepository(Protocol):
    """Users and their API tokens. Every method is a coroutine and is atomic.

    A method that returns has committed durably: the change survives a crash of the
    process (and, with the SQLite backend, of the machine) from that point on. Names are
    validated with :func:`wirelab.auth.validate_user_name`.
    """

    async def add_user(self, name: str) -> tuple[User, str]:
        """Create user ``name`` and return it with its new API token.

        The token is returned this once and only its hash is stored.
        Raises :class:`~wirelab.auth.InvalidUserName` and
        :class:`~wirelab.auth.UserExistsError`.
        """
        ...

    async def get_user_by_token(self, token: str) -> User | None:
        """Return the user whose current token is ``token``, or ``None``.

        Anything that is not token-shaped is ``None`` without a lookup.
        """
        ...

    async def get_user(self, name: str) -> User | None:
        """Return user ``name``, or ``None`` if there is none."""
        ...

    def cache_tokens(self, seconds: float) -> None:
        """Let :meth:`get_user_by_token` remember a token that matched for ``seconds``
        (0, the default: look every token up).

        A user removed, or a token rotated, through this repository is forgotten at once;
        through another process (``wirelab users``, another server process) it keeps
        working here for at most ``seconds``. Negative is a ``ValueError``.
        """
        ...

    async def list_users(self) -> list[User]:
        """Return every user, sorted by name."""
        ...

    async def remove_user(self, name: str) -> None:
        """Delete user ``name``; its token stops working. Raises
        :class:`~wirelab.auth.UserNotFoundError`.

        In the same commit, everything addressed to ``name`` (files, uploads, batches,
        reservations), the uploads ``name`` was sending and its public key are deleted;
        their blob keys are journaled for deletion (the relay's sweeper removes the
        bytes). A new user of the same name starts empty."""
        ...

    async def rotate_token(self, name: str) -> str:
        """Give user ``name`` a new token and return it; the old one stops working.

        Raises :class:`~wirelab.auth.UserNotFoundError`.
        """
        ...

    async def set_quota(
        self,
        name: str,
        *,
        quota_bytes: int | Unchanged | None = UNCHANGED,
        quota_files: int | Unchanged | None = UNCHANGED,
    ) -> User:
        """Set user ``name``'s quotas (``None``: the server default; :data:`UNCHANGED`:
        keep) and return the updated user. Raises
        :class:`~wirelab.auth.UserNotFoundError`; a negative quota is a ``ValueError``.
        """
        ...


@dataclass(frozen=True, slots=True)
class RelayFile:
    """A relay file as stored: metadata of one committed, verified blob.

    Times are ``time.time()`` seconds. ``lease_until`` is when the current lease (if any)
    ends; ``deliveries`` counts the leases handed out; ``downloads`` the GETs that sent the
    file's last byte, up to ``max_downloads`` (``None``: unlimited).
    """

    id: str
    recipient: str
    sender: str
    name: str
    media_type: str
    note: str | None
    size: int
    sha256: str
    blob_key: str
    created_at: float
    expires_at: float
    lease_id: str | None = None
    lease_until: float | None = None
    deliveries: int = 0
    downloads: int = 0
    max_downloads: int | None = None
    batch_id: str | None = None
    batch_index: int | None = None
    batch_count: int | None = None
    encryption: str | None = None
    #: The algorithm of ``sha256``, which holds the hex digest in it (``blake3`` or
    #: ``sha256``; files stored before digests had names are ``sha256``).
    digest_algorithm: str = "sha256"
    #: Whether the bytes are stored inline, in the database with the row (a small direct
    #: send: :meth:`RelayRepository.insert_inline`), rather than as the blob ``blob_key``.
    inline: bool = False

    @property
    def exhausted(self) -> bool:
        """Whether the download limit is reached (the file can no longer be downloaded)."""
        return self.max_downloads is not None and self.downloads >= self.max_downloads


@dataclass(frozen=True, slots=True)
class RelayUpload:
    """A resumable (tus) upload in progress: what the file will be once complete.

    Its id is also the partial upload's id in the blob store, the future blob key and
    file id. ``length`` is the announced size, ``sha256`` the announced whole-file digest
    (hex, in ``digest_algorithm``)
    (``None``: deferred to the completing ``PATCH``; the digest of the file once
    complete). ``state`` is ``"receiving"`` or ``"complete"`` (the file was delivered; the
    row is kept until ``expires_at`` so that its owner can still ask about it).
    """

    id: str
    owner: str
    recipient: str
    name: str
    media_type: str
    note: str | None
    length: int
    sha256: str | None
    created_at: float
    expires_at: float
    state: str = "receiving"
    max_downloads: int | None = None
    batch_id: str | None = None
    batch_index: int | None = None
    encryption: str | None = None
    #: The algorithm of ``sha256`` (announced or not): the upload's digest is in it.
    digest_algorithm: str = "sha256"

    @property
    def complete(self) -> bool:
        """Whether the upload became a file."""
        return self.state == "complete"

    @property
    def received(self) -> bool:
        """Whether all bytes are in and verified: ``"committed"`` (a batch's file waiting
        for the rest of its batch; the blob exists, its journal entry too) or complete."""
        return self.state in ("committed", "complete")


@dataclass(frozen=True, slots=True)
class RelayBatch:
    """Several files delivered together: one upload per file, visible all at once.

    ``expires_at`` is the uploads' expiry until ``delivered_at`` is set, then the files'.
    ``ttl`` is the files' ttl (``None``: the server's default).
    """

    id: str
    owner: str
    recipient: str
    note: str | None
    ttl: float | None
    max_downloads: int | None
    count: int
    created_at: float
    expires_at: float
    delivered_at: float | None = None


class RelayRepository(Protocol):
    """Relay files and the blob journal. Every method is a coroutine, atomic and durable.

    The *blob journal* names blob keys that may exist in the blob store without a file
    row: written before an upload starts (``"upload"``) and in the same transaction that
    deletes a file row (``"delete"``). Whatever a crash interrupts, a blob is either
    referenced by a file row or named in the journal, so it is never leaked.
    """

    async def journal_add(self, blob_key: str, reason: str, now: float) -> None:
        """Record that ``blob_key`` may exist without a file row (before writing it)."""
        ...

    async def reserve(
        self,
        keys: list[tuple[str, int]],
        recipient: str,
        now: float,
        quota: QuotaDefaults,
        *,
        sender: str | None = None,
        pending: PendingLimits | None = None,
        until: float | None = None,
    ) -> Usage:
        """Journal each ``(blob_key, size)`` (reason ``"upload"``) with a reservation of
        ``size`` bytes and one file in ``recipient``'s inbox, if the quota allows it.

        One transaction: the usage is read and the reservations written atomically, so
        concurrent senders cannot overshoot. Returns the usage before these reservations.
        Raises :class:`PendingExceeded` when ``sender`` has ``pending`` limits that these
        keys would pass, then :class:`~wirelab.auth.UserNotFoundError` when there is no
        user ``recipient``, then :class:`QuotaExceeded` (bytes first); nothing is written.
        A reservation ends when its journal entry is removed (the file row replaces it).
        It counts in the recipient's usage while held: ``until`` is ``None`` (for good)
        or later than the time of the count (see :meth:`hold_reservation`).
        """
        ...

    async def hold_reservation(
        self, blob_key: str, now: float, quota: QuotaDefaults, until: float
    ) -> None:
        """Renew ``blob_key``'s reservation until ``until`` (bytes are arriving); a lapsed
        one is checked against the quota again (a batch's with the lapsed ones of its
        batch, renewed too): :class:`QuotaExceeded`, nothing changed."""
        ...

    async def release_reservation(self, blob_key: str, until: float) -> None:
        """Let ``blob_key``'s reservation, if it is held for good (``None``), lapse at
        ``until`` (reservations written before they could lapse)."""
        ...

    async def journal_remove(self, blob_key: str) -> None:
        """Forget ``blob_key`` (its blob is gone, or a file row now references it)."""
        ...

    async def journal_remove_many(self, blob_keys: Sequence[str]) -> None:
        """Forget every key of ``blob_keys`` (their blobs are gone), in one statement
        per 500 keys."""
        ...

    async def journal_list(self, reason: str | None = None) -> list[str]:
        """The journaled keys (optionally only those with ``reason``), oldest first."""
        ...

    async def insert_file(self, file: RelayFile, quota: QuotaDefaults | None = None) -> None:
        """Make ``file`` visible and drop its blob key from the journal, in one commit.

        With ``quota``, first check in the same transaction that ``file.size`` more bytes
        fit in the inbox beside the files and the other reservations (used when the size
        was not known when the key was reserved): :class:`QuotaExceeded`, nothing changed.
        """
        ...

    async def insert_inline(self, file: RelayFile, content: bytes, quota: QuotaDefaults) -> None:
        """Make ``file`` visible with its bytes ``content`` stored inline, in one commit:
        the only durable step of a small direct send (no journal entry, no blob).

        In the same transaction, under the recipient's lock: :class:`QuotaExceeded` unless
        ``file.size`` bytes and one file fit beside the files and held reservations, and
        :class:`~wirelab.auth.UserNotFoundError` when the recipient does not exist; nothing
        changed then. The stored file has ``inline`` set.
        """
        ...

    async def read_content(self, file_id: str) -> bytes | None:
        """The inline bytes of file ``file_id``; ``None`` when it is gone or not inline."""
        ...

    async def count_download(self, file_id: str) -> None:
        """Add one to the ``downloads`` of file ``file_id`` (no error if it is gone)."""
        ...

    async def list_inbox(self, recipient: str, now: float) -> list[RelayFile]:
        """The unexpired files of ``recipient`` in FIFO (upload commit) order."""
        ...

    async def get_file(self, recipient: str, file_id: str, now: float) -> RelayFile | None:
        """File ``file_id`` if it is unexpired and addressed to ``recipient``."""
        ...

    async def delete_file(self, recipient: str, file_id: str, now: float) -> RelayFile | None:
        """Delete file ``file_id`` of ``recipient`` and journal its blob key (one commit;
        an inline file's bytes go with its row, nothing is journaled).

        Returns the deleted file, or ``None`` when there is no such file. Of concurrent
        deletes of one file exactly one returns it; the others return ``None``.
        """
        ...

    async def lease_next(
        self, recipient: str, now: float, lease_id: str, lease_until: float
    ) -> RelayFile | None:
        """Lease the oldest unexpired, unleased (or lease-expired) file of ``recipient``
        that has not reached its ``max_downloads``."""
        ...

    async def next_lease_end(self, recipient: str, now: float) -> float | None:
        """The earliest end of a running lease on an unexpired file of ``recipient``."""
        ...

    async def release_lease(
        self, recipient: str, file_id: str, lease_id: str | None, now: float
    ) -> RelayFile | None:
        """End the running lease on file ``file_id`` of ``recipient`` at once, so that
        ``lease_next`` offers it again (a receiver that failed gives it back).

        With ``lease_id``, only that lease is ended (a stale receiver cannot release the
        lease a newer one holds). Returns the file (lease cleared), or ``None`` when there
        is no such unexpired file. Releasing a file that is not leased changes nothing.
        """
        ...

    async def find_queued(
        self, sender: str, recipient: str, sha256: str, now: float, algorithm: str = "sha256"
    ) -> list[RelayFile]:
        """The unexpired files ``sender`` sent to ``recipient`` whose content has the
        digest ``sha256`` in ``algorithm``, still in the inbox (not acknowledged), oldest
        first."""
        ...

    async def delete_expired(self, now: float, limit: int) -> tuple[int, list[str]]:
        """Delete up to ``limit`` expired files and journal their blob keys; return the
        number of files deleted and the keys (inline files' bytes go with their rows:
        neither journaled nor returned)."""
        ...

    async def insert_upload(self, upload: RelayUpload) -> None:
        """Record a resumable upload (its key must already be journaled)."""
        ...

    async def get_upload(self, upload_id: str) -> RelayUpload | None:
        """The upload ``upload_id``, expired or not."""
        ...

    async def list_uploads(self) -> list[RelayUpload]:
        """All recorded uploads, oldest first."""
        ...

    async def delete_upload(self, upload_id: str) -> None:
        """Forget an upload (its journal entry stays until the partial upload is gone)."""
        ...

    async def finish_upload(self, upload_id: str, file: RelayFile) -> None:
        """Insert ``file``, drop its journal entry and mark upload ``upload_id`` complete
        (with the file's digest), in one commit."""
        ...

    async def create_batch(self, batch: RelayBatch, uploads: list[RelayUpload]) -> None:
        """Record ``batch`` and its uploads in one commit (their keys already journaled)."""
        ...

    async def get_batch(self, batch_id: str) -> RelayBatch | None:
        """The batch ``batch_id``, expired or not."""
        ...

    async def batch_uploads(self, batch_id: str) -> list[RelayUpload]:
        """The uploads of ``batch_id`` in manifest order."""
        ...

    async def batch_files(self, batch_id: str, now: float) -> list[RelayFile]:
        """The unexpired, unacknowledged files of ``batch_id`` in manifest order."""
        ...

    async def commit_batch_upload(
        self, upload_id: str, sha256: str, now: float, default_ttl: float
    ) -> list[RelayFile]:
        """Mark a batch upload whose blob was committed as ``"committed"``; if it was the
        last one, deliver the batch in the same commit: insert every file row in manifest
        order, drop their journal entries, mark the uploads complete and the batch
        delivered. Returns the delivered files, or ``[]`` while some are missing."""
        ...

    async def delete_batch(self, batch_id: str) -> list[str]:
        """Delete an undelivered batch and its upload rows in one commit; return the keys
        (still journaled) whose bytes the caller must discard."""
        ...

    async def delete_expired_batches(self, now: float) -> list[str]:
        """Delete expired batches (undelivered ones with their uploads); return the keys
        to discard, as :meth:`delete_batch`."""
        ...

    async def set_public_key(self, name: str, algorithm: str, public_key: str, now: float) -> None:
        """Store (or replace) user ``name``'s public key (``public_key`` as given, base64)."""
        ...

    async def get_public_key(self, name: str) -> tuple[str, str] | None:
        """User ``name``'s ``(algorithm, public_key)``, or ``None``."""
        ...


class Database(Protocol):
    """An open metadata store. Use as ``async with await connect(url) as db: ...``.

    :func:`wirelab.db.connect` returns it with the schema migrated to the current version.
    After :meth:`close`, every operation raises :class:`~wirelab.UsageError`.
    """

    @property
    def users(self) -> UserRepository:
        """The users and their tokens."""
        ...

    @property
    def relay(self) -> RelayRepository:
        """The relay files and the blob journal."""
        ...

    @property
    def media(self) -> MediaJobRepository:
        """The media jobs."""
        ...

    @property
    def schema_version(self) -> int:
        """The schema version the store is at (the number of migrations applied)."""
        ...

    async def close(self) -> None:
        """Finish pending work and release the store. Idempotent."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def split_url(url: str) -> tuple[str, str]:
    """Split a database URL into its lower-cased scheme and the rest after ``://``.

    Raises :class:`~wirelab.UsageError` when ``url`` has no ``scheme://`` part.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme or not scheme.replace("+", "").isalnum():
        raise UsageError(
            f"not a database URL: {url!r} (expected e.g. 'sqlite:///path/to/wirelab.db')"
        )
    return scheme.lower(), rest
