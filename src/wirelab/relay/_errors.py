"""Errors of the relay service; each names the HTTP status the routes answer with."""

from __future__ import annotations

from .._exceptions import UsageError

__all__ = ["FileNotFound", "FileTooLarge", "RecipientNotFound", "RelayError"]


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
