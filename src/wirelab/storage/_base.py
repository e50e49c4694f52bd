"""The storage interface of the relay: partial uploads and committed blobs.

A :class:`BlobStore` holds two kinds of objects:

* **Partial uploads**, identified by an *upload id*: append-only byte sequences that grow
  by :meth:`BlobStore.append` calls at an explicit offset (the tus model). Their *durable
  offset* is what :meth:`BlobStore.upload_offset` reports: every byte below it has been
  written to stable storage, and nothing above it is ever reported.
* **Committed blobs**, identified by a *key*: immutable, fully verified byte sequences
  that appear atomically through :meth:`BlobStore.commit` and disappear through
  :meth:`BlobStore.delete`.

Guarantees every implementation gives (checked by the contract tests):

* A blob is never half visible: :meth:`BlobStore.stat` and :meth:`BlobStore.open` either
  see the complete, verified content or report :class:`BlobNotFoundError`.
* After a crash of the process at any instant (SIGKILL) and :meth:`BlobStore.recover`,
  each upload's durable offset is a prefix of what was appended, its bytes are exactly
  the bytes appended, and the upload can be resumed from that offset. A committed blob
  is either complete with its digest or absent; an upload whose commit did not finish is
  still a resumable upload.
* Upload ids and keys match :data:`NAME_PATTERN`; anything else is refused with
  :class:`InvalidNameError` before any I/O, so no name can escape the store.

Digests: every whole-blob digest has an *algorithm*, one of
:data:`wirelab._digests.DIGEST_ALGORITHMS` (``blake3``, ``sha256``), named by the
``algorithm`` keyword of :meth:`BlobStore.create_upload`, :meth:`BlobStore.commit` and
:meth:`BlobStore.put` (default ``sha256``: what the store did before digests had names) and
reported in :attr:`BlobInfo.algorithm`. The ``expected_sha256`` keyword and the
:attr:`BlobInfo.sha256` field keep their names for compatibility but hold the lowercase hex
digest *in that algorithm*. Implementations hash and verify through
:mod:`wirelab.storage._hashing` (one place for digests and append checksums).

Errors are :class:`wirelab.UsageError` subclasses (the caller asked for something that is
not possible in the current state) except :class:`DigestMismatchError`, which is a
:class:`wirelab.IntegrityError`.
"""

from __future__ import annotations

import abc
import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType

from .._digests import check_algorithm, is_hex_digest
from .._exceptions import IntegrityError, UsageError

__all__ = [
    "MAX_READ_CHUNK",
    "NAME_PATTERN",
    "BlobExistsError",
    "BlobInfo",
    "BlobNotFoundError",
    "BlobReader",
    "BlobStore",
    "ChecksumMismatchError",
    "DigestMismatchError",
    "InvalidNameError",
    "InvalidRangeError",
    "LiveReadUnsupportedError",
    "OffsetMismatchError",
    "StorageAccessError",
    "StorageFullError",
    "UploadExistsError",
    "UploadInfo",
    "UploadNotFoundError",
    "validate_name",
]

#: Upload ids and blob keys: 1 to 128 characters of ``A-Z a-z 0-9 _ -``.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")

#: The largest chunk a :class:`BlobReader` yields.
MAX_READ_CHUNK = 1024 * 1024


class InvalidNameError(UsageError):
    """An upload id or key does not match :data:`NAME_PATTERN`."""


class UploadNotFoundError(UsageError):
    """No partial upload has this id (never created, aborted, committed or swept)."""


class UploadExistsError(UsageError):
    """:meth:`BlobStore.create_upload` was called with an id that is already in use."""


class BlobNotFoundError(UsageError):
    """No committed blob has this key."""


class BlobExistsError(UsageError):
    """:meth:`BlobStore.commit` was asked to write a key that already holds a blob."""


