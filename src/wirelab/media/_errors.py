"""Errors of the media service. Each names its HTTP status and whether retrying can help.

A job's failure is stored as ``(message, retryable)``; ``retryable`` is true only for
errors that can succeed on a later attempt (network trouble, a timeout of the source),
never for a bad request, a refused source or a file that is not media.
"""

from __future__ import annotations

from .._exceptions import UsageError, WirelabError

__all__ = [
    "InvalidRequest",
    "JobFailed",
    "JobNotFound",
    "LimitExceeded",
    "MediaError",
    "SourceRefused",
    "TooManyJobs",
    "ToolMissing",
]


class MediaError(UsageError):
    """A media request that cannot be served; ``status_code`` is the HTTP answer."""

    status_code = 400


class InvalidRequest(MediaError):
    """The job request is malformed (bad time, unknown option, bad URL syntax)."""

    status_code = 422


class SourceRefused(MediaError):
    """The source (or something it points to) is not allowed by the source-safety rules."""

    status_code = 422


class LimitExceeded(MediaError):
    """The request asks more than the server allows (clip length, source length, size)."""

    status_code = 422


class TooManyJobs(MediaError):
    """The user already has the most queued and running jobs the server allows."""

    status_code = 429


class JobNotFound(MediaError):
    """No such job for this user (also when it is someone else's)."""

    status_code = 404


class ToolMissing(WirelabError):
    """Neither the system's ffmpeg nor the ``imageio-ffmpeg`` extra is available."""


class JobFailed(WirelabError):
    """A job attempt failed: ``message`` for the user, ``retryable`` for the runner."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
