"""Errors of the relay service; each names the HTTP status the routes answer with."""

from __future__ import annotations

from .._exceptions import UsageError
from ..db import PendingExceeded, QuotaExceeded

__all__ = [
    "DigestConflict",
    "FileNotFound",
    "FileTooLarge",
    "InsufficientStorage",
    "OverQuota",
    "RecipientNotFound",
    "RelayError",
    "TooManyPending",
    "UploadBusy",
]


class RelayError(UsageError):
    """A relay request that cannot be served; ``status_code`` is the HTTP answer."""

    status_code = 400


class RecipientNotFound(RelayError):
    """The recipient named by the sender does not exist (user names are not secret)."""

    status_code = 404


class FileNotFound(RelayError):
    """No such file in the caller's inbox (also when it is someone else's file)."""

    status_code = 404


class FileTooLarge(RelayError):
    """The upload is larger than the server's maximum file size."""

    status_code = 413


class InsufficientStorage(RelayError):
    """The server's disk has no room for the upload (507); nothing of it is kept but
    what an earlier request made durable (a resumable upload's offset)."""

    status_code = 507


class DigestConflict(RelayError):
    """The digests a sender announced contradict each other (or the known content)."""

    status_code = 422


class OverQuota(RelayError):
    """The recipient's inbox quota does not allow this upload: 507 for bytes, 429 for
    the number of files. ``cause`` carries the numbers (used, requested, limit)."""

    def __init__(self, cause: QuotaExceeded) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.status_code = 507 if cause.kind == "bytes" else 429


class TooManyPending(RelayError):
    """The sender's unfinished uploads are at its pending allowance (429); ``cause``
    carries the numbers."""

    status_code = 429

    def __init__(self, cause: PendingExceeded) -> None:
        super().__init__(str(cause))
        self.cause = cause


class UploadBusy(RelayError):
    """Another request (in this or another server process) is writing the upload, and
    did not finish within the wait: retry after it (423)."""

    status_code = 423