class StorageFullError(UsageError):
    """The store's file system has no space (or quota) left for a write (HTTP 507).

    Nothing that was not durable before is kept: the write's partial bytes are removed.
    """


class StorageAccessError(UsageError):
    """The backing store refused or could not serve a request: wrong credentials or
    permissions, a missing bucket, an unreachable endpoint (a configuration problem)."""


class LiveReadUnsupportedError(UsageError):
    """This store cannot read an upload in progress (:meth:`BlobStore.open_upload`)."""


class InvalidRangeError(UsageError):
    """The requested byte range is not inside the blob (HTTP 416)."""


class OffsetMismatchError(UsageError):
    """An append was sent at an offset other than the upload's durable offset (tus 409).

    ``expected`` is the durable offset the client must resume from, ``actual`` the
    offset it sent.
    """

    def __init__(self, message: str, *, expected: int, actual: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class DigestMismatchError(IntegrityError):
    """The uploaded bytes do not have the digest the sender announced.

    The upload is left intact (see :meth:`BlobStore.commit`); ``expected`` and ``actual``
    are lowercase hex digests in ``algorithm``.
    """

    def __init__(
        self, message: str, *, expected: str, actual: str, algorithm: str = "sha256"
    ) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual
        self.algorithm = algorithm


class ChecksumMismatchError(IntegrityError):
    """The bytes of one append do not have the checksum the client sent (tus 460).

    Nothing of that append was recorded: the durable offset did not move. ``expected``
    and ``actual`` are the raw digests.
    """

    def __init__(self, message: str, *, algorithm: str, expected: bytes, actual: bytes) -> None:
        super().__init__(message)
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual


def validate_name(name: str, what: str = "name") -> str:
    """Return *name* if it is a valid upload id or key, else raise :class:`InvalidNameError`."""
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise InvalidNameError(f"invalid {what} {name!r}: must match {NAME_PATTERN.pattern}")
    return name


def normalize_digest(digest: str, algorithm: str = "sha256") -> str:
    """Return a hex digest in lowercase, or raise :class:`wirelab.UsageError` (also for an
    unknown *algorithm*)."""
    try:
        check_algorithm(algorithm)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    lowered = digest.lower() if isinstance(digest, str) else ""
    if not is_hex_digest(lowered):
        raise UsageError(f"invalid {algorithm} hex digest {digest!r}")
    return lowered


def check_offset(upload_id: str, durable: int, offset: int) -> None:
    """Raise :class:`OffsetMismatchError` unless an append's *offset* is *durable*."""
    if offset != durable:
        raise OffsetMismatchError(
            f"upload {upload_id!r} is at offset {durable}, not {offset}",
            expected=durable,
            actual=offset,
        )


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A committed blob: its key, size in bytes and lowercase hex digest (if known) in
    ``algorithm`` (the field is named ``sha256`` for compatibility)."""

    key: str
    size: int
    sha256: str | None = None
    algorithm: str = "sha256"


@dataclass(frozen=True, slots=True)
class UploadInfo:
    """A partial upload: its durable offset and wall-clock times (``time.time()``).

    ``updated_at`` is the time of the last durable progress (creation or append); the
    expiry sweeper compares it with its deadline.
    """

    upload_id: str
    offset: int
    created_at: float
    updated_at: float


class BlobReader(AsyncIterator[bytes], abc.ABC):
    """The bytes ``[start, end)`` of a blob, as chunks of at most :data:`MAX_READ_CHUNK`.

    The content is a snapshot taken when the reader was opened: deleting the blob while
    it is read does not disturb the reader. Close it (``aclose`` or ``async with``) when
    not reading to the end; exhausting it closes it too.
    """

    def __init__(self, *, key: str, size: int, start: int, end: int) -> None:
        self.key = key
        self.size = size
        self.start = start
        self.end = end

    @property
    def length(self) -> int:
        """Number of bytes this reader yields in total."""
        return self.end - self.start

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release the underlying resources; idempotent."""

    async def __aenter__(self) -> BlobReader:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def check_range(key: str, size: int, start: int, end: int | None) -> tuple[int, int]:
    """Resolve ``end=None`` to *size* and check ``0 <= start <= end <= size``."""
    stop = size if end is None else end
    if not (0 <= start <= stop <= size):
        raise InvalidRangeError(f"range [{start}, {end}) is outside blob {key!r} of {size} bytes")
    return start, stop


class BlobStore(abc.ABC):
    """Partial uploads and committed blobs; see the module docstring for the guarantees.

    Implementations serialize operations on one upload id within one store instance. One
    store instance (one process) owns a backing store at a time (the S3 store lifts this:
    see :mod:`wirelab.storage._s3`).
    """

    #: Whether :meth:`open_upload` can read uploads in progress (live pass-through).
    live_reads: bool = True

    #: Whether :meth:`delete_many` needs fewer requests than one :meth:`delete` per blob
    #: (a remote store's batch delete): callers gather deletions that need not be done
    #: at once into batches.
    batch_deletes: bool = False

    @abc.abstractmethod
    async def recover(self) -> None:
        """Bring the backing store to a consistent state after a crash; call at startup.

        Removes leftovers of interrupted operations and cuts every upload back to its
        durable offset. Safe to call on a clean store.
        """

    @abc.abstractmethod
    async def create_upload(self, upload_id: str, *, algorithm: str = "sha256") -> UploadInfo:
        """Create an empty upload, durably; :class:`UploadExistsError` if the id is taken.

        *algorithm* is the digest the upload will most likely be committed with: a store
        may keep a running hash of the appended bytes in it (a hint; :meth:`commit` with
        another algorithm must still work).
        """

    @abc.abstractmethod
    async def append(
        self,
        upload_id: str,
        offset: int,
        chunks: AsyncIterator[bytes],
        *,
        checksum: tuple[str, bytes] | None = None,
    ) -> int:
        """Append the bytes of *chunks* at *offset* and return the new durable offset.

        *offset* must equal the durable offset, else :class:`OffsetMismatchError` and
        nothing is written. The chunks are streamed, never held whole in memory. When
        *chunks* raises (the client went away), the bytes received so far are made durable
        and the exception propagates: the client resumes from :meth:`upload_offset`.

        *checksum* (``(algorithm, digest)``: a :func:`hashlib.new` name and the raw digest
        of this append's bytes, the tus ``Upload-Checksum``) makes the append all or
        nothing: the bytes are still streamed, but become durable only once their digest
        matched. On a mismatch :class:`ChecksumMismatchError` is raised; on a mismatch or
        when *chunks* raises, the durable offset does not move. An unknown algorithm is a
        :class:`wirelab.UsageError` raised before any I/O.
        """

    @abc.abstractmethod
    async def upload_offset(self, upload_id: str) -> int:
        """The durable offset of an upload; :class:`UploadNotFoundError` if unknown."""

    @abc.abstractmethod
    async def open_upload(self, upload_id: str, start: int, end: int) -> BlobReader:
        """Read bytes ``[start, end)`` of an upload in progress (live pass-through).

        ``end`` may not pass the durable offset (:class:`InvalidRangeError`): only bytes
        that survive a crash are handed out. :class:`UploadNotFoundError` if the upload is
        unknown or already committed (read the blob then). Stores whose backend cannot
        read unfinished uploads raise :class:`LiveReadUnsupportedError` (see
        :attr:`live_reads`).
        """

    @abc.abstractmethod
    async def commit(
        self, upload_id: str, key: str, *, expected_sha256: str | None, algorithm: str = "sha256"
    ) -> BlobInfo:
        """Verify an upload's digest and turn it atomically into the blob *key*.

        ``expected_sha256`` is the hex digest in *algorithm*; ``None`` verifies nothing
        (no digest was announced): the store computes the digest and returns it in the
        :class:`BlobInfo`.

        On success the upload no longer exists and the blob is durable. On a digest
        mismatch :class:`DigestMismatchError` is raised and the upload is left intact and
        resumable (the caller decides whether to :meth:`abort_upload` it). An existing
        blob is never overwritten: :class:`BlobExistsError`.
        """

    async def put(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        *,
        expected_sha256: str | None,
        algorithm: str = "sha256",
        new_key: bool = False,
    ) -> BlobInfo:
        """Store *chunks* as the new blob *key* in one step (a direct send: never resumed).

        On return the blob is durable and its digest (in *algorithm*) verified
        (:class:`DigestMismatchError` otherwise, :class:`BlobExistsError` if *key* exists).
        *new_key*: the caller promises that *key* was freshly generated and nothing holds
        it, so a store may skip the check that costs it a request (an existing blob may
        then be replaced or cause an error).
        On any failure the store keeps nothing that a later :meth:`delete` of *key* would
        not remove: a crash in between may leave a partial blob or upload named *key*, so
        the caller journals *key* first and deletes it at start-up. This default composes
        an upload; stores override it to pay for durability once.
        """
        await self.create_upload(key, algorithm=algorithm)
        try:
            await self.append(key, 0, chunks)
            return await self.commit(key, key, expected_sha256=expected_sha256, algorithm=algorithm)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.abort_upload(key)
            raise

    @abc.abstractmethod
    async def abort_upload(self, upload_id: str) -> None:
        """Remove an upload; :class:`UploadNotFoundError` if unknown."""

    @abc.abstractmethod
    async def open(self, key: str, start: int = 0, end: int | None = None) -> BlobReader:
        """Open the bytes ``[start, end)`` of a blob (``end=None``: to the end).

        :class:`BlobNotFoundError` if absent, :class:`InvalidRangeError` unless
        ``0 <= start <= end <= size``.
        """

    @abc.abstractmethod
    async def stat(self, key: str) -> BlobInfo:
        """Size and digest of a blob; :class:`BlobNotFoundError` if absent."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove a blob durably; deleting an absent key is not an error (idempotent)."""

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Remove the blobs *keys* durably, as :meth:`delete` does each (absent keys are
        not an error). On an error some may be gone and others not: calling again with
        the same keys is safe. This default deletes one after the other."""
        for key in keys:
            await self.delete(key)

    async def free_bytes(self) -> int | None:
        """Bytes that uploads may still use (``None``: unknown, no limit is checked)."""
        return None

    async def release_reserve(self) -> bool:
        """Free the space kept in reserve so that an operation that frees space (a
        delete) can run on a full disk; whether there was a reserve to free."""
        return False

    async def restore_reserve(self) -> None:  # noqa: B027 (optional hook, no-op default)
        """Keep space in reserve again, if there is room (best effort; none by default)."""

    @abc.abstractmethod
    async def list_uploads(self) -> list[UploadInfo]:
        """All partial uploads, in no particular order."""

    async def presigned_url(
        self,
        key: str,
        expires: float,
        *,
        disposition: str | None = None,
        media_type: str | None = None,
    ) -> str | None:
        """A URL from which anyone holding it can GET the blob *key* (HTTP ``Range``
        included) for *expires* seconds, or ``None`` when the store cannot hand one out
        (the caller streams the blob itself). The answer carries the ``Content-Type``
        *media_type* and the ``Content-Disposition`` *disposition*, when given.
        :class:`BlobNotFoundError` if absent."""
        validate_name(key, "key")
        await self.stat(key)
        return None

    @abc.abstractmethod
    async def sweep_uploads(self, older_than: float, *, now: float | None = None) -> list[str]:
        """Remove uploads without progress for more than *older_than* seconds.

        Returns the ids removed. *now* defaults to ``time.time()``. Uploads with an
        operation in progress are skipped.
        """
